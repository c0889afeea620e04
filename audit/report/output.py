"""Findings out, for library callers that hold findings rather than a scan's record (audit.write_findings)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from ..evidence import Evidence
from ..findings import Finding
from .record import write_record

if TYPE_CHECKING:
    from ..store import Store


def write_findings(findings: Iterable[Finding | dict], path: str | Path, store: Store | None = None,
                   meta: dict | None = None) -> None:
    """Write findings to .csv, .json, .jsonl, .parquet or .html (a self-contained evidence page), atomically.

    A scan's own record (`run.record()`, written with audit.write_record) carries the pictures and the run's
    metadata; findings written here carry what they hold (a Finding's pictures), plus:
    :param store: the store whose enrolled reference crops are shown beside the flagged faces
    :param meta: run metadata (files scanned, use, ...) for the page and the Parquet footer
    """
    from ..scan.run import reference_crops

    evidence = Evidence.of(list(findings), meta)
    if store is not None:
        evidence.references = reference_crops(store, evidence.findings)
    write_record(evidence, path, store.cipher if store is not None else None)
