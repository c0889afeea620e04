"""The evidence record: a scan's findings, the pictures cut while the media was decoded, and the run's own
metadata. A scan makes it; every output format carries it; `report` renders from it alone (no media re-read)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .findings import Finding, Pictures, Reference

# Parts an output can lack (one written before evidence records, or a CSV without its sidecar): the page says so.
PICTURES, RUN = "pictures", "run metadata"
NO_RUN = "written before evidence records, or by a caller that gave no run metadata"


@dataclass
class Evidence:
    """Findings (plain rows), one Pictures (or None) per row, and what the run itself recorded."""

    findings: list[dict[str, Any]]
    pictures: list[Pictures | None]
    run: dict[str, Any] = field(default_factory=dict)
    references: dict[str, Reference] = field(default_factory=dict)  # person -> enrolled reference crop
    missing: dict[str, str] = field(default_factory=dict)  # parts this record lacks (PICTURES, RUN) -> why
    # Review decisions, when attached (store/review.py with_reviews, or read back from a reviewed export): finding id
    # -> {state, reviewer, note, time, answers}; None: the record carries none (not the same as "all open").
    reviews: dict[str, dict] | None = None

    @classmethod
    def of(cls, findings: list[Finding | dict], run: dict[str, Any] | None = None,
           references: dict[str, Reference] | None = None) -> Evidence:
        """A record from findings (Finding objects keep their pictures; plain rows have none)."""
        rows = [f.to_dict() if isinstance(f, Finding) else dict(f) for f in findings]
        pics = [f.pictures if isinstance(f, Finding) else None for f in findings]
        return cls(rows, pics, dict(run or {}), dict(references or {}), {} if run else {RUN: NO_RUN})

    @property
    def complete(self) -> bool:
        """Whether every file the run found was scanned (a record without run metadata cannot say: False)."""
        return bool(self.run.get("complete"))

    def counts(self) -> str:
        """'96 of 200 files scanned' (or what is known of it)."""
        done, total = self.run.get("files_scanned"), self.run.get("files_total")
        if done is None:
            return "files scanned: not recorded"
        return f"{done} of {total} files scanned" if total is not None else f"{done} files scanned"

    def status(self) -> str:
        """'complete: 200 of 200 files scanned', or 'incomplete: 96 of 200 files scanned'."""
        if not self.run:
            return "no run metadata: an output written before evidence records"
        return f"{'complete' if self.complete else 'incomplete'}: {self.counts()}"


def merge(records: list[Evidence]) -> Evidence:
    """Several records (the shards of one scan, or several scans) as one: counts added up, the earliest start and
    latest finish, complete only when every part is."""
    if len(records) == 1:
        return records[0]
    rows = [r for e in records for r in e.findings]
    pics = [p for e in records for p in e.pictures]
    missing = {part: why for e in records for part, why in e.missing.items()}
    refs = {p: r for e in records for p, r in e.references.items()}
    runs = [e.run for e in records if e.run]
    reviews = None if all(e.reviews is None for e in records) else {
        k: v for e in records for k, v in (e.reviews or {}).items()}
    if not runs:
        return Evidence(rows, pics, {}, refs, missing, reviews)
    run: dict[str, Any] = {**runs[0], "parts": len(records)}
    for key in ("files_scanned", "files_total", "errors", "unread", "duplicates", "cached", "ai_declared"):
        values = [r.get(key) for r in runs]
        run[key] = None if None in values or len(runs) < len(records) else sum(values)
    run["started"] = min((r["started"] for r in runs if r.get("started")), default=None)
    run["finished"] = max((r["finished"] for r in runs if r.get("finished")), default=None)
    run["complete"] = len(runs) == len(records) and all(r.get("complete") for r in runs)
    run["warnings"] = list(dict.fromkeys(w for r in runs for w in r.get("warnings") or []))
    return Evidence(rows, pics, run, refs, missing, reviews)
