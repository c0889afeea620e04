"""The finding record: one row of evidence in a scan's output."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Finding:
    """One flagged face or voice (kind match/composite), or one file that could not be read (kind error)."""

    path: str
    sha256: str | None
    modality: str | None  # "face" | "voice"; None for a file error
    kind: str  # "match" | "composite" | "error"
    person: str | None = None
    name: str | None = None
    similarity: float | None = None
    threshold: float | None = None
    fmr: float | None = None  # false-match rate the threshold stands for
    threshold_source: str | None = None  # "default" or "calibrated <date>"
    bbox: list[int] | None = None  # x1, y1, x2, y2 in the decoded (rotated) image
    start: float | None = None  # seconds; None for still images
    end: float | None = None
    frames: int | None = None  # sampled frames / voiced segments that matched
    consent: str | None = None  # allowed | denied | expired | unknown
    model: str | None = None  # model id (SHA-256 prefix of the weights)
    index: str | None = None  # index version (checksum of the index file)
    error: str | None = None
    contributors: list[dict[str, Any]] | None = None  # composites: [{person, similarity, weight}]
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON/CSV."""
        return asdict(self)
