"""The embedding archive: every face and voice segment a scan found (all of them, not only matches), kept in
append-only Parquet partitions so that people who enrol later can be searched against what was already audited
(retro-match, audit/scan/rematch.py) without reading any media again.

Layout: ``archive/<modality>-<model>/<yyyy-mm-dd>/part-<scan>-<n>.parquet``, one file per scan, modality and up to
PART_ROWS rows. Each row is one face (box, detector score, quality, frame time, evidence crop JPEG, sign code and
8-bit search code (archive_sign.py, archive_search.py), float16 embedding) or one voice segment (start, end, float16 embedding; the file's waveform envelope on its
first segment), with the file's SHA-256 and display name and the people the scan attributed it to. A partition of
an encrypted store is sealed whole (AES-256-GCM, associated data naming the partition); a plaintext one carries
CRC32 page checksums that every read checks. A partition that fails either check is damaged: ArchiveDamaged names
it and nothing searches around it.
"""

from __future__ import annotations

import io
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import numpy as np

from ..errors import StoreError
from . import archive_sign
from .columns import column, numbers
from .crypto import MAGIC, Cipher, sealed
from .files import atomic_write, open_fd, read_bytes

ARCHIVE_DIR = "archive"
FORMAT = "1"
PART_ROWS = 50_000  # rows per partition file: a search holds one partition (or one batch) in memory at a time
GROUP_ROWS = 2_048  # rows per Parquet row group: the unit a search reads to re-score a few rows (read_rows)
RETENTION_ENV = "AUDIT_ARCHIVE_DAYS"
DEFAULT_RETENTION_DAYS = 365  # partitions older than this are pruned; 0 turns the archive off
AAD = b"likeness-audit archive "
_NAME = re.compile(r"^part-[A-Za-z0-9_-]+\.parquet$")
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# The 8-bit search code: each component quantised uniformly over [-0.5, 0.5] (what faiss's QT_8bit_uniform with
# those bounds decodes), so a score from codes is within CODE_STEP/2 * sum|q| of the exact one (rows with a
# component outside the range are flagged `clipped` and always re-scored exactly).
CODE_LOW, CODE_SPAN = -0.5, 1.0
CODE_STEP = CODE_SPAN / 255


class ArchiveDamaged(StoreError):
    """An archive partition that cannot be read, or fails its checksum or seal."""


def retention_days() -> int:
    """Days archived partitions are kept ($AUDIT_ARCHIVE_DAYS; default 365; 0: scans archive nothing)."""
    raw = os.environ.get(RETENTION_ENV, "").strip()
    if not raw:
        return DEFAULT_RETENTION_DAYS
    try:
        days = int(raw)
    except ValueError as exc:
        raise StoreError(f"${RETENTION_ENV} must be a whole number of days, not '{raw}'") from exc
    if days < 0:
        raise StoreError(f"${RETENTION_ENV} must be 0 or more days, not {days}")
    return days


