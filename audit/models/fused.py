"""The fused voice encoder: GE2E and CAM++ run on the same 3 s segments, each scored and AS-normalised on its own;
a scan averages the two normalised scores (audit/scan/voices.py). Neither encoder alone flagged enough clones
across channels in benchmarks/voice_clones.py; their errors differ, so the mean of their scores separates better.

Enrolment with "fused" enrols each recording with both encoders (each under its own model id and hygiene), so a
store keeps one index per encoder and a scan with either encoder alone still works on it.
"""

from __future__ import annotations

import hashlib

import numpy as np

from ..config import SAMPLE_RATE
from .voice_base import Segment, segment_grid

PARTS = ("ge2e", "campplus")  # the order of the parts in a fused segment vector
PART_DIMS = {"ge2e": 256, "campplus": 192}  # each part's vector size: a fused vector is cut by these


class FusedEncoder:
    """Both shipped encoders on one segment grid; a segment's vector is their two unit vectors end to end."""

    name = "fused"
    sample_rate = SAMPLE_RATE

    def __init__(self, parts: tuple):
        """:param parts: the GE2E and CAM++ encoders, in PARTS order (voice.voice_encoder("fused") makes them)."""
        if tuple(p.name for p in parts) != PARTS:
            raise ValueError(f"the fused encoder's parts are {PARTS}")
        if tuple(p.dim for p in parts) != tuple(PART_DIMS[p] for p in PARTS):
            raise ValueError(f"the fused encoder's parts have {PART_DIMS} dimensions")
        self.parts = tuple(parts)
        self.dim = sum(p.dim for p in self.parts)

    @property
    def model_id(self) -> str:
        """A digest of both parts' model ids (cache keys; each part's vectors are stored under its own id)."""
        return fused_id(*self.model_ids)

    @property
    def model_ids(self) -> tuple[str, ...]:
        """The parts' model ids, in PARTS order."""
        return tuple(p.model_id for p in self.parts)

    def split(self, vectors: np.ndarray) -> list[np.ndarray]:
        """[n, dim] fused vectors -> one [n, part dim] array per part, in PARTS order."""
        return list(split_parts(vectors).values())

    def voiced_seconds(self, wav: np.ndarray) -> float:
        """Seconds of speech the voice activity detector finds (both parts share it)."""
        return self.parts[0].voiced_seconds(wav)

    def embed_utterance(self, wav: np.ndarray) -> np.ndarray:
        """Both parts' utterance vectors end to end."""
        return np.concatenate([p.embed_utterance(wav) for p in self.parts]).astype(np.float32)

    def embed_segments(self, wav: np.ndarray, segment_s: float = 3.0, hop_s: float = 1.5,
                       min_voiced_s: float = 1.0) -> list[Segment]:
        """Segments of both parts on one grid (voice activity found once), their vectors end to end."""
        grid = segment_grid(wav, segment_s, hop_s, min_voiced_s)
        a, b = (p.embed_grid(grid) for p in self.parts)
        return [Segment(x.start, x.end, np.concatenate([x.vector, y.vector]), x.voiced_s, x.narrow)
                for x, y in zip(a, b)]


def split_parts(vectors: np.ndarray) -> dict[str, np.ndarray]:
    """[n, 448] fused vectors -> part name -> [n, part dim] (by PART_DIMS; no encoder needs loading)."""
    vectors = np.atleast_2d(np.asarray(vectors, np.float32))
    cut = np.cumsum([PART_DIMS[p] for p in PARTS])[:-1]
    return dict(zip(PARTS, np.split(vectors, cut, axis=1)))


def fuse(scores: dict[str, np.ndarray], thresholds: dict[str, float], threshold: float) -> np.ndarray:
    """The fused score from the parts' AS-norm scores (arrays of one shape; a part absent, or NaN where it does not
    score a person): the mean of both; one part alone moved onto the fused scale, threshold to threshold, so a
    person enrolled with one encoder is judged at that encoder's own threshold."""
    ge2e, campplus = (np.asarray(scores.get(p, np.nan), np.float64) for p in PARTS)
    alone = np.where(np.isnan(ge2e), campplus - thresholds.get("campplus", 0.0),
                     ge2e - thresholds.get("ge2e", 0.0)) + threshold
    return np.where(np.isnan(ge2e) | np.isnan(campplus), alone, (ge2e + campplus) / 2)


def fused_id(*part_ids: str) -> str:
    """The fused encoder's model id from its parts' model ids, in PARTS order."""
    return hashlib.sha256("|".join(part_ids).encode()).hexdigest()
