"""Calibration: score distributions of the enrolled gallery (and a cohort) -> thresholds with stated error rates.

Scores are what a scan sees: a probe against a person is the best of that person's samples. From the enrolled
samples we get genuine scores (a sample against the rest of its own person, leave-one-out) and impostor scores
(a sample against every other person); a cohort of faces that are not enrolled adds impostor scores and
non-mated searches against the whole gallery.

In a 1:N search the chance that a probe of someone not enrolled reaches the threshold with anyone (the
false-positive identification rate, FPIR) is 1 - (1 - FMR)^N for a per-comparison false-match rate FMR, about
N x FMR. So the threshold is chosen for a target FPIR at the current gallery size N: FMR = 1 - (1 - FPIR)^(1/N).
A gallery of a few hundred comparisons cannot show rates near 1e-4 directly, so the threshold is the larger of the
empirical quantile and an exponential fit to the top 3 sqrt(n) impostor scores (on bounded cosine scores the
exponential tail errs on the safe side). The rate we state is the larger of that fit and the 95 % upper bound
(Clopper-Pearson) from the pairs of identities with a comparison at or above the threshold: comparisons of the
same two people are not independent trials, so a gallery of 13 people with no cohort can never state less than
3/78 per comparison, however many photos each has. A cohort of faces of other people (one photo each, ideally)
is what brings the stated rate down to the target.

Everything here is pure numpy; `calibrate_store` is the one function that reads a store.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone

import numpy as np

from . import composite, config
from .errors import AuditError, CalibrationError
from .store.registry import Calibration

TAIL_FRACTION = 0.10  # the exponential tail is fitted to the top 3 sqrt(n) scores, at most this share of them
MIN_TAIL = 20  # fewest scores in the tail fit
MIN_IMPOSTOR = 50  # fewest impostor comparisons to calibrate from
MAX_PROBES = 3000  # enrolled samples used as probes (a random subset above this)


@dataclass
class GalleryScores:
    """Score samples from leave-one-out searches of a gallery (and a cohort)."""

    genuine: np.ndarray  # best score of a sample against the rest of its own person
    impostor: np.ndarray  # best score of a probe against a person it is not
    nonmated_top: np.ndarray  # rank-1 score of every non-mated search (probe's person left out, or cohort)
    explained_nonmated: np.ndarray  # composite 'explained' of each non-mated search
    # One score per pair of different identities (the highest of their comparisons; a cohort face counts as an
    # identity of its own): comparisons of the same two people are not independent, so bounds count these.
    impostor_units: np.ndarray = field(default_factory=lambda: np.zeros(0))
    # 'explained' of the searches that pass every composite test but the threshold (-inf for the others): a
    # real face is falsely flagged at threshold t when its value is >= t.
    flaggable_mated: np.ndarray = field(default_factory=lambda: np.zeros(0))  # real photos of enrolled people
    flaggable_nonmated: np.ndarray = field(default_factory=lambda: np.zeros(0))  # people not enrolled
    # A scan reports a composite beside a match only with evidence (composite.adds_evidence). So that calibrate can
    # apply that rule at the threshold it picks, per flaggable search: the best candidate's score, and the score both
    # main contributors reach when their mix gains enough (-inf when it does not).
    top_mated: np.ndarray = field(default_factory=lambda: np.zeros(0))
    pair_mated: np.ndarray = field(default_factory=lambda: np.zeros(0))
    top_nonmated: np.ndarray = field(default_factory=lambda: np.zeros(0))
    pair_nonmated: np.ndarray = field(default_factory=lambda: np.zeros(0))
    people: int = 0
    samples: int = 0
    cohort: int = 0


def upper_bound(k: int, n: int, confidence: float = 0.95) -> float:
    """One-sided Clopper-Pearson upper bound of a rate seen k times in n trials (k = 0: about 3/n)."""
    if n <= 0:
        return 1.0
    if k >= n:
        return 1.0
    alpha = 1 - confidence
    if k == 0:
        return 1 - alpha ** (1 / n)
    lo, hi = k / n, 1.0
    for _ in range(60):  # bisection on P(X <= k | p) = alpha
        mid = (lo + hi) / 2
        if _binom_cdf(k, n, mid) > alpha:
            lo = mid
        else:
            hi = mid
    return hi


def _binom_cdf(k: int, n: int, p: float) -> float:
    if p <= 0:
        return 1.0
    if p >= 1:
        return 0.0
    lp, lq = math.log(p), math.log1p(-p)
    terms = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * lp + (n - i) * lq
             for i in range(k + 1)]
    m = max(terms)
    return min(1.0, math.exp(m) * sum(math.exp(t - m) for t in terms))


def per_comparison_rate(fpir: float, gallery_size: int) -> float:
    """The per-comparison FMR that gives a target FPIR over a gallery of N people."""
    return 1 - (1 - fpir) ** (1 / max(gallery_size, 1))


def fpir_at(fmr: float, gallery_size: int) -> float:
    """FPIR over N people for a per-comparison FMR (independent comparisons)."""
    return 1 - (1 - fmr) ** max(gallery_size, 1)


def _tail(scores: np.ndarray) -> tuple[float, float, float]:
    """(u, beta, p_u): exponential tail above u, with mean excess beta and P(score > u) = p_u."""
    s = np.sort(np.asarray(scores, np.float64))[::-1]
    # 3 sqrt(n): on simulated Gaussian and Student-t scores this kept the rate within 0.3-3x of the target at
    # 1e-3 and 1e-4 from 20k scores; a fixed 10 % was 30x too conservative for Gaussian tails.
    m = max(MIN_TAIL, min(math.ceil(TAIL_FRACTION * len(s)), math.ceil(3 * math.sqrt(len(s)))))
    m = min(m, len(s) - 1)
    u = float(s[m])
    beta = float(max(np.mean(s[:m] - u), 1e-6))
    return u, beta, m / len(s)


def tail_rate(scores: np.ndarray, threshold: float) -> float:
    """Estimated P(score >= threshold): empirical below the tail, exponential fit inside it."""
    u, beta, p_u = _tail(scores)
    if threshold <= u:
        return float(np.mean(np.asarray(scores) >= threshold))
    return p_u * math.exp(-(threshold - u) / beta)


def threshold_for(scores: np.ndarray, rate: float) -> float:
    """The lowest threshold that keeps P(score >= threshold) at or below `rate` by data and by tail fit."""
    s = np.sort(np.asarray(scores, np.float64))[::-1]
    allowed = math.floor(rate * len(s))
    empirical = float(s[allowed]) + 1e-6 if allowed < len(s) else float(s[-1])
    u, beta, p_u = _tail(s)
    fitted = u + beta * math.log(p_u / rate) if rate < p_u else empirical
    return max(empirical, fitted)


def gallery_scores(vectors: np.ndarray, people: list[str], cohort: np.ndarray | None = None,
                   rule: composite.CompositeRule | None = None, seed: int = 0) -> GalleryScores:
    """Leave-one-out searches of the gallery with its own samples (and cohort faces) as probes.

    :param vectors: n x dim unit embeddings of the enrolled samples
    :param people: the person of each row
    :param cohort: m x dim unit embeddings of faces of people who are not enrolled
    """
    rule = rule or composite.CompositeRule()
    open_rule = replace(rule, explained=-np.inf)  # every test but the threshold
    vecs = np.asarray(vectors, np.float32)
    labels = np.asarray(people)
    order = np.argsort(labels, kind="stable")
    vecs, labels = vecs[order], labels[order]
    names, starts, counts = np.unique(labels, return_index=True, return_counts=True)
    owner = np.searchsorted(names, labels)
    sums = np.add.reduceat(vecs.astype(np.float64), starts, axis=0)
    cents = sums / np.linalg.norm(sums, axis=1, keepdims=True)
    out = GalleryScores(np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0), people=len(names), samples=len(vecs))
    genuine, impostor, top, explained = [], [], [], []
    fl_mated, fl_non = [], []  # (flaggable explained, best score, pair score) per search
    pair_max = np.full((len(names), len(names)), -np.inf)

    probes = np.arange(len(vecs))
    if len(probes) > MAX_PROBES:
        probes = np.sort(np.random.default_rng(seed).choice(probes, MAX_PROBES, replace=False))
    for i in probes:
        sims = vecs @ vecs[i]
        sims[i] = -np.inf
        best = np.maximum.reduceat(sims, starts)
        p = owner[i]
        others = np.delete(np.arange(len(names)), p)
        impostor.append(best[others])
        pair_max[p, others] = np.maximum(pair_max[p, others], best[others])
        top.append(best[others].max() if len(others) else -1.0)
        # Non-mated search: the probe's person left out of the gallery.
        v = _judge(vecs[i], others, best, cents, names, open_rule)
        explained.append(v.explained)
        fl_non.append(_flaggable(v, best[others], rule))
        if counts[p] > 1:
            genuine.append(best[p])
            # Mated search: the probe's person stays, with a centroid made without the probe.
            loo = cents.copy()
            rest = sums[p] - vecs[i]
            loo[p] = rest / np.linalg.norm(rest)
            v = _judge(vecs[i], np.arange(len(names)), best, loo, names, open_rule)
            fl_mated.append(_flaggable(v, best, rule))
    upper = np.triu_indices(len(names), 1)
    units = np.maximum(pair_max, pair_max.T)[upper]
    units = [units[np.isfinite(units)]]
    if cohort is not None and len(cohort):
        out.cohort = len(cohort)
        for c in np.asarray(cohort, np.float32):
            best = np.maximum.reduceat(vecs @ c, starts)
            impostor.append(best)
            units.append(best)
            top.append(best.max())
            v = _judge(c, np.arange(len(names)), best, cents, names, open_rule)
            explained.append(v.explained)
            fl_non.append(_flaggable(v, best, rule))
    out.genuine = np.asarray(genuine, np.float64)
    out.impostor = np.concatenate(impostor).astype(np.float64) if impostor else np.zeros(0)
    out.impostor_units = np.concatenate(units).astype(np.float64)
    out.nonmated_top = np.asarray(top, np.float64)
    out.explained_nonmated = np.asarray(explained, np.float64)
    out.flaggable_mated, out.top_mated, out.pair_mated = np.asarray(fl_mated, np.float64).reshape(-1, 3).T
    out.flaggable_nonmated, out.top_nonmated, out.pair_nonmated = np.asarray(fl_non, np.float64).reshape(-1, 3).T
    return out


def _flaggable(v: composite.Verdict, best: np.ndarray, rule: composite.CompositeRule) -> tuple[float, float, float]:
    """(explained when the search passes every composite test but the threshold, else -inf; the best candidate's
    score; the lower of the two main contributors' scores when their mix gains rule.gain, else -inf)."""
    if v.kind != "composite":
        return -np.inf, float(best.max(initial=-1.0)), -np.inf
    main = v.contributors[:2]
    pair = min(c.similarity for c in main) if len(main) == 2 and v.gain >= rule.gain else -np.inf
    return v.explained, float(best.max(initial=-1.0)), pair


def false_composites(explained: np.ndarray, top: np.ndarray, pair: np.ndarray, comp: float, threshold: float) -> int:
    """Real faces a scan would report as composites: at or above the composite threshold, and either matching
    nobody, or matching with a second contributor that adds evidence (the scan's rule, scan/match.py)."""
    return int(np.sum((explained >= comp) & ((top < threshold) | (pair >= threshold))))


def _judge(probe, allowed, best, cents, names, rule) -> composite.Verdict:
    ranked = allowed[np.argsort(-best[allowed], kind="stable")][: rule.top_k]
    cands = [composite.Candidate(str(names[j]), float(best[j]), cents[j]) for j in ranked]
    return composite.judge(probe, cands, rule)


def calibrate(scores: GalleryScores, modality: str, model: str, target_fpir: float = 0.01,
              gallery_size: int | None = None, composite_rate: float = 0.01) -> Calibration:
    """Choose the match threshold for a target FPIR at the gallery size, and the composite threshold."""
    if not 0 < target_fpir < 1:
        raise CalibrationError(f"the target FPIR must be between 0 and 1, not {target_fpir}")
    n_imp = len(scores.impostor)
    if scores.people < 2 or n_imp < MIN_IMPOSTOR:
        raise CalibrationError(
            f"too little data to calibrate: {scores.people} people, {n_imp} impostor comparisons "
            f"(need {MIN_IMPOSTOR}); enroll more people or add a cohort of faces that are not enrolled")
    n = gallery_size or scores.people
    target_fmr = per_comparison_rate(target_fpir, n)
    threshold = threshold_for(scores.impostor, target_fmr)
    seen = int(np.sum(scores.impostor >= threshold))
    n_units = len(scores.impostor_units)
    seen_units = int(np.sum(scores.impostor_units >= threshold))
    # The bound counts pairs of identities, not comparisons: scores of the same two people move together (a
    # lookalike pair is a lookalike in every photo), so 1,000 comparisons of 13 people are worth 78 trials.
    fmr_upper = upper_bound(seen_units, n_units)
    fmr_model = tail_rate(scores.impostor, threshold)
    fmr = max(fmr_upper, fmr_model)
    gen = scores.genuine
    fnmr = float(np.mean(gen < threshold)) if len(gen) else float("nan")
    nm_seen = int(np.sum(scores.nonmated_top >= threshold))

    # Composite threshold: above what unrelated (non-mated) faces reach, at the target false-composite rate; never
    # below the documented default, which was measured against morphs (a lower one would only be fitted noise).
    rule = composite.CompositeRule()
    comp = max(threshold_for(scores.explained_nonmated, composite_rate), rule.explained)
    false_mated = false_composites(scores.flaggable_mated, scores.top_mated, scores.pair_mated, comp, threshold)
    false_non = false_composites(scores.flaggable_nonmated, scores.top_nonmated, scores.pair_nonmated, comp,
                                 threshold)
    real = len(scores.flaggable_mated) + len(scores.flaggable_nonmated)
    details = {
        "target_fmr": target_fmr, "fmr_model": fmr_model, "fmr_upper95": fmr_upper, "impostor_at_or_above": seen,
        "identity_pairs": n_units, "identity_pairs_at_or_above": seen_units,
        "nonmated_searches": len(scores.nonmated_top), "nonmated_at_or_above": nm_seen,
        "fpir_observed": nm_seen / len(scores.nonmated_top) if len(scores.nonmated_top) else None,
        "impostor_max": float(scores.impostor.max()), "genuine_min": float(gen.min()) if len(gen) else None,
        "samples": scores.samples, "people": scores.people,
        "composite_rule": {"part": rule.part, "ratio": rule.ratio, "focus": rule.focus, "top_k": rule.top_k},
        "composite_target": composite_rate,
        "composite_fitted": threshold_for(scores.explained_nonmated, composite_rate),
        "explained_nonmated_max": float(scores.explained_nonmated.max()) if len(scores.explained_nonmated) else None,
        "false_composites_mated": false_mated, "mated_searches": len(scores.flaggable_mated),
        "false_composites_nonmated": false_non, "nonmated_composite_searches": len(scores.flaggable_nonmated),
    }
    return Calibration(
        modality=modality, model=model, threshold=round(threshold, 4), fmr=fmr, fpir=fpir_at(fmr, n),
        target_fpir=target_fpir, gallery_size=n, genuine=len(gen), impostor=n_imp, cohort=scores.cohort,
        fnmr=fnmr, composite_threshold=round(comp, 4),
        composite_rate=upper_bound(false_mated + false_non, real),
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"), details=details)


@dataclass
class InForce:
    """The thresholds a scan uses, and what they stand for."""

    threshold: float
    fmr: float | None
    source: str  # "user", "default" or "calibrated YYYY-MM-DD"
    fpir: float | None  # at the current gallery size
    composite: composite.CompositeRule
    composite_rate: float | None
    composite_source: str
    gallery_size: int
    warnings: list[str] = field(default_factory=list)


def in_force(cal: Calibration | None, user_threshold: float | None, gallery_size: int, default_threshold: float,
             default_fmr: float, modality: str = "face") -> InForce:
    """Thresholds for a scan: the user's, else the stored calibration, else the documented defaults."""
    warnings = []
    rule = composite.CompositeRule()
    comp_rate: float | None = composite.DEFAULT_RATE
    comp_source = "default"
    if cal is not None:
        rule = replace(rule, explained=cal.composite_threshold or rule.explained)
        comp_rate, comp_source = cal.composite_rate, f"calibrated {cal.date}"
        if gallery_size > cal.gallery_size:
            warnings.append(
                f"the {modality} gallery grew from {cal.gallery_size} to {gallery_size} people since the calibration "
                f"of {cal.date}: its false-positive identification rate is now about "
                f"{fpir_at(cal.fmr, gallery_size):.1e} (calibrated for {cal.fpir:.1e}); run `likeness-audit calibrate`")
    if user_threshold is not None:
        return InForce(user_threshold, None, "user", None, rule, comp_rate, comp_source, gallery_size, warnings)
    if cal is not None:
        return InForce(cal.threshold, cal.fmr, f"calibrated {cal.date}", fpir_at(cal.fmr, gallery_size), rule,
                       comp_rate, comp_source, gallery_size, warnings)
    return InForce(default_threshold, default_fmr, "default", fpir_at(default_fmr, gallery_size), rule, comp_rate,
                   comp_source, gallery_size, warnings)


def cohort_vectors(model, paths) -> tuple[np.ndarray, list[str]]:
    """Embeddings of every usable face in the images under paths (a cohort of people who are not enrolled;
    a crowd photo gives many).

    :return: (vectors, problems) where problems name the files that gave no usable face
    """
    from . import media
    from .config import MIN_FACE_PX

    vecs, problems = [], []
    for path in media.walk(paths, kinds=frozenset({"image"})):
        try:
            faces = model.analyze(media.load_image(path))
        except AuditError as exc:
            problems.append(f"{media.display_path(path)}: {exc}")
            continue
        usable = [f.embedding for f in faces if f.size >= MIN_FACE_PX]
        if not usable:
            problems.append(f"{media.display_path(path)}: no face of {MIN_FACE_PX} px or more")
        vecs += usable
    dim = model.dim if not vecs else len(vecs[0])
    return (np.stack(vecs) if vecs else np.zeros((0, dim), np.float32)), problems


def calibrate_store(store, modality: str, model: str, cohort: np.ndarray | None = None, target_fpir: float = 0.01,
                    composite_rate: float = 0.01, save: bool = True, accept: bool = False) -> Calibration:
    """Calibrate one modality and model of a store from its enrolled samples (and a cohort), and record it.

    :param save: False to measure only (a dry run)
    :param accept: record a calibration that lowers the threshold in force although it misses its target rate;
        without it that is a CalibrationError (a lower threshold that cannot show its rate is not a safe default)
    """
    _, vecs, people = store.vectors(modality, model)
    if len(set(people)) < 2:
        raise CalibrationError(f"calibration needs at least 2 people enrolled with {modality}; "
                               f"{len(set(people))} are")
    scores = gallery_scores(vecs, people, cohort)
    cal = calibrate(scores, modality, model, target_fpir, len(set(people)), composite_rate)
    previous = store.calibration(modality, model)
    # Voices calibrate on normalised scores through calibrate_voice.py; here only faces have a default.
    now = previous.threshold if previous is not None else (
        config.DEFAULT_FACE_THRESHOLD if modality == "face" else -1.0)
    misses = cal.fpir > cal.target_fpir * 1.01
    if save and misses and cal.threshold < now and not accept:
        raise CalibrationError(
            f"the calibration misses its target (FPIR {cal.fpir:.1e} > {cal.target_fpir:.1e}) and would lower the "
            f"{modality} threshold from {now:.3f} to {cal.threshold:.3f}; nothing stored. Add a --cohort of other "
            "people's faces, or --accept to store it anyway (--dry-run shows it)")
    if save:
        store.add_calibration(cal)
    return cal
