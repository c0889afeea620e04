"""Face quality: how much a detected face can be trusted for fine judgements (composites), in one record.

The parts: the detector's score, the face's size (shorter side of the box, pixels), sharpness (variance of the
Laplacian of the aligned 112 px crop), pose (1 frontal, towards 0 as the head turns; from the 5 landmarks) and the
recognizer's raw embedding norm before normalising, which for ArcFace-style models grows with how clearly the
face shows its identity (blur, low resolution, greyscale and heavy compression all lower it), and colourfulness
(greyscale and faded photos have none).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

# A face is low quality when any of these holds. Chosen with benchmarks/face_robustness.py on split A of the shared
# people (w600k_mbf); see docs/composites.md ("Face quality").
# Raw embedding norm; clean shared faces: 5th percentile 21.6, heavy blur median 18.9. Measured for w600k_mbf: another
# recognizer (--models) has its own scale, and this test then only means what it says once measured for it.
LOW_NORM = 21.0
LOW_SIZE = 64.0  # face box shorter side, pixels
LOW_SHARPNESS = 30.0  # Laplacian variance of the aligned crop
LOW_SCORE = 0.6  # detector score
LOW_POSE = 0.5  # frontalness
LOW_COLOUR = 4.0  # channel spread: greyscale, sepia, faded


@dataclass
class Quality:
    """Quality measures of one detected face."""

    score: float  # detector confidence
    size: float  # shorter side of the box, pixels
    sharpness: float  # Laplacian variance of the aligned crop
    pose: float  # 1 frontal .. 0 profile
    norm: float  # raw embedding norm (0 when unknown)
    colour: float  # mean spread between the colour channels of the aligned crop, 0..255 (0: greyscale)

    @property
    def low(self) -> bool:
        """Too low for fine judgements such as composites."""
        return bool(self.reasons())

    def reasons(self) -> list[str]:
        """Why the face is low quality (empty when it is not)."""
        out = []
        if 0 < self.norm < LOW_NORM:
            out.append("weak embedding")
        if self.size < LOW_SIZE:
            out.append("small")
        if self.sharpness < LOW_SHARPNESS:
            out.append("blurred")
        if self.score < LOW_SCORE:
            out.append("uncertain detection")
        if self.pose < LOW_POSE:
            out.append("turned")
        if self.colour < LOW_COLOUR:
            out.append("greyscale")
        return out

    def to_dict(self) -> dict[str, float]:
        """Rounded values for findings."""
        return {k: round(float(v), 3) for k, v in asdict(self).items()}


def frontalness(kps: np.ndarray) -> float:
    """1 for a frontal face, towards 0 as the head turns (nose off the eyes' midline)."""
    (lx, _), (rx, _), (nx, _) = kps[0], kps[1], kps[2]
    eye = max(abs(rx - lx), 1e-6)
    return float(max(0.0, 1.0 - abs(nx - (lx + rx) / 2) / eye * 2))


def measure(face) -> Quality:
    """The quality of an audit.models.face.Face."""
    return Quality(float(face.score), float(face.size), float(face.sharpness), frontalness(face.kps),
                   float(getattr(face, "norm", 0.0)), colourfulness(face.crop))


def colourfulness(crop: np.ndarray) -> float:
    """Mean spread between the channels of a BGR crop: 0 for greyscale, a few units for sepia or washed-out colour."""
    if crop.ndim < 3 or crop.shape[2] < 3:
        return 0.0
    c = crop.astype(np.int16)
    return float((c.max(axis=2) - c.min(axis=2)).mean())
