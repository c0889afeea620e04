"""Findings -> typed DataFrame -> CSV / JSON / JSON Lines / Parquet files, and back."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import AuditError
from ..findings import COLUMNS, Finding
from ..store.files import atomic_write

if TYPE_CHECKING:
    import pandas as pd

TABLE_FORMATS = (".csv", ".json", ".jsonl", ".parquet")
FORMATS = TABLE_FORMATS + (".html",)
NESTED = ("bbox", "contributors", "extra")  # JSON text in CSV; typed lists in Parquet and DataFrames
FLOATS = ("similarity", "threshold", "fmr", "start", "end")
INTS = ("frames",)
CONTRIBUTOR = (("person", "string"), ("name", "string"), ("similarity", "float64"), ("weight", "float64"),
               ("consent", "string"))


INCOMPLETE = "incomplete"  # the kind of the status row that ends an interrupted scan's findings (record.py)

FORMULA = ("=", "+", "-", "@", "\t", "\r", "'")  # a spreadsheet runs cells starting so; "'" escapes itself


def csv_cell(value: Any) -> Any:
    """A text cell a spreadsheet shows as text: one starting with = + - @ (or tab, CR, ') gets a leading '."""
    return "'" + value if isinstance(value, str) and value.startswith(FORMULA) else value


def csv_uncell(value: Any) -> Any:
    """Undo csv_cell when reading back."""
    return value[1:] if isinstance(value, str) and value.startswith("'") and value[1:].startswith(FORMULA) else value


def tsv_field(value: Any) -> str:
    """One field of tab-separated text output: backslash, tab, newline and other control characters escaped,
    so a record is always one line whatever a file name or display name holds."""
    text = "-" if value is None else str(value)
    out = []
    for c in text:
        if c == "\\":
            out.append("\\\\")
        elif c in _ESCAPES:
            out.append(_ESCAPES[c])
        elif ord(c) < 32 or 0x7f <= ord(c) < 0xa0 or c in ("\u2028", "\u2029") or 0x202a <= ord(c) <= 0x202e \
                or 0x2066 <= ord(c) <= 0x2069:
            out.append(f"\\u{ord(c):04x}" if ord(c) > 0xff else f"\\x{ord(c):02x}")
        else:
            out.append(c)
    return "".join(out)


_ESCAPES = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def tsv(*fields: Any) -> str:
    """One line of tab-separated output."""
    return "\t".join(tsv_field(f) for f in fields)


def records(findings: Iterable[Finding | dict]) -> list[dict[str, Any]]:
    """Findings as plain dicts."""
    return [f.to_dict() if isinstance(f, Finding) else dict(f) for f in findings]


def findings_frame(findings: Iterable[Finding | dict]) -> pd.DataFrame:
    """Any findings as a DataFrame with typed columns: floats, nullable ints, strings; bbox a list of ints,
    contributors a list of dicts, extra a dict."""
    import pandas as pd  # imported when needed: a one-file scan should not pay for it

    cols = list(COLUMNS)
    df = pd.DataFrame(records(findings), columns=cols)
    for col in cols:
        if col in FLOATS:
            df[col] = pd.to_numeric(df[col], errors="coerce").astype("float64")
        elif col in INTS:
            df[col] = pd.to_numeric(df[col], errors="coerce").astype("Int64")
        elif col not in NESTED:
            df[col] = df[col].astype("string")
    return df


def _parquet_schema(extra: tuple[str, ...] = ()):
    import pyarrow as pa

    kinds = {"string": pa.string(), "float64": pa.float64()}
    fields = []
    for col in COLUMNS:
        if col == "bbox":
            fields.append(pa.field(col, pa.list_(pa.int64())))
        elif col == "contributors":
            fields.append(pa.field(col, pa.list_(pa.struct([(n, kinds[t]) for n, t in CONTRIBUTOR]))))
        elif col in FLOATS:
            fields.append(pa.field(col, pa.float64()))
        elif col in INTS:
            fields.append(pa.field(col, pa.int64()))
        else:  # strings; extra (free-form) as JSON text
            fields.append(pa.field(col, pa.string()))
    return pa.schema(fields + [pa.field(col, pa.string()) for col in extra])  # extra: review columns, as text


def _parquet_bytes(findings: list[dict], meta: dict | None, extra: tuple[str, ...] = ()) -> bytes:
    """One fixed schema for every scan, so many scans' files read as one dataset; run metadata in the footer."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = []
    for r in findings:
        r = dict(r)
        r["extra"] = json.dumps(r["extra"]) if r.get("extra") else None
        if r.get("contributors"):
            r["contributors"] = [{n: c.get(n) for n, _ in CONTRIBUTOR} for c in r["contributors"]]
        rows.append(r)
    schema = _parquet_schema(extra)
    if meta:
        schema = schema.with_metadata({"likeness-audit": json.dumps(meta, default=str)})
    table = pa.Table.from_pylist(rows, schema=schema)
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def json_line(finding: Finding | dict) -> str:
    """One finding as a JSON Lines row."""
    return json.dumps(records([finding])[0], ensure_ascii=False)


def write_table(findings: Iterable[Finding | dict], path: Path, meta: dict | None = None,
                extra: tuple[str, ...] = ()) -> None:
    """Write findings by the file's extension (.csv, .json, .jsonl, .parquet), atomically; extra: text columns
    after the findings' own (a reviewed export's decisions)."""
    rows = records(findings)
    ext = path.suffix.lower()
    if ext == ".json":
        data = json.dumps(rows, indent=1, ensure_ascii=False).encode()
    elif ext == ".jsonl":
        data = "".join(json_line(f) + "\n" for f in rows).encode()
    elif ext == ".csv":
        import pandas as pd

        for row in rows:
            for key in NESTED:
                row[key] = json.dumps(row[key]) if row.get(key) not in (None, {}) else None
            for key, value in row.items():
                row[key] = csv_cell(value)
        data = pd.DataFrame(rows, columns=list(COLUMNS) + list(extra)).to_csv(index=False).encode()
    elif ext == ".parquet":
        data = _parquet_bytes(rows, meta, extra)
    else:
        raise AuditError(f"unknown output format '{ext}'; use one of {', '.join(FORMATS)}")
    atomic_write(path, data)
    if meta and ext != ".parquet":  # Parquet keeps the run metadata in its footer; the others beside the file
        atomic_write(sidecar(path), json.dumps(meta, indent=1, ensure_ascii=False, default=str).encode())


def sidecar(path: Path) -> Path:
    """Where the run metadata of a CSV / JSON / JSON Lines findings file is written: FILE.meta.json."""
    return path.with_name(path.name + ".meta.json")


def read_meta(path: Path) -> dict[str, Any]:
    """The run metadata saved with a findings file (Parquet footer, else FILE.meta.json); {} when there is none."""
    try:
        if path.suffix.lower() == ".parquet":
            import pyarrow.parquet as pq

            raw = (pq.read_schema(path).metadata or {}).get(b"likeness-audit")
            meta = json.loads(raw) if raw else {}
        else:
            side = sidecar(path)
            meta = json.loads(side.read_text()) if side.is_file() else {}
    except (OSError, ValueError) as exc:
        raise AuditError(f"cannot read the run metadata of {path}: {exc}") from exc
    return meta if isinstance(meta, dict) else {}


def _plain(value: Any) -> Any:
    """Parquet gives numpy arrays for lists; findings hold plain lists."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def read_findings(path: str | Path) -> list[dict[str, Any]]:
    """Load saved findings from any of the table formats."""
    path = Path(path)
    ext = path.suffix.lower()
    try:
        if ext == ".json":
            rows = json.loads(path.read_text())
        elif ext == ".jsonl":
            rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        elif ext in (".csv", ".parquet"):
            import pandas as pd
            import pyarrow.parquet as pq

            # Parquet read by path on one thread: pandas would hand pyarrow a Python file object, and the reader
            # threads of such a read have aborted the process at exit (std::terminate, exit 134) after its work.
            df = (pd.read_csv(path) if ext == ".csv"
                  else pq.read_table(str(path), use_threads=False).to_pandas(use_threads=False))
            rows = df.astype(object).where(df.notna(), None).to_dict("records")
            for row in rows:
                if ext == ".csv":
                    row.update({k: csv_uncell(v) for k, v in row.items()})
                for key in NESTED:
                    if isinstance(row.get(key), str):
                        row[key] = json.loads(row[key])
                    else:
                        row[key] = _plain(row.get(key))
                if row.get("extra") is None:
                    row["extra"] = {}
        else:
            raise AuditError(f"cannot read findings from '{ext}' files")
    except (OSError, ValueError) as exc:
        raise AuditError(f"cannot read findings from {path}: {exc}") from exc
    if not isinstance(rows, list):
        raise AuditError(f"{path} does not hold a list of findings")
    # An interrupted scan's status row says so in the file itself; the run metadata says it too, so it is no finding.
    return [r for r in rows if not (isinstance(r, dict) and r.get("kind") == INCOMPLETE)]
