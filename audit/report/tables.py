"""Findings -> DataFrame -> CSV / JSON / JSON Lines / Parquet files, and back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import AuditError
from ..findings import Finding
from ..store.index import atomic_write

TABLE_FORMATS = (".csv", ".json", ".jsonl", ".parquet")
FORMATS = TABLE_FORMATS + (".html",)
NESTED = ("bbox", "contributors", "extra")  # kept as JSON text in flat formats


def records(findings: list[Finding] | list[dict]) -> list[dict[str, Any]]:
    """Findings as plain dicts."""
    return [f.to_dict() if isinstance(f, Finding) else dict(f) for f in findings]


def to_frame(findings: list[Finding] | list[dict]) -> pd.DataFrame:
    """A flat table: nested fields become JSON text so CSV and Parquet hold them the same way."""
    cols = list(Finding.__dataclass_fields__)
    rows = records(findings)
    for row in rows:
        for key in NESTED:
            if row.get(key) is not None and not isinstance(row[key], str):
                row[key] = json.dumps(row[key]) if row[key] != {} else None
    return pd.DataFrame(rows, columns=cols)


def json_line(finding: Finding | dict) -> str:
    """One finding as a JSON Lines row."""
    return json.dumps(records([finding])[0], ensure_ascii=False)


def write_table(findings: list[Finding] | list[dict], path: Path) -> None:
    """Write findings by the file's extension (.csv, .json, .jsonl, .parquet), atomically."""
    ext = path.suffix.lower()
    if ext == ".json":
        data = json.dumps(records(findings), indent=1, ensure_ascii=False).encode()
    elif ext == ".jsonl":
        data = "".join(json_line(f) + "\n" for f in findings).encode()
    elif ext == ".csv":
        data = to_frame(findings).to_csv(index=False).encode()
    elif ext == ".parquet":
        data = to_frame(findings).to_parquet(index=False)
    else:
        raise AuditError(f"unknown output format '{ext}'; use one of {', '.join(FORMATS)}")
    atomic_write(path, data)


def read_findings(path: Path) -> list[dict[str, Any]]:
    """Load saved findings from any of the table formats."""
    ext = path.suffix.lower()
    try:
        if ext == ".json":
            rows = json.loads(path.read_text())
        elif ext == ".jsonl":
            rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        elif ext in (".csv", ".parquet"):
            df = pd.read_csv(path) if ext == ".csv" else pd.read_parquet(path)
            rows = df.astype(object).where(df.notna(), None).to_dict("records")
            for row in rows:
                for key in NESTED:
                    if isinstance(row.get(key), str):
                        row[key] = json.loads(row[key])
        else:
            raise AuditError(f"cannot read findings from '{ext}' files")
    except (OSError, ValueError) as exc:
        raise AuditError(f"cannot read findings from {path}: {exc}") from exc
    if not isinstance(rows, list):
        raise AuditError(f"{path} does not hold a list of findings")
    return rows


def write_report(findings: list[Finding] | list[dict], path: Path, evidence=None, meta: dict | None = None) -> None:
    """Write findings by extension; .html renders the evidence page with pictures from `evidence`."""
    if path.suffix.lower() != ".html":
        write_table(findings, path)
        return
    from .html import render_html

    rows = records(findings)
    page = render_html(rows, crops=evidence.crop if evidence else None,
                       references=evidence.reference if evidence else None,
                       waveforms=evidence.waveform if evidence else None, meta=meta)
    atomic_write(path, page.encode("utf-8", "replace"))
