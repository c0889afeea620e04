"""The evidence record on disk: findings in the chosen format, the run's metadata with them (Parquet footer, or
FILE.meta.json), and the pictures in a sidecar FILE.evidence that the output names. Pictures are found again by
what their finding says (content hash, kind, person, box, time), not by row number, so a findings file that was
filtered, merged or re-ordered keeps its pictures, and an edited row loses only its own. The sidecar is sealed
with the store's key when the store is encrypted."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

from ..errors import AuditError, InputError
from ..evidence import NO_RUN, PICTURES, RUN, Evidence, merge
from ..findings import Pictures, Reference, finding_key
from ..store.columns import column
from ..store.files import atomic_write
from . import reviews
from .tables import FORMATS, INCOMPLETE, read_findings, read_meta, write_table

SIDECAR = ".evidence"
AAD = b"likeness-audit evidence"


def output_format(path: str | Path) -> str:
    """The format an output path asks for ('.csv', '.json', '.jsonl', '.parquet', '.html'), decided here only."""
    ext = Path(path).suffix.lower()
    if ext not in FORMATS:
        raise InputError(f"unknown output format '{Path(path).suffix}'; use one of {', '.join(FORMATS)}",
                         code="unknown-format", path=str(path))
    return ext


def sidecar(path: Path) -> Path:
    """Where an output's pictures are kept: FILE.evidence."""
    return path.with_name(path.name + SIDECAR)


def status_row(evidence: Evidence) -> dict[str, Any]:
    """The row that ends an interrupted scan's findings, so every format says so with its counts."""
    return {"path": "", "sha256": None, "modality": None, "kind": INCOMPLETE,
            "error": f"{evidence.status()}; the files not scanned were not checked (continue with --resume)",
            "extra": {}}


def write_record(evidence: Evidence, path: str | Path, cipher=None) -> None:
    """Write a record as .csv, .json, .jsonl or .parquet (findings + run metadata + the pictures' sidecar) or as
    one self-contained .html page; atomically. cipher: the store's, to seal the sidecar of an encrypted store."""
    path = Path(path)
    ext = output_format(path)
    if ext == ".html":
        from .html import render_record

        atomic_write(path, render_record(evidence).encode("utf-8", "replace"))
        return
    rows = list(evidence.findings)
    if evidence.run and not evidence.complete:
        rows.append(status_row(evidence))
    run = {**evidence.run, "evidence": sidecar(path).name} if evidence.run else None
    extra = reviews.COLUMNS if evidence.reviews is not None else ()
    write_table(reviews.with_columns(rows, evidence.reviews), path, run, extra)
    data = _pictures_bytes(evidence)
    atomic_write(sidecar(path), cipher.seal(data, AAD) if cipher is not None else data)


def read_record(path: str | Path, cipher=None) -> Evidence:
    """A record back from any table format: findings, run metadata, and the pictures when the sidecar is there,
    can be opened (else `missing` says which part is not there, and why)."""
    path = Path(path)
    rows = read_findings(path)
    decided = reviews.lift(rows)
    run, missing = read_meta(path), {}
    if not run.get("started"):  # written before evidence records: its metadata is the report's guess, not the run's
        missing[RUN] = NO_RUN
    pics: list[Pictures | None] = [None] * len(rows)
    refs: dict[str, Reference] = {}
    try:
        kept, refs = _read_pictures(path, cipher)
        pics = [kept.get(picture_key(r)) for r in rows]
    except AuditError as exc:
        missing[PICTURES] = str(exc)
    return Evidence(rows, pics, run, refs, missing, decided)


def read_records(paths: list[str | Path], cipher=None) -> Evidence:
    """Several outputs (the shards of a scan) as one record."""
    return merge([read_record(p, cipher) for p in paths])


def picture_key(row: dict[str, Any]) -> str:
    """What identifies a finding's pictures: the file's content, what was found, who, where and when."""
    return finding_key(row)


def _pictures_bytes(evidence: Evidence) -> bytes:
    """The sidecar: a Parquet table (key, crop, waveform, scene), and the reference crops in its footer."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    kept = {picture_key(r): p for r, p in zip(evidence.findings, evidence.pictures) if p}
    table = pa.table({"key": column(list(kept), pa.string()),
                      "crop": column([p.crop for p in kept.values()], pa.binary()),
                      "waveform": column([p.waveform for p in kept.values()], pa.binary()),
                      "scene": column([p.scene for p in kept.values()], pa.binary())})
    refs = {person: {"crop": base64.b64encode(r.crop).decode(), "sample": r.sample}
            for person, r in evidence.references.items()}
    table = table.replace_schema_metadata({"references": json.dumps(refs)})
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def _read_pictures(path: Path, cipher) -> tuple[dict[str, Pictures], dict[str, Reference]]:
    """The pictures of the findings file at path, from its sidecar; AuditError saying why when they cannot be had."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ..store.crypto import sealed

    side = sidecar(path)
    if not side.is_file():
        raise AuditError(f"no evidence sidecar {side.name} beside {path.name} (move it with the findings file)")
    data = side.read_bytes()
    if sealed(data):
        if cipher is None:
            raise AuditError(f"{side.name} is sealed with the store's key: give it ($AUDIT_KEY, $AUDIT_KEY_FILE "
                             "or --key-file)")
        data = cipher.open(data, AAD, side.name)
    try:
        # No reader threads (as the archive's reads): a pool left running at exit has aborted the process.
        table = pq.ParquetFile(pa.BufferReader(data)).read(use_threads=False)
        meta = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
        refs = json.loads(meta.get("references", "{}"))
    except (pa.ArrowException, ValueError, OSError) as exc:
        raise AuditError(f"{side.name} cannot be read: {exc}") from exc
    columns = [table.column(c).to_pylist() for c in ("key", "crop", "waveform")]
    columns.append(table.column("scene").to_pylist() if "scene" in table.column_names else [None] * table.num_rows)
    pics = {key: Pictures(crop, wave, scene) for key, crop, wave, scene in zip(*columns)}  # older sidecars: no scene
    return pics, {p: Reference(base64.b64decode(r["crop"]), r.get("sample")) for p, r in refs.items()}