def encode(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 codes [n, dim], clipped [n]): the 8-bit search codes of unit vectors."""
    x = (np.asarray(vectors, np.float32) - CODE_LOW) / CODE_SPAN
    clipped = ((x < 0) | (x > 1)).any(axis=1)
    return np.clip(np.floor(x * 255), 0, 255).astype(np.uint8), clipped


@dataclass(frozen=True)
class Partition:
    """One partition file: its path relative to the store folder, and what its folder names say."""

    rel: str
    modality: str
    model: str
    day: str  # yyyy-mm-dd the scan started (UTC)


class Archive:
    """The archive folder of one store; `cipher` seals partitions when the store is encrypted."""

    def __init__(self, home: str | os.PathLike, cipher: Cipher | None = None):
        self.home, self.cipher = Path(home), cipher

    @property
    def root(self) -> Path:
        return self.home / ARCHIVE_DIR

    def partitions(self, modality: str | None = None, model: str | None = None,
                   since: date | None = None) -> list[Partition]:
        """Partitions, oldest day first; only one modality / model, and days on or after `since`, when given."""
        out = []
        if not self.root.is_dir():
            return out
        for group in sorted(self.root.iterdir()):
            mod, _, mo = group.name.partition("-")
            if not group.is_dir() or (modality and mod != modality) or (model and mo != model):
                continue
            for day in sorted(group.iterdir()):
                if not day.is_dir() or not _DAY.match(day.name) or (since and day.name < since.isoformat()):
                    continue
                for f in sorted(day.iterdir()):
                    if _NAME.match(f.name):
                        out.append(Partition(f.relative_to(self.home).as_posix(), mod, mo, day.name))
        return out

    def read(self, part: Partition | str, columns: list[str] | None = None):
        """A partition as a pyarrow Table (checksums or seal checked), or ArchiveDamaged naming it; of `columns`,
        those the partition has (one written before a column existed reads without it)."""
        rel = part.rel if isinstance(part, Partition) else part
        return _parquet(self._open(rel), rel, columns)

    def read_rows(self, part: Partition | str, columns: list[str], rows: np.ndarray):
        """Only these rows (ascending) of a partition: the row groups holding them are read and checked, not the
        whole columns (a search re-scores a few rows of each partition)."""
        import pyarrow.parquet as pq

        rel = part.rel if isinstance(part, Partition) else part
        f = self._open(rel)
        try:
            pf = pq.ParquetFile(f, page_checksum_verification=True)
            ends = np.cumsum([pf.metadata.row_group(g).num_rows for g in range(pf.num_row_groups)])
            groups = np.unique(np.searchsorted(ends, rows, side="right"))
            table = pf.read_row_groups(groups.tolist(), columns=columns, use_threads=False)
        except Exception as exc:  # as _parquet: a truncated file, a bad footer, a failed page checksum
            raise ArchiveDamaged(f"archive partition {rel} is damaged: {exc}", path=rel) from exc
        starts = np.concatenate([[0], ends])[groups]
        sizes = ends[groups] - starts
        at = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        which = np.searchsorted(starts, rows, side="right") - 1
        return table.take(numbers(at[which] + rows - starts[which]))

    def _open(self, rel: str):
        """A partition's Parquet bytes as a file object (memory-mapped, or opened from its seal)."""
        try:
            if self.cipher is None:  # memory-mapped: only the columns asked for are read, without a copy
                data = _mapped(self.home / rel)
                if data[:4].to_pybytes() != MAGIC:
                    import pyarrow as pa

                    return pa.BufferReader(data)
            else:
                data = read_bytes(self.home / rel)
        except OSError as exc:
            raise ArchiveDamaged(f"archive partition {rel} cannot be read: {exc.strerror or exc}", path=rel) from exc
        if self.cipher is not None:
            try:
                data = self.cipher.open(data, AAD + rel.encode(), f"archive partition {rel}")
            except StoreError as exc:
                raise ArchiveDamaged(f"archive partition {rel} is damaged: {exc}", path=rel) from exc
        elif sealed(data):
            raise ArchiveDamaged(f"archive partition {rel} is sealed with a key this store does not have", path=rel)
        return io.BytesIO(data)

    def write(self, table, modality: str, model: str, day: str, name: str) -> str:
        """Write one partition atomically (sealed when the store is encrypted); returns its relative path."""
        import pyarrow.parquet as pq

        rel = f"{ARCHIVE_DIR}/{modality}-{model}/{day}/part-{name}.parquet"
        buf = io.BytesIO()
        # Codes and embeddings uncompressed (they hardly compress, and a memory-mapped read then copies nothing).
        codec = {c: "none" if c in ("code", "embedding") else "zstd" for c in table.column_names}
        pq.write_table(table, buf, compression=codec, write_page_checksum=True, row_group_size=GROUP_ROWS)
        data = buf.getvalue()
        if self.cipher is not None:
            data = self.cipher.seal(data, AAD + rel.encode())
        path = self.home / rel
        for folder in (self.root, path.parent.parent, path.parent):
            if not folder.exists():
                folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        atomic_write(path, data)
        return rel

    def seal_plain(self) -> int:
        """Seal every plaintext partition with this archive's cipher (`encrypt`; idempotent); returns them."""
        done = 0
        for part in self.partitions() if self.cipher is not None else []:
            data = read_bytes(self.home / part.rel)
            if not sealed(data):
                atomic_write(self.home / part.rel, self.cipher.seal(data, AAD + part.rel.encode()))
                done += 1
        return done

    def strays(self) -> list[Path]:
        """Files under the archive that are no partition (a write killed before its rename leaves a .tmp)."""
        if not self.root.is_dir():
            return []
        known = {self.home / p.rel for p in self.partitions()}
        return sorted(p for p in self.root.rglob("*") if p.is_file() and p not in known)

    def problems(self) -> list[str]:
        """verify: every partition read whole; each damaged one named; files that are no partition named."""
        found = [f"{p.relative_to(self.home).as_posix()} is in the archive but is no partition (an interrupted "
                 "write?); the next removal or prune deletes it" for p in self.strays()]
        for part in self.partitions():
            try:
                self.read(part)
            except ArchiveDamaged as exc:
                found.append(str(exc))
        return found

    def prune(self, days: int | None = None, today: date | None = None) -> list[str]:
        """Delete partitions of days older than the retention (default: retention_days()); returns them."""
        days = retention_days() if days is None else days
        if days <= 0:
            return []
        cut = ((today or datetime.now(timezone.utc).date()) - timedelta(days=days)).isoformat()
        gone = []
        for part in self.partitions():
            if part.day < cut:
                (self.home / part.rel).unlink(missing_ok=True)
                gone.append(part.rel)
        self._drop_empty()
        return gone

    def erase(self, pid: str, faces: dict[str, np.ndarray], threshold: float,
              voices: Callable[[str, np.ndarray], np.ndarray] | None = None) -> int:
        """Remove the rows the scans attributed to pid, the face rows that match pid's templates (a model id
        -> unit vectors) at or above threshold, and the voice rows voices(model, vectors) says are pid's
        (archive_voice.py); each partition touched is rewritten. Returns the rows removed."""
        removed = 0
        for part in self.partitions():
            table = self.read(part)
            drop = np.array([pid in (p or ()) for p in table.column("people").to_pylist()], bool)
            templates = faces.get(part.model) if part.modality == "face" else None
            if templates is not None and len(templates) and table.num_rows:
                emb = embeddings(table)
                drop |= (emb @ np.asarray(templates, np.float32).T).max(axis=1) >= threshold
            if part.modality == "voice" and voices is not None and table.num_rows:
                drop |= voices(part.model, embeddings(table))
            if not drop.any():
                continue
            removed += int(drop.sum())
            kept = table.filter(numbers(~drop))
            path = self.home / part.rel
            if kept.num_rows:
                self.write(kept.replace_schema_metadata(table.schema.metadata), part.modality, part.model,
                           part.day, path.name[len("part-"):-len(".parquet")])
            else:
                path.unlink(missing_ok=True)
        self._drop_empty()
        return removed

    def about(self, pid: str) -> list[dict]:
        """A person's export: the archived rows attributed to them (where, when, which scan; no embeddings)."""
        out = []
        for part in self.partitions():
            table = self.read(part, ["scan", "scanned", "sha256", "path", "time", "start", "end", "box", "people"])
            for row in table.to_pylist():
                if pid in (row.pop("people") or ()):
                    out.append({"modality": part.modality, "partition": part.rel, **row})
        return out

    def _drop_empty(self) -> None:
        """Delete stray files (they may hold rows; erasure cannot read them) and empty folders."""
        if not self.root.is_dir():
            return
        for stray in self.strays():
            stray.unlink(missing_ok=True)
        for folder in sorted(self.root.glob("*/*"), reverse=True) + sorted(self.root.glob("*")):
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        if not any(self.root.iterdir()):
            self.root.rmdir()


