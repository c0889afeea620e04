"""The finding record: one row of evidence in a scan's output, and the pictures that go with it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any


@dataclass
class Pictures:
    """What a report shows beside a finding, made while the scan had the media decoded (never re-read later)."""

    crop: bytes | None = None  # the found face, cut from the image or frame the scan decoded (JPEG)
    waveform: bytes | None = None  # a voice finding: the recording's waveform with the span shaded (PNG)
    scene: bytes | None = None  # the whole image or frame, reduced (media/pictures.SCENE_SIDE), the face boxed (JPEG)

    def __bool__(self) -> bool:
        return bool(self.crop or self.waveform or self.scene)


@dataclass
class Reference:
    """A person's enrolled reference crop as the run found it, and which enrolled sample it was cut from."""

    crop: bytes
    sample: int | None = None  # vector id of the sample the crop shows (None: not recorded)


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
    # Not a field (so not a column): the scan sets each finding's evidence pictures; they travel in the output's
    # evidence sidecar (audit/report/record.py), never in the findings table.
    pictures = None

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON/CSV."""
        return asdict(self)


COLUMNS = tuple(f.name for f in fields(Finding))  # a findings table's columns


def finding_key(row: dict[str, Any]) -> str:
    """What identifies a finding whatever file or format it travels in: the scanned file's content, what was found,
    who, where and when (SHA-256 hex). Evidence pictures and review decisions are found again by it."""
    who = [c.get("person") for c in row.get("contributors") or [] if isinstance(c, dict)]
    parts = [row.get(k) for k in ("sha256", "modality", "kind", "person", "bbox", "start", "end")] + [who]
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()


def finding_id(row: dict[str, Any] | Finding) -> str:
    """A finding's stable id (16 hex digits of finding_key): the same finding of the same file has the same id in
    every scan, output format and shard; `review --finding ID` takes it."""
    return finding_key(row.to_dict() if isinstance(row, Finding) else row)[:16]
