"""Bulk enrolment: many people's photos from a CSV manifest, embedded in one process and written in batches.

Columns: person, path (a file or folder, relative to the manifest's folder), and optionally name, allow and deny
(consent scopes separated by ';'). A person's rows may repeat, one photo each. Files already enrolled for a person
are skipped, so an interrupted run is resumed by running it again: batches written before the interruption stay.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import AuditError, EnrollError, InputError
from ..store import Store, naming
from .enroll import EnrollResult, face_samples

BATCH_PEOPLE = 64  # people per write: one transaction and one index update each


@dataclass
class ManifestRow:
    """One person of a manifest: their files and, optionally, name and consent scopes."""

    person: str
    name: str | None = None
    paths: list[Path] = field(default_factory=list)
    allow: set[str] = field(default_factory=set)
    deny: set[str] = field(default_factory=set)


@dataclass
class ManifestResult:
    """What a manifest enrolment did, per person."""

    people: list[EnrollResult] = field(default_factory=list)
    failed: dict[str, AuditError] = field(default_factory=dict)  # person -> why nothing was enrolled

    @property
    def added(self) -> int:
        """Face samples added in all."""
        return sum(r.added for r in self.people)


def read_manifest(path: str | os.PathLike) -> list[ManifestRow]:
    """The people of a manifest in order of first appearance; EnrollError for a missing column or person."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            missing = {"person", "path"} - set(reader.fieldnames or [])
            if missing:
                raise EnrollError(f"manifest {path.name} lacks the column(s) {', '.join(sorted(missing))} "
                                  "(need person, path; optional name, allow, deny)", code="bad-manifest",
                                  path=str(path))
            rows: dict[str, ManifestRow] = {}
            for n, rec in enumerate(reader, start=2):
                pid, file = (rec.get("person") or "").strip(), (rec.get("path") or "").strip()
                if not pid or not file:
                    raise EnrollError(f"manifest {path.name} line {n}: person and path are required",
                                      code="bad-manifest", path=str(path))
                row = rows.setdefault(pid, ManifestRow(pid))
                row.name = (rec.get("name") or "").strip() or row.name
                row.paths.append(path.parent / file)
                for col, scopes in (("allow", row.allow), ("deny", row.deny)):
                    scopes |= {s.strip() for s in (rec.get(col) or "").split(";") if s.strip()}
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise EnrollError(f"cannot read manifest {path}: {exc}", code="bad-manifest", path=str(path)) from exc
    return list(rows.values())


def enroll_manifest(store: Store, manifest: str | os.PathLike, pick: str | None = None, reference: bool = True,
                    batch: int = BATCH_PEOPLE, progress: Callable[[int], None] | None = None,
                    force: bool = False) -> ManifestResult:
    """Enroll every person of a manifest with the store's face model; progress(n) after each n people.

    Each person's photos get the checks of a single enrolment (enroll.check_agreement, unless force) against
    everyone enrolled, the people of the batch not yet written included.
    """
    rows = read_manifest(manifest)
    model = store.face_model
    out = ManifestResult()
    pending: list[tuple[ManifestRow, list, tuple | None]] = []

    def flush() -> None:
        store.add_people([(r.person, r.name, samples, ref) for r, samples, ref in pending])
        for r, _, _ in pending:
            if r.allow or r.deny:
                store.consent(r.person, allow=sorted(r.allow), deny=sorted(r.deny), note="manifest")
        pending.clear()

    for row in rows:
        result = EnrollResult(row.person)
        try:
            naming.check_id(row.person)
            naming.check_name(row.name)
            samples, ref = face_samples(store, model, row.person, row.paths, pick, reference, result, force,
                                        pending=[(r.person, ss) for r, ss, _ in pending])
        except (EnrollError, InputError) as exc:
            out.failed[row.person] = exc
            samples, ref = [], None
        out.people.append(result)
        if samples:
            pending.append((row, samples, ref))
        if len(pending) >= batch:
            flush()
        if progress is not None:
            progress(1)
    if pending:
        flush()
    return out