def _mapped(path: Path):
    """A store file memory-mapped read-only (opened without following a link), as a pyarrow buffer."""
    import mmap

    import pyarrow as pa

    fd = open_fd(path, os.O_RDONLY)
    try:
        if os.fstat(fd).st_size == 0:
            return pa.py_buffer(b"")
        return pa.py_buffer(mmap.mmap(fd, 0, prot=mmap.PROT_READ))
    finally:
        os.close(fd)


def _parquet(f, rel: str, columns: list[str] | None):
    """A partition's table from a file object, or ArchiveDamaged naming it."""
    import pyarrow.parquet as pq

    try:
        f.seek(0)
        pf = pq.ParquetFile(f, page_checksum_verification=True)  # lighter than read_table's dataset layer
        if columns is not None:
            columns = [c for c in columns if c in pf.schema_arrow.names]
        # No reader threads: they would call back into Python for a file object, and a thread pool left running
        # at interpreter exit has aborted the process (std::terminate) after its work was done.
        return pf.read(columns=columns, use_threads=False)
    except Exception as exc:  # pyarrow's errors for a truncated file, a bad footer, a failed page checksum
        raise ArchiveDamaged(f"archive partition {rel} is damaged: {exc}", path=rel) from exc


def embeddings(table) -> np.ndarray:
    """The rows' embeddings as float32 [n, dim] (stored float16)."""
    dim = int(table.schema.metadata[b"dim"])
    col = table.column("embedding").combine_chunks()
    raw = np.frombuffer(col.buffers()[1], np.float16, len(col) * dim, col.offset * dim * 2)
    return raw.reshape(len(col), dim).astype(np.float32)


def codes(table) -> np.ndarray:
    """The rows' 8-bit search codes as uint8 [n, dim] (a view on the table's buffer; face partitions only)."""
    dim = int(table.schema.metadata[b"dim"])
    col = table.column("code").combine_chunks()
    return np.frombuffer(col.buffers()[1], np.uint8, len(col) * dim, col.offset * dim).reshape(len(col), dim)


