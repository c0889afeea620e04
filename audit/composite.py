"""Composite detection: is a face a blend of two (or three) registered people rather than one?

For each probe we take the top-k people of the 1:N search and explain the probe embedding as a non-negative mix of
their centroids (non-negative least squares; the weights are the coefficients scaled to sum to 1). A coefficient is
the part of the probe that person's centroid accounts for once the others are taken out, so a lookalike of the
main person (whose raw similarity rises with the main person's) gets little, while a second parent of a morph keeps
its share. Raw rank-2 similarity alone cannot separate the two on ArcFace: the weaker parent of a 50/50 landmark
morph scores as low as unrelated people do (see benchmarks/README.md).

The rule, with the default constants measured by benchmarks/composite.py:

- contributors: people whose coefficient is at least `part` and at least `ratio` times the largest (a third is
  named only when its coefficient reaches `third_part`);
- composite: two or three contributors, the main two explaining at least `explained` together (the composite
  threshold: their summed coefficients; unrelated, non-enrolled faces stay below it), all of them carrying at least
  `focus` of the fitted weight;
- generic: four or more contributors, or weight spread so that the contributors carry less than `focus` of it.
  Such a face looks mildly like many people; it is not flagged as a composite (a match stays a match).

Everything here is pure numpy.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# Defaults; see docs/composites.md and benchmarks/README.md for how they were measured.
TOP_K = 5
PART = 0.12
RATIO = 0.3
EXPLAINED = 0.45
FOCUS = 0.6
MAX_CONTRIBUTORS = 3
THIRD_PART = 0.2  # a third person is named only with this much; two-person morphs gave others at most 0.18
# Stronger evidence asked of low-quality faces (audit/models/quality.py): degraded real faces spread a little weight
# onto a second person, lopsidedly; 50/50 morphs keep both parts large and close (benchmarks/face_robustness.py).
LOW_PART = 0.2
LOW_RATIO = 0.4
# False-composite rate stated for the defaults: 0 of 144 real faces flagged in benchmarks/composite.py, so the
# 95 % upper bound 3/144.
DEFAULT_RATE = 2.1e-2


@dataclass
class CompositeRule:
    """Thresholds of the composite test."""

    explained: float = EXPLAINED  # the composite threshold: the two main contributors' coefficients summed
    part: float = PART  # smallest coefficient of a contributor
    ratio: float = RATIO  # smallest coefficient of a contributor relative to the largest
    focus: float = FOCUS  # smallest share of the fitted weight the contributors must carry
    top_k: int = TOP_K  # candidates fitted
    third_part: float = THIRD_PART  # smallest coefficient of a third named contributor
    low_part: float = LOW_PART  # low-quality faces: smallest coefficient of the second contributor
    low_ratio: float = LOW_RATIO  # low-quality faces: smallest second / first coefficient


@dataclass
class Candidate:
    """One of the top-k people for a probe: best-sample similarity and centroid (unit vector)."""

    person: str
    similarity: float
    centroid: np.ndarray


@dataclass
class Contributor:
    """A person in a composite: similarity of the best sample, and weight in the fitted mix (weights sum to 1)."""

    person: str
    similarity: float
    weight: float
    coefficient: float


@dataclass
class Verdict:
    """The composite test's answer for one probe."""

    kind: str  # "composite" | "generic" | "single" | "low_quality" (too low quality to judge)
    contributors: list[Contributor] = field(default_factory=list)
    explained: float = 0.0  # summed coefficients of the two main contributors
    focus: float = 0.0  # their share of the fitted weight
    fit: float = 0.0  # cosine between the probe and the fitted mix


