"""Keeping a store's indexes in step with its registry: load checked, sync, rebuild, sweep, finish an interrupted
write, verify."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import StoreError
from . import crypto
from .log import redaction, seals
from .index import contents
from .index.segments import Segments
from .vectors import id_state

if TYPE_CHECKING:
    from .store import Store

UNFINISHED = "unfinished_write"  # meta key set in a write's transaction, cleared once its index files are written
TABLES = ("samples", "centroids")  # each has an index per modality and model
ERASE_WAIT_S = 10.0  # how long a removal waits for readers to let go before it says the erasure is not finished


@dataclass
class VerifyReport:
    """What `verify` found: problems (empty when consistent), what a repair rebuilt, and what the store holds."""

    problems: list[str] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)
    people: int = 0
    vectors: dict[str, int] = field(default_factory=dict)  # "modality:model" -> count
    log_entries: int = 0

    @property
    def ok(self) -> bool:
        """True when registry, indexes and audit log agree."""
        return not self.problems


def segments(store: Store, table: str, modality: str, model: str) -> Segments:
    """The (unopened) index of one table (samples or centroids), modality and model."""
    suffix = "" if table == "samples" else "-centroids"
    return Segments(store.home, f"{modality}-{model[:16]}{suffix}", modality, model, store.cipher)


def index_path(home: Path, modality: str, model: str) -> Path:
    """Where the sample index of one modality and model lives: its manifest, which names its segment files."""
    return home / f"{modality}-{model[:16]}.json"


def temp_files(home: Path) -> list[Path]:
    """Temp files of index and manifest writes (files.atomic_write) and log redactions left by a killed writer."""
    return sorted([p for p in home.glob("*.tmp") if re.fullmatch(r"[\w.-]+\.(faiss|json)\.\w+\.tmp", p.name)]
                  + [p for p in home.glob("audit.log.*.redact") if re.fullmatch(r"audit\.log\.\w+\.redact", p.name)])


def load_checked(store: Store, table: str, modality: str, model: str, full: bool = False) -> Segments:
    """One index, checked in O(1) against the registry's summary of its ids (StoreError when they differ).

    full: checksum every segment as well (verify); otherwise large memory-mapped bases are not read.
    """
    seg = segments(store, table, modality, model)
    state = store.registry.id_state(table, modality, model)
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


def source(store: Store, table: str, modality: str, model: str):
    """A callable yielding (ids, vectors) chunks of every row of one table, modality and model."""
    return lambda: ((ids, vecs) for ids, vecs, _ in store.registry.iter_rows(table, modality, model))


def sync(store: Store, table: str, modality: str, model: str, change: tuple | None = None, full: bool = False,
         purge: bool = True, purged: np.ndarray | None = None) -> Segments:
    """Bring one index in line with the registry: the change alone when the index was in step before it, else
    the difference of the id sets, else (damage, or full) a rebuild from the registry, which holds every vector.

    change: (ids added, their vectors, ids removed); purge and purged: see Segments.apply.
    """
    seg = segments(store, table, modality, model)
    want = store.registry.id_state(table, modality, model)
    src = source(store, table, modality, model)
    try:
        man = seg.read_manifest()
        if man is not None:
            seg.load(check_all=full, lazy=not full)
    except StoreError:
        man = None  # damaged or of the old format: rebuilt below
    store.forget_loaded()
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
        have, reg = seg.ids(), store.registry.ids(table, modality, model)
        ids, vecs, _ = store.registry.rows_by_id(table, modality, model, np.setdiff1d(reg, have))
        gone = np.setdiff1d(have, reg)
        # Removed vectors are no longer known here, so a removal retrains rather than trust the list centroids.
        seg.apply(ids, vecs, gone, src, purge=True, retrain=len(gone) > 0)
        if list(seg.man.state) == list(want):
            return seg
    dim = next(store.registry.iter_rows(table, modality, model, chunk=1))[1].shape[1]
    seg.rebuild(src, dim)
    return seg


def sweep(store: Store) -> None:
    """Delete segment files no manifest names (a killed compaction's new base, say): they may hold vectors."""
    for modality, model in store.registry.models():
        for table in TABLES:
            seg = segments(store, table, modality, model)
            try:
                if seg.read_manifest() is not None:
                    seg.sweep()
            except StoreError:
                pass  # an unreadable manifest: left for verify to report and a repair to rebuild


def rebuild(store: Store, full: bool = False) -> list[str]:
    """Bring every index in line with the registry and drop index files it has no rows for.

    full: rebuild each index from the registry (repair) instead of applying the difference.
    """
    done, known = [], set()
    for modality, model in store.registry.models():
        for table in TABLES:
            seg = sync(store, table, modality, model, None, full)
            known |= {p.name for p in store.home.iterdir() if seg.owns(p.name)}
            done.append(f"{seg.manifest_path.name}: {seg.count} vectors")
    for path in sorted(store.home.iterdir()):
        if path.suffix in (".faiss", ".json") and path.name not in known:
            path.unlink()
            done.append(f"{path.name}: removed (no registry rows)")
    return done


def repair(store: Store) -> list[str]:
    """Recompute stale centroids and rebuild every index from the registry (under the writer lock)."""
    with store.registry.transaction():
        fixed = [p for m, mo in store.registry.models() for p in store.registry.refresh_centroids(m, mo)]
    return [f"centroid of {p} recomputed" for p in fixed] + rebuild(store, full=True)


def compact(store: Store) -> list[str]:
    """Fold every index's delta and masked ids into its base (under the writer lock); returns what was done."""
    done = []
    for modality, model in store.registry.models():
        for table in TABLES:
            seg = load_checked(store, table, modality, model)
            store.forget_loaded()
            if seg.man is not None:
                man = seg.apply(np.zeros(0, np.int64), np.zeros((0, seg.dim), np.float32), [],
                                source(store, table, modality, model), compact=True)
                done.append(f"{seg.manifest_path.name}: {man.count} vectors in a {man.kind} base")
    return done


def apply_changes(store: Store, changes: dict[tuple[str, str, str], list], purge: bool = False,
                  purged: dict | None = None) -> None:
    """Apply one committed write's additions and removals to the indexes it touched (see Segments.apply)."""
    for (table, modality, model), (add, vecs, remove) in sorted(changes.items()):
        both = set(add) & set(remove)  # a centroid replaced twice in one batch: its first new id is gone again
        if both:  # settled once here: per change() call it cost O(n^2) over a bulk batch
            keep = [i for i, v in enumerate(add) if v not in both]
            add, vecs, remove = [add[i] for i in keep], [vecs[i] for i in keep], [v for v in remove if v not in both]
        sync(store, table, modality, model, (add, vecs, remove), purge=purge,
             purged=(purged or {}).get((table, modality, model)))


def migrate(store: Store) -> None:
    """Bring a version 1 store up to date (under the writer lock): id summaries, centroids, segmented indexes."""
    with store.registry.transaction():
        store.registry.migrate()
        store.registry.set_meta(UNFINISHED, "migrate")
    finish(store)


def wipe_wal(store: Store, wait_s: float = 1.0) -> bool:
    """Fold the WAL into the database and truncate it: old pages of deleted rows must not linger there.

    A reader in the middle of a transaction pins the old pages (in the WAL and in the database file); the
    checkpoint waits up to wait_s for it. False when it could not complete.
    """
    db = store.registry.db
    db.execute(f"PRAGMA busy_timeout = {int(wait_s * 1000)}")
    try:
        busy, frames, done = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    finally:
        db.execute("PRAGMA busy_timeout = 30000")  # sqlite3.connect(timeout=30), as the registry opens it
    return busy == 0


def finish(store: Store, wait_s: float = 1.0) -> None:
    """Complete an interrupted write: log redactions, indexes from the registry, deleted pages wiped; then clear
    the flag (left set when a reader still pins deleted pages: the next write, or `remove` again, retries)."""
    redaction.apply(store.log, store.sealer)
    rebuild(store)
    store.registry.db.execute("VACUUM")
    if not wipe_wal(store, wait_s):
        return
    with store.registry.transaction():
        store.registry.set_meta(UNFINISHED, None)


def problems(store: Store) -> list[str]:
    """Every disagreement between registry, indexes, centroids and audit log (call under the shared lock).

    Reads every segment and every id: at a million vectors this takes a while, as a full check must.
    """
    found, known = [], set()
    for modality, model in store.registry.models():
        found += seals.check_rows(store.registry, modality, model)
        for table in TABLES:
            try:
                seg = segments(store, table, modality, model)
                seg.read_manifest()
                known |= seg.files()
                seg = load_checked(store, table, modality, model, full=True)
            except StoreError as exc:
                found.append(str(exc))
                continue
            found += contents.file_problems(seg)
            have, reg = seg.ids(), store.registry.ids(table, modality, model)
            if len(have) != len(reg) or set(have.tolist()) != set(reg.tolist()):
                found.append(f"index {seg.manifest_path.name} is out of step with the registry (index "
                             f"{len(have)} vectors, registry {len(reg)}); run `likeness-audit verify --repair`")
            found += contents.problems(seg, source(store, table, modality, model))
        try:
            stale = store.registry.stale_centroids(modality, model)
        except StoreError as exc:  # a sample that does not decrypt: seals.check_rows names it
            found.append(f"{modality} centroids could not be checked against the samples ({exc})")
            stale = []
        if stale:
            found.append(f"{modality} centroids of {len(stale)} people differ from their samples "
                         f"({', '.join(stale[:3])}); run `likeness-audit verify --repair`")
    for path in sorted(store.home.iterdir()):
        if path.suffix in (".faiss", ".json") and path.name not in known:
            found.append(f"index file {path.name} is not named by any index of the registry (left by an "
                         "interrupted write, or of removed vectors); the next write removes it")
    if store.registry.meta(UNFINISHED) == "remove":
        found.append("a removal is committed but not yet erased: its deleted rows may still be on disk (a reader "
                     "held the registry open, or the removal was interrupted); `likeness-audit remove ID` again, "
                     "or `likeness-audit verify --repair`, finishes it")
    elif store.registry.meta(UNFINISHED):
        found.append(f"an interrupted {store.registry.meta(UNFINISHED)} was not finished; the next write, or "
                     "`likeness-audit verify --repair`, finishes it")
    found += store.log.check().problems()
    found += [f"leftover temp file {p.name} from an interrupted write" for p in temp_files(store.home)]
    return found


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


def encrypt(store: Store, cipher: crypto.Cipher) -> int:
    """Encrypt a plaintext store in place (under the writer lock); returns the vectors encrypted."""
    if store.registry.meta(crypto.META_KEY) is not None:
        raise crypto.KeyProblem(f"the store {store.home} is already encrypted")
    try:
        with store.registry.transaction():
            n = store.registry.reseal(cipher)
            store.registry.set_meta(crypto.META_KEY, cipher.marker())
            store.cipher = store.registry.cipher = cipher
            store._set_sealer()  # rows and the log head are MAC'd with the key from now on
            seals.seal_rows(store.registry)
            store.log.stage("encrypt", {"vectors": n, "algorithm": crypto.ALGORITHM})
            store.registry.set_meta(UNFINISHED, "encrypt")
    except BaseException:
        store.cipher = store.registry.cipher = None
        store._set_sealer()
        raise
    store.log.flush()
    finish(store)  # indexes rewritten encrypted; plaintext pages vacuumed and the WAL emptied
    return n


def verify(store: Store, fix: bool) -> VerifyReport:
    """Store.verify (fix: repair first)."""
    report = VerifyReport()
    if fix:
        with store._writing():  # finishes an interrupted write first
            wipe_wal(store)
            report.repaired = repair(store)
    with store.lock(shared=True):  # a writer half-way through is not a problem
        store._set_sealer()
        report.problems = problems(store)
    report.people = len(store.registry.names())
    report.vectors = {f"{m}:{mo[:8]}": n for (m, mo), n in store.registry.counts().items()}
    report.log_entries = store.log.check().entries
    return report