def schema(dim: int, meta: dict[str, str]):
    """The partition schema for embeddings of this size, with the partition's metadata."""
    import pyarrow as pa

    return pa.schema([
        ("scan", pa.string()), ("scanned", pa.string()), ("index", pa.string()),
        ("sha256", pa.string()), ("path", pa.string()), ("media", pa.string()),
        ("time", pa.float64()), ("start", pa.float64()), ("end", pa.float64()),
        ("box", pa.list_(pa.int32())), ("score", pa.float32()), ("quality", pa.string()),
        ("people", pa.list_(pa.string())), ("clipped", pa.bool_()),
        ("code", pa.binary(dim)), ("sign", pa.binary(archive_sign.width(dim))), ("embedding", pa.binary(2 * dim)), ("crop", pa.binary()),
        ("envelope", pa.binary()), ("duration", pa.float64()), ("provenance", pa.string()),
    ], metadata={**meta, "dim": str(dim), "format": FORMAT, "sign": archive_sign.VERSION})


class PartWriter:
    """Rows of one scan for one modality and model, written as a partition every PART_ROWS rows and at close()."""

    def __init__(self, archive: Archive, modality: str, model: str, scan: str, scanned: datetime,
                 index: str | None):
        self.archive, self.modality, self.model, self.scan = archive, modality, model, scan
        self.scanned, self.index = scanned.isoformat(timespec="seconds"), index
        self.day = scanned.date().isoformat()
        self.rows: list[dict] = []
        self.vectors: list[np.ndarray] = []
        self.written: list[str] = []
        # At each write: given every pending row's people, which rows to keep (see ScanArchive); one call a write.
        self.keep: Callable[[list[list[str]]], list[bool]] | None = None

    def add(self, row: dict, vector: np.ndarray) -> None:
        """One face or voice segment (row: the schema's columns but code, embedding, clipped)."""
        self.rows.append(row)
        self.vectors.append(np.asarray(vector, np.float32))
        if len(self.rows) >= PART_ROWS:
            self.flush()

    def flush(self) -> None:
        """Write what is pending as one partition."""
        import pyarrow as pa

        if self.keep is not None:
            kept = [i for i, ok in enumerate(self.keep([r.get("people") or [] for r in self.rows])) if ok]
            self.rows, self.vectors = [self.rows[i] for i in kept], [self.vectors[i] for i in kept]
        if not self.rows:
            return
        vecs = np.stack(self.vectors)
        code, clipped = encode(vecs)
        n, dim = vecs.shape
        cols = {k: [r.get(k) for r in self.rows] for k in schema(dim, {}).names
                if k not in ("code", "sign", "embedding")}
        cols.update(scan=[self.scan] * n, scanned=[self.scanned] * n, index=[self.index] * n,
                    clipped=clipped.tolist())
        if self.modality != "face":
            cols["code"] = cols["sign"] = [None] * n
        else:
            cols["code"] = pa.FixedSizeBinaryArray.from_buffers(pa.binary(dim), n, [None, pa.py_buffer(code)])
            sign = archive_sign.encode(vecs)
            cols["sign"] = pa.FixedSizeBinaryArray.from_buffers(pa.binary(sign.shape[1]), n,
                                                                [None, pa.py_buffer(sign)])
        cols["embedding"] = pa.FixedSizeBinaryArray.from_buffers(
            pa.binary(2 * dim), n, [None, pa.py_buffer(vecs.astype("<f2").tobytes())])
        meta = {"modality": self.modality, "model": self.model, "scan": self.scan, "scanned": self.scanned}
        sch = schema(dim, meta)
        table = pa.table({k: cols[k] if isinstance(cols[k], pa.Array) else column(cols[k], sch.field(k).type)
                          for k in sch.names}, schema=sch)
        self.written.append(self.archive.write(table, self.modality, self.model, self.day,
                                               f"{self.scan}-{len(self.written):04d}"))
        self.rows, self.vectors = [], []


def quality_json(quality) -> str | None:
    """A face quality as the archive keeps it (JSON of its measures)."""
    if quality is None:
        return None
    from dataclasses import asdict

    return json.dumps({k: float(v) for k, v in asdict(quality).items()})


def batches(parts: Iterable[Partition], size: int) -> Iterator[list[Partition]]:
    """Partitions in batches of up to `size` (a search's unit of work)."""
    batch: list[Partition] = []
    for p in parts:
        batch.append(p)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
