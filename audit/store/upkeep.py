"""Keeping a store's indexes in step with its registry: load checked, sync, rebuild, sweep, compact, finish an
interrupted write. Each takes the parts it needs (the store folder, registry, audit log), never the Store.

The indexes are sealed with the registry's cipher (registry.cipher): the registry and its indexes go together."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import StoreError
from . import crypto, faults, review, scancache, webhooks
from .log import redaction, seals
from .index.segments import Segments
from .vectors import id_state

if TYPE_CHECKING:
    from .log.auditlog import AuditLog
    from .registry import Registry

UNFINISHED = "unfinished_write"  # meta key set in a write's transaction, cleared once its index files are written
TABLES = ("samples", "centroids")  # each has an index per modality and model
ERASE_WAIT_S = 10.0  # how long a removal waits for readers to let go before it says the erasure is not finished


def segments(home: Path, registry: Registry, table: str, modality: str, model: str) -> Segments:
    """The (unopened) index of one table (samples or centroids), modality and model."""
    suffix = "" if table == "samples" else "-centroids"
    return Segments(home, f"{modality}-{model[:16]}{suffix}", modality, model, registry.cipher, registry)


def seal_manifests(home: Path, registry: Registry) -> None:
    """Seal every index manifest of a store whose manifests predate seals (at its first write since, under the
    writer lock, as seals.ensure_secret does for rows); from then on a manifest without its seal is refused."""
    if registry.meta(seals.INDEX_SEALS) is not None or registry.sealer is None or registry.sealer.key is None:
        return
    for modality, model in registry.models():
        for table in TABLES:
            seg = segments(home, registry, table, modality, model)
            if seg.read_manifest() is not None:
                seg.write_manifest(seg.man)
    with registry.transaction():
        registry.set_meta(seals.INDEX_SEALS, "1")


def index_path(home: Path, modality: str, model: str) -> Path:
    """Where the sample index of one modality and model lives: its manifest, which names its segment files."""
    return home / f"{modality}-{model[:16]}.json"


def temp_files(home: Path) -> list[Path]:
    """Temp files of index and manifest writes (files.atomic_write) and log redactions left by a killed writer."""
    return sorted([p for p in home.glob("*.tmp") if re.fullmatch(r"[\w.-]+\.(faiss|json)\.\w+\.tmp", p.name)]
                  + [p for p in home.glob("audit.log.*.redact") if re.fullmatch(r"audit\.log\.\w+\.redact", p.name)])


def load_checked(home: Path, registry: Registry, table: str, modality: str, model: str, full: bool = False) -> Segments:
    """One index, checked in O(1) against the registry's summary of its ids (StoreError when they differ).

    full: checksum every segment as well (verify); otherwise large memory-mapped bases are not read.
    """
    seg = segments(home, registry, table, modality, model)
    state = registry.id_state(table, modality, model)
    man = seg.read_manifest()
    if man is None:
        if state[0]:
            raise StoreError(
                f"index {seg.manifest_path.name} is missing but the registry has {state[0]} {modality} "
                f"{'vectors' if table == 'samples' else 'centroids'}; run `likeness-audit verify --repair`")
        return seg
    if man.model != model or list(man.state) != list(state):
        raise StoreError(
            f"index {seg.manifest_path.name} is out of step with the registry (index {man.count} vectors, "
            f"registry {state[0]}); run `likeness-audit verify --repair`")
    seg.load(check_all=full)
    return seg


def source(registry: Registry, table: str, modality: str, model: str):
    """A callable yielding (ids, vectors) chunks of every row of one table, modality and model."""
    return lambda: ((ids, vecs) for ids, vecs, _ in registry.iter_rows(table, modality, model))


def sync(home: Path, registry: Registry, table: str, modality: str, model: str, change: tuple | None = None,
         full: bool = False, purge: bool = True, purged: np.ndarray | None = None) -> Segments:
    """Bring one index in line with the registry: the change alone when the index was in step before it, else
    the difference of the id sets, else (damage, or full) a rebuild from the registry, which holds every vector.

    change: (ids added, their vectors, ids removed); purge and purged: see Segments.apply.
    """
    seg = segments(home, registry, table, modality, model)
    want = registry.id_state(table, modality, model)
    src = source(registry, table, modality, model)
    try:
        man = seg.read_manifest()
        if man is not None:
            seg.load(check_all=full, lazy=not full)
    except StoreError:
        man = None  # damaged or of the old format: rebuilt below
    if want[0] == 0:
        seg.drop()
        return seg
    if man is not None and not full and change is not None:
        add, vecs, remove = change
        before = [a - b + c for a, b, c in zip(want, id_state(add), id_state(remove))]
        if list(man.state) == before:
            seg.apply(np.array(add, np.int64), np.array(vecs, np.float32), remove, src, purge, purged=purged)
            return seg
    if man is not None and not full:
        have, reg = seg.ids(), registry.ids(table, modality, model)
        ids, vecs, _ = registry.rows_by_id(table, modality, model, np.setdiff1d(reg, have))
        gone = np.setdiff1d(have, reg)
        # Removed vectors are no longer known here, so a removal retrains rather than trust the list centroids.
        seg.apply(ids, vecs, gone, src, purge=True, retrain=len(gone) > 0)
        if list(seg.man.state) == list(want):
            return seg
    dim = next(registry.iter_rows(table, modality, model, chunk=1))[1].shape[1]
    seg.rebuild(src, dim)
    return seg


def sweep(home: Path, registry: Registry) -> None:
    """Delete segment files no manifest names (a killed compaction's new base, say): they may hold vectors."""
    for modality, model in registry.models():
        for table in TABLES:
            seg = segments(home, registry, table, modality, model)
            try:
                if seg.read_manifest() is not None:
                    seg.sweep()
            except StoreError:
                pass  # an unreadable manifest: left for verify to report and a repair to rebuild


def rebuild(home: Path, registry: Registry, full: bool = False) -> list[str]:
    """Bring every index in line with the registry and drop index files it has no rows for.

    full: rebuild each index from the registry (repair) instead of applying the difference.
    """
    done, known = [], set()
    for modality, model in registry.models():
        for table in TABLES:
            seg = sync(home, registry, table, modality, model, None, full)
            known |= {p.name for p in home.iterdir() if seg.owns(p.name)}
            done.append(f"{seg.manifest_path.name}: {seg.count} vectors")
    for path in sorted(home.iterdir()):
        if path.suffix in (".faiss", ".json") and path.name not in known:
            path.unlink()
            done.append(f"{path.name}: removed (no registry rows)")
    return done


def repair(home: Path, registry: Registry) -> list[str]:
    """Recompute stale centroids and rebuild every index from the registry (under the writer lock)."""
    with registry.transaction():
        fixed = [p for m, mo in registry.models() for p in registry.refresh_centroids(m, mo)]
    return [f"centroid of {p} recomputed" for p in fixed] + rebuild(home, registry, full=True)


def compact(home: Path, registry: Registry) -> list[str]:
    """Fold every index's delta and masked ids into its base (under the writer lock); returns what was done."""
    done = []
    for modality, model in registry.models():
        for table in TABLES:
            seg = load_checked(home, registry, table, modality, model)
            if seg.man is not None:
                man = seg.apply(np.zeros(0, np.int64), np.zeros((0, seg.dim), np.float32), [],
                                source(registry, table, modality, model), compact=True)
                done.append(f"{seg.manifest_path.name}: {man.count} vectors in a {man.kind} base")
    return done


def apply_changes(home: Path, registry: Registry, changes: dict[tuple[str, str, str], list], purge: bool = False,
                  purged: dict | None = None) -> None:
    """Apply one committed write's additions and removals to the indexes it touched (see Segments.apply)."""
    for (table, modality, model), (add, vecs, remove) in sorted(changes.items()):
        both = set(add) & set(remove)  # a centroid replaced twice in one batch: its first new id is gone again
        if both:  # settled once here: per change() call it cost O(n^2) over a bulk batch
            keep = [i for i, v in enumerate(add) if v not in both]
            add, vecs, remove = [add[i] for i in keep], [vecs[i] for i in keep], [v for v in remove if v not in both]
        sync(home, registry, table, modality, model, (add, vecs, remove), purge=purge,
             purged=(purged or {}).get((table, modality, model)))


def migrate(home: Path, registry: Registry, log: AuditLog) -> None:
    """Bring a version 1 store up to date (under the writer lock): id summaries, centroids, segmented indexes."""
    with registry.transaction():
        registry.migrate()
        registry.set_meta(UNFINISHED, "migrate")
    finish(home, registry, log)


def wipe_wal(registry: Registry, wait_s: float = 1.0) -> bool:
    """Fold the WAL into the database and truncate it: old pages of deleted rows must not linger there.

    A reader in the middle of a transaction pins the old pages (in the WAL and in the database file); the
    checkpoint waits up to wait_s for it. False when it could not complete.
    """
    db = registry.db
    db.execute(f"PRAGMA busy_timeout = {int(wait_s * 1000)}")
    try:
        busy, frames, done = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    finally:
        db.execute("PRAGMA busy_timeout = 30000")  # sqlite3.connect(timeout=30), as the registry opens it
    return busy == 0


def finish(home: Path, registry: Registry, log: AuditLog, wait_s: float = 1.0) -> None:
    """Complete an interrupted write: log redactions, indexes from the registry, deleted pages wiped; then clear
    the flag (left set when a reader still pins deleted pages: the next write, or `remove` again, retries)."""
    redaction.apply(log, log.sealer)
    rebuild(home, registry)
    if registry.meta(UNFINISHED) == "remove":
        scancache.erase(home)  # a removal killed before it emptied the scan cache
    registry.db.execute("VACUUM")
    if not wipe_wal(registry, wait_s):
        return
    with registry.transaction():
        registry.set_meta(UNFINISHED, None)


def finished(registry: Registry) -> None:
    """Clear the flag of a write whose index files are all written."""
    with registry.transaction():
        registry.set_meta(UNFINISHED, None)
    faults.point("store.write:finished")


def change(changes: dict, key: tuple[str, str, str], add: list[int], vecs: list, remove: list[int]) -> None:
    """Collect one write's index additions and removals per (table, modality, model) (settled in apply_changes)."""
    entry = changes.setdefault(key, [[], [], []])
    entry[0] += list(add)
    entry[1] += [np.asarray(v, np.float32) for v in vecs]
    entry[2] += list(remove)


def enroll_details(batch: list, ids: list[list[int]]) -> dict:
    """The audit entry of an enrolment: one person as before, or a bulk batch summarised (no vectors)."""
    samples = [s for _, _, ss, _ in batch for s in ss]
    models = sorted({f"{s.modality}:{s.model[:16]}" for s in samples})
    if len(batch) == 1:
        pid, _, _, reference = batch[0]
        return {"person": pid, "samples": len(ids[0]), "vector_ids": ids[0], "reference": reference is not None,
                "models": models, "sources_sha256": sorted({s.source_sha256 for s in samples})}
    flat = [i for got in ids for i in got]
    return {"people": [pid for pid, _, _, _ in batch], "samples": len(flat), "models": models,
            "vector_ids": [min(flat), max(flat)] if flat else [],
            "sources_sha256": hashlib.sha256("".join(sorted(s.source_sha256 for s in samples)).encode()).hexdigest()}


def encrypt(home: Path, registry: Registry, log: AuditLog, cipher: crypto.Cipher,
            rekey: Callable[[crypto.Cipher | None], None]) -> int:
    """Encrypt a plaintext store in place (under the writer lock); returns the vectors encrypted.

    rekey(cipher) gives the store its new cipher and the sealer that goes with it (None: back to none).
    """
    if registry.meta(crypto.META_KEY) is not None:
        raise crypto.KeyProblem(f"the store {home} is already encrypted")
    try:
        with registry.transaction():
            n = registry.reseal(cipher)
            registry.set_meta(crypto.META_KEY, cipher.marker())
            rekey(cipher)  # rows and the log head are MAC'd with the key from now on
            seals.seal_rows(registry)
            review.reseal(registry)
            log.stage("encrypt", {"vectors": n, "algorithm": crypto.ALGORITHM})
            registry.set_meta(UNFINISHED, "encrypt")
    except BaseException:
        rekey(None)
        raise
    log.flush()
    finish(home, registry, log)  # indexes rewritten encrypted; plaintext pages vacuumed and the WAL emptied
    webhooks.seal_file(home, cipher)  # webhook secrets and delivery payloads too
    from .archive import Archive

    Archive(home, cipher).seal_plain()  # the embedding archive's partitions, sealed like the rest
    return n