def nnls(a: np.ndarray, b: np.ndarray, tol: float = 1e-10, max_iter: int = 200) -> np.ndarray:
    """Non-negative least squares, min ||a x - b|| with x >= 0 (Lawson-Hanson active set).

    :param a: m x n matrix (here: centroids as columns)
    :param b: length-m vector (the probe)
    :return: length-n coefficients, all >= 0
    """
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    n = a.shape[1]
    x = np.zeros(n)
    passive = np.zeros(n, bool)
    for _ in range(max_iter):
        grad = a.T @ (b - a @ x)
        free = ~passive & (grad > tol)
        if not free.any():
            break
        passive[int(np.argmax(np.where(free, grad, -np.inf)))] = True
        for _ in range(max_iter):
            z = np.zeros(n)
            z[passive] = np.linalg.lstsq(a[:, passive], b, rcond=None)[0]
            if (z[passive] > tol).all():
                x = z
                break
            # Step back to the boundary and drop the variables that hit zero.
            neg = passive & (z <= tol)
            step = np.min(x[neg] / np.maximum(x[neg] - z[neg], 1e-300))
            x = x + step * (z - x)
            passive &= x > tol
            x[~passive] = 0.0
    return x


def fit_weights(probe: np.ndarray, centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Explain a probe as a non-negative mix of centroids.

    :param probe: unit embedding (dim,)
    :param centroids: k x dim unit centroids
    :return: (coefficients, weights): NNLS coefficients, and the same scaled to sum to 1 (all 0 when none fits)
    """
    coef = nnls(np.asarray(centroids).T, np.asarray(probe))
    total = coef.sum()
    return coef, (coef / total if total > 0 else coef)


def judge(probe: np.ndarray, candidates: list[Candidate], rule: CompositeRule | None = None,
          quality=None) -> Verdict:
    """Decide whether a probe is a composite of the candidates (best first), a generic face, or a single face.

    :param quality: the face's audit.models.quality.Quality, or None when unknown (judged as good)
    """
    rule = rule or CompositeRule()
    cands = candidates[: rule.top_k]
    if len(cands) < 2:
        return Verdict("single")
    cents = np.stack([c.centroid for c in cands])
    coef, weights = fit_weights(probe, cents)
    mix = cents.T @ coef
    norm = float(np.linalg.norm(mix))
    fit = float(mix @ probe / norm) if norm > 0 else 0.0
    order = np.argsort(-coef, kind="stable")
    top = coef[order[0]]
    chosen = [int(i) for i in order if coef[i] >= rule.part and coef[i] >= rule.ratio * top]
    explained = float(coef[chosen[:2]].sum())
    focus = float(weights[chosen].sum()) if chosen else 0.0
    named = chosen[:2] + [i for i in chosen[2:] if coef[i] >= rule.third_part]
    people = [Contributor(cands[i].person, float(cands[i].similarity), float(weights[i]), float(coef[i]))
              for i in named]
    if len(chosen) < 2:
        kind = "single"
    elif len(chosen) > MAX_CONTRIBUTORS or focus < rule.focus:
        kind = "generic"
    elif explained >= rule.explained:
        kind = "composite"
        second, first = coef[chosen[1]], coef[chosen[0]]
        if quality is not None and quality.low and (second < rule.low_part or second < rule.low_ratio * first):
            kind = "low_quality"  # would be a composite on a good face; too poor to say so on this one
    else:
        kind = "single"  # two weak parts: an unrelated face that resembles no one much
    return Verdict(kind, people, explained, focus, fit)


def centroid(vectors: np.ndarray) -> np.ndarray:
    """Mean of unit vectors, renormalised to unit length."""
    c = np.asarray(vectors, np.float64).mean(axis=0)
    n = np.linalg.norm(c)
    return (c / n if n > 0 else c).astype(np.float32)


def centroids(vectors: np.ndarray, people: list[str]) -> dict[str, np.ndarray]:
    """Person -> centroid of their vectors."""
    groups: dict[str, list[int]] = {}
    for i, p in enumerate(people):
        groups.setdefault(p, []).append(i)
    return {p: centroid(vectors[idx]) for p, idx in groups.items()}
