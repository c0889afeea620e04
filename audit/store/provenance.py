"""Where enrolled samples came from, for evidence: source file SHA-256, enrolment time, the person's reference crop."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class SampleInfo:
    """One enrolled sample's provenance (never its vector)."""

    id: int
    person: str
    modality: str
    model: str
    source_sha256: str  # the enrolled file's SHA-256
    enrolled: str  # UTC, ISO 8601
    start: float | None  # seconds into the file (video frames, voice recordings)
    end: float | None
    reference_sample: int | None  # the sample the person's one reference crop was cut from (None: not recorded)

    def to_dict(self) -> dict:
        """Plain dict for JSON."""
        return dict(self.__dict__)


def add_reference_column(db: sqlite3.Connection) -> None:
    """Stores made before the reference crop named its sample get the column (empty for their old crops)."""
    if "sample" not in {r[1] for r in db.execute("PRAGMA table_info(references_)")}:
        db.execute("ALTER TABLE references_ ADD COLUMN sample INTEGER")


def sample_info(db: sqlite3.Connection, ids: Iterable[int]) -> dict[int, SampleInfo]:
    """Provenance of the samples with these ids that exist (unknown ids are left out)."""
    wanted = sorted({int(i) for i in ids})
    out: dict[int, SampleInfo] = {}
    for k in range(0, len(wanted), 500):  # SQLite limits the parameters of one statement
        chunk = wanted[k : k + 500]
        rows = db.execute(
            "SELECT s.id, s.person, s.modality, s.model, s.source_sha256, s.created, s.start, s.end, r.sample "
            "FROM samples s LEFT JOIN references_ r ON r.person = s.person AND r.modality = s.modality "
            f"WHERE s.id IN ({','.join('?' * len(chunk))})", chunk).fetchall()
        out.update({r[0]: SampleInfo(*r) for r in rows})
    return out
