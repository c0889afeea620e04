"""Write findings in any format the CLI offers; the HTML page gets its pictures from the files and the store."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from ..findings import Finding
from ..store.files import atomic_write
from .tables import records, write_table

if TYPE_CHECKING:
    from ..store import Store


def write_findings(findings: Iterable[Finding | dict], path: str | Path, store: Store | None = None,
                   meta: dict | None = None) -> None:
    """Write findings to .csv, .json, .jsonl, .parquet or .html (a self-contained evidence page), atomically.

    :param store: for HTML, the store whose reference crops are shown beside the flagged faces
    :param meta: run metadata (files scanned, use, ...) for the page and the Parquet footer
    """
    from importlib.metadata import version

    path = Path(path)
    rows = records(findings)
    meta = {"created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "version": version("likeness-audit"), **(meta or {})}
    if path.suffix.lower() != ".html":
        write_table(rows, path, meta)
        return
    from .evidence import Evidence
    from .html import render_html

    evidence = Evidence(store, rows)
    page = render_html(rows, crops=evidence.crop, references=evidence.reference, waveforms=evidence.waveform,
                       meta=meta, samples=evidence.sample)
    atomic_write(path, page.encode("utf-8", "replace"))
