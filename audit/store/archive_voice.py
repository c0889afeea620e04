"""Which archived voice segments are a person's, for their erasure.

A scan archives every voice segment, and names a person only in the rows of segments it attributed to them; a
person who enrolled after the scan (or whom the scan did not name) leaves unattributed rows holding their voice. The
face rows are matched against the person's templates at the face threshold; voice rows are scored here as a scan
scores them (each encoder's AS-norm score against the person's centroid, over the shipped cohort; a fused
segment by the mean of both) and erased at the scan's voice threshold (for one encoder, the lower of its shipped
and calibrated ones). Measured on benchmarks/voice_clones.py's segments (docs/continuous.md): every segment of a
real recording of the person, and 76 % of a WORLD clone's, score at or above it; 0.04 % of other speakers' do.
Where the person has band-limited templates (enroll/narrowband.py), a row scores by the better of the two
centroids (telephone-line clone segments: 109/188 taken instead of 30/188; others' unchanged, voice_channel.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .. import config
from ..models.channel import is_narrow, narrow_id
from ..models.fused import PART_DIMS, PARTS, fuse, fused_id, split_parts

if TYPE_CHECKING:
    from .registry import Registry

ENCODERS = {dim: part for part, dim in PART_DIMS.items()}  # a voice model's encoder by its vector size


@dataclass
class Part:
    """The person's centroid under one voice encoder, with that encoder's cohort statistics and threshold."""

    encoder: str
    model: str
    centroid: np.ndarray
    threshold: float
    narrow: np.ndarray | None = None  # the centroid of their band-limited templates (enroll/narrowband.py), if any


class VoiceJudge:
    """Scores archived voice segments against one person's voice centroids."""

    def __init__(self, parts: list[Part], fused_threshold: float, fused_model: str | None):
        """:param fused_model: the model id of the fused encoder's partitions (both encoders' vectors end to end)"""
        from ..models.voice_cohort import load_cohort

        self.parts = {p.encoder: p for p in parts}
        self.fused_threshold, self.fused_model = fused_threshold, fused_model
        self.cohorts = {p.encoder: load_cohort(p.model) for p in parts}
        self.enrol = {e: self.cohorts[e].stats(p.centroid[None, :]) for e, p in self.parts.items()}
        # Archived rows do not say whether a segment was band-limited: a row is theirs by the better of the two.
        self.narrow = {}  # encoder -> (band-limited centroid, its cohort, the centroid's cohort statistics)
        for p in parts:
            if p.narrow is not None:
                cohort = load_cohort(narrow_id(p.model))
                self.narrow[p.encoder] = (p.narrow, cohort, cohort.stats(p.narrow[None, :]))

    def norm(self, encoder: str, vectors: np.ndarray) -> np.ndarray:
        """AS-norm scores of segment vectors against the person's centroid under one encoder."""
        from ..models.voice_cohort import as_norm

        vectors = np.asarray(vectors, np.float32)
        raw = vectors @ self.parts[encoder].centroid[:, None]
        out = as_norm(raw, self.enrol[encoder], self.cohorts[encoder].stats(vectors))[:, 0]
        if encoder in self.narrow:
            cent, cohort, enrol = self.narrow[encoder]
            out = np.maximum(out, as_norm(vectors @ cent[:, None], enrol, cohort.stats(vectors))[:, 0])
        return out

    def matches(self, model: str, vectors: np.ndarray) -> np.ndarray:
        """Which rows of a voice partition of `model` (vectors [n, dim]) are the person's."""
        n = len(vectors)
        hit = np.zeros(n, bool)
        if not n:
            return hit
        for encoder, part in self.parts.items():
            if model == part.model:
                hit |= self.norm(encoder, vectors) >= part.threshold
        if model == self.fused_model:  # as a fused scan scores them (models/fused.py)
            halves = split_parts(vectors)
            scores = {e: self.norm(e, halves[e]) for e in self.parts}
            thresholds = {e: p.threshold for e, p in self.parts.items()}
            hit |= fuse(scores, thresholds, self.fused_threshold) >= self.fused_threshold
        return hit


def voice_models(registry: Registry) -> dict[str, str]:
    """Encoder name -> model id of the store's voice models (by the size of their vectors)."""
    out = {}
    for modality, model in registry.models():
        if modality == "voice" and not is_narrow(model):  # band-limited templates are no encoder of their own
            for _, vecs, _ in registry.iter_rows("samples", "voice", model, chunk=1):
                if vecs.shape[-1] in ENCODERS:
                    out[ENCODERS[vecs.shape[-1]]] = model
                break
    return out


def voice_judge(registry: Registry, pid: str) -> VoiceJudge | None:
    """The judge of pid's archived voice segments (read before their templates are deleted), or None when they
    have no voice enrolled."""
    from ..errors import ModelError
    from ..models.voice_cohort import load_cohort

    parts = []
    models = voice_models(registry)
    for encoder, model in models.items():
        cent = registry.centroids_of("voice", model, [pid]).get(pid)
        if cent is None:
            continue
        try:
            load_cohort(model)
        except ModelError:  # no cohort to score with (a scan could not use this model either): never block a removal
            continue
        threshold = config.VOICE_DEFAULTS[encoder][0]
        cal = registry.calibration("voice", model)
        narrow = registry.centroids_of("voice", narrow_id(model), [pid]).get(pid)
        try:
            load_cohort(narrow_id(model)) if narrow is not None else None
        except ModelError:
            narrow = None
        parts.append(Part(encoder, model, np.asarray(cent, np.float32),
                          min(threshold, cal.threshold) if cal is not None else threshold,
                          None if narrow is None else np.asarray(narrow, np.float32)))
    if not parts:
        return None
    return VoiceJudge(parts, config.VOICE_DEFAULTS["fused"][0], _fused_model(models))


def _fused_model(models: dict[str, str]) -> str | None:
    """The fused id a scan gives its voice partitions: from the store's voice models, or the shipped encoder's id
    for a part nobody is enrolled with (a scan of a store with GE2E voices only still archives both halves)."""
    from ..errors import ModelError
    from ..models.voice import voice_encoder

    try:
        ids = [models.get(e) or voice_encoder(e).model_id for e in PARTS]
    except ModelError:
        return None
    return fused_id(*ids)
