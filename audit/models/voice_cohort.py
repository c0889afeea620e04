"""Score normalisation of voice scores: adaptive symmetric normalisation (AS-norm) against a shipped cohort.

A raw cosine between a segment and a person's centroid moves with the channel: a phone line, a codec or a room
lowers a speaker's score against everyone, a clone's vocoder raises it against some. AS-norm measures each side
against a cohort of other speakers and scores how far above its own top-N cohort neighbours a comparison lies:

    norm = ((raw - mean_e) / std_e + (raw - mean_t) / std_t) / 2

where mean_e, std_e are taken over the top-N cohort scores of the enrolled person's centroid (once per person) and
mean_t, std_t over those of the test segment. The cohorts ship with the package (`voice_cohort_<encoder>.npz`:
utterance embeddings only, no audio, of LibriSpeech train-clean speakers, CC BY 4.0; see VOICE_COHORT_LICENSE.txt)
and is loaded without pickle.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..errors import ModelError

MODELS_DIR = Path(__file__).resolve().parent  # voice_cohort_<encoder>.npz, one per shipped voice encoder
TOP_N = 50  # cohort neighbours per side: the closest ~40 % of the shipped cohort
MIN_STD = 1e-3  # a degenerate cohort spread would blow scores up


@dataclass(frozen=True)
class Cohort:
    """Cohort embeddings for one voice model."""

    vectors: np.ndarray  # [m, dim] unit vectors, one per cohort speaker
    speakers: tuple[str, ...]
    model: str  # SHA-256 of the encoder the vectors came from
    top_n: int = TOP_N

    @property
    def name(self) -> str:
        """A short id of this cohort and its settings, recorded with every normalised score."""
        import hashlib

        digest = hashlib.sha256(self.vectors.tobytes()).hexdigest()[:8]
        return f"asnorm:{digest}:top{self.top_n}"

    def stats(self, vectors: np.ndarray, exclude: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(mean, std) of each row's top-N cosine scores against the cohort.

        :param vectors: [n, dim] unit vectors (centroids or segments)
        :param exclude: optional [n] cohort row to leave out per vector (-1: none), for leave-one-out tests
        """
        vecs = np.atleast_2d(np.asarray(vectors, np.float32))
        scores = vecs @ self.vectors.T
        if exclude is not None:
            rows = np.flatnonzero(np.asarray(exclude) >= 0)
            scores[rows, np.asarray(exclude)[rows]] = -np.inf
        n = min(self.top_n, scores.shape[1] - (1 if exclude is not None else 0))
        top = -np.partition(-scores, n - 1, axis=1)[:, :n]
        return top.mean(axis=1), np.maximum(top.std(axis=1), MIN_STD)


def as_norm(raw: np.ndarray, enrol: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """AS-norm of raw scores [n_test, n_enrolled] from per-person (enrol) and per-segment (test) cohort stats."""
    raw = np.asarray(raw, np.float64)
    mean_e, std_e = (np.asarray(a, np.float64)[None, :] for a in enrol)
    mean_t, std_t = (np.asarray(a, np.float64)[:, None] for a in test)
    return 0.5 * ((raw - mean_e) / std_e + (raw - mean_t) / std_t)


@lru_cache(maxsize=4)
def load_cohort(model: str, path: str | None = None) -> Cohort:
    """The cohort for a voice model id (default: the shipped file made with it); ModelError if there is none."""
    files = [Path(path)] if path else sorted(MODELS_DIR.glob("voice_cohort_*.npz"))
    for file in files:
        try:
            with np.load(file, allow_pickle=False) as data:
                if str(data["model"]) != model:
                    continue
                vectors = np.ascontiguousarray(data["vectors"], np.float32)
                speakers = tuple(str(s) for s in data["speakers"])
        except (OSError, KeyError, ValueError) as e:
            raise ModelError(f"cannot read the voice cohort {file}: {e}") from e
        if vectors.ndim != 2 or len(vectors) != len(speakers) or len(vectors) < 2:
            raise ModelError(f"the voice cohort {file} is malformed: {vectors.shape} vectors, {len(speakers)} speakers")
        vectors.setflags(write=False)
        return Cohort(vectors, speakers, model, min(TOP_N, len(vectors) - 1))
    raise ModelError(f"no voice cohort was made with model {model[:12]} (looked in {', '.join(map(str, files))})")
