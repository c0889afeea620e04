"""A face's quality measures (models/quality.py, in a finding's extra) in words for the report."""

from __future__ import annotations

from typing import Any

from ..models.quality import LOW_COLOUR, LOW_POSE, LOW_SCORE, LOW_SHARPNESS, LOW_SIZE
from .filters import to_float


def words(q: Any) -> str | None:
    """'sharp, frontal, 380 px face' / 'small (48 px), blurred, turned: low quality', or None without measures."""
    if not isinstance(q, dict):
        return None
    size, sharp, pose = to_float(q.get("size")), to_float(q.get("sharpness")), to_float(q.get("pose"))
    score, colour = to_float(q.get("score")), to_float(q.get("colour"))
    parts = []
    if sharp is not None:
        parts.append("sharp" if sharp >= LOW_SHARPNESS else "blurred")
    if pose is not None:
        parts.append("frontal" if pose >= 0.8 else "slightly turned" if pose >= LOW_POSE else "turned")
    if score is not None and score < LOW_SCORE:
        parts.append("uncertain detection")
    if colour is not None and colour < LOW_COLOUR:
        parts.append("greyscale or faded")
    if size is not None:
        parts.append(f"{size:.0f} px face" + (" (small)" if size < LOW_SIZE else ""))
    if not parts:
        return None
    low = q.get("low")
    return ", ".join(parts) + (": low quality, too poor for finer judgements" if isinstance(low, list) and low
                               else "")
