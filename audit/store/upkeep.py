"""Keeping a store's index files in step with its registry: sync, rebuild, finish an interrupted write, verify."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import StoreError
from . import crypto, seals
from .index import Manifest, VectorIndex, ids_digest

if TYPE_CHECKING:
    from .store import Store

UNFINISHED = "unfinished_write"  # meta key set in a write's transaction, cleared once its index files are written
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


def index_path(home: Path, modality: str, model: str) -> Path:
    """Where the index of one modality and model lives."""
    return home / f"{modality}-{model[:16]}.faiss"


def temp_files(home: Path) -> list[Path]:
    """Temp files of index and manifest writes (index.atomic_write) and log redactions left by a killed writer."""
    return sorted([p for p in home.glob("*.tmp") if re.fullmatch(r"\w+-\w+\.(faiss|json)\.\w+\.tmp", p.name)]
                  + [p for p in home.glob("audit.log.*.redact") if re.fullmatch(r"audit\.log\.\w+\.redact", p.name)])


def load_checked(store: Store, modality: str, model: str, ids: np.ndarray) -> tuple[VectorIndex, Manifest | None]:
    """The index file of one modality and model, or StoreError when it does not hold exactly these ids."""
    path = index_path(store.home, modality, model)
    if not path.exists():
        if len(ids):
            raise StoreError(
                f"index {path.name} is missing but the registry has {len(ids)} {modality} vectors; "
                "run `likeness-audit verify --repair`"
            )
        return VectorIndex(modality, model, 0), None
    idx, man = VectorIndex.load(path, store.cipher)
    if man.model != model or ids_digest(idx.ids()) != ids_digest(ids):
        raise StoreError(
            f"index {path.name} is out of step with the registry (index {idx.count} vectors, registry "
            f"{len(ids)}); run `likeness-audit verify --repair`"
        )
    return idx, man


def sync_index(store: Store, modality: str, model: str, full: bool = False) -> Manifest:
    """Bring one index file in line with the registry: incremental when possible, else (or when full) rebuilt."""
    ids, vecs, _ = store.registry.vectors(modality, model)
    path = index_path(store.home, modality, model)
    idx = None
    if path.exists() and not full:
        try:
            idx, _ = VectorIndex.load(path, store.cipher)
        except StoreError:
            idx = None  # damaged: rebuilt below from the registry, which holds every vector
    if idx is not None and idx.model == model and (len(vecs) == 0 or idx.dim == vecs.shape[1]):
        have, want = set(idx.ids().tolist()), set(ids.tolist())
        idx.remove(np.array(sorted(have - want), np.int64))
        new = np.isin(ids, np.array(sorted(want - have), np.int64))
        idx.add(ids[new], vecs[new])
    else:
        idx = VectorIndex(modality, model, vecs.shape[1] if len(vecs) else 512)
        idx.add(ids, vecs)
    man = idx.save(path, store.cipher)
    store.forget_loaded()
    return man


def rebuild(store: Store, full: bool = False) -> list[str]:
    """Bring every index in line with the registry and drop index files it has no rows for.

    full: write each index afresh from the registry's vectors (a repair: altered index vectors are replaced).
    """
    done, known = [], set()
    for modality, model in store.registry.models():
        man = sync_index(store, modality, model, full)
        known.add(index_path(store.home, modality, model))
        done.append(f"{index_path(store.home, modality, model).name}: {man.count} vectors")
    for path in store.home.glob("*.faiss"):
        if path not in known:
            path.unlink()
            path.with_suffix(".json").unlink(missing_ok=True)
            done.append(f"{path.name}: removed (no registry rows)")
    return done


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
    from . import erasure

    erasure.apply(store.log, store.sealer)
    rebuild(store)
    store.registry.db.execute("VACUUM")
    if not wipe_wal(store, wait_s):
        return
    with store.registry.transaction():
        store.registry.set_meta(UNFINISHED, None)


def _content_problems(idx: VectorIndex, ids: np.ndarray, vecs: np.ndarray, name: str) -> list[str]:
    """Index vectors that differ from their registry vectors (the ids already agree)."""
    got_ids, got = idx.contents()
    if len(got_ids) == 0:
        return []
    order = np.argsort(got_ids)
    want = vecs[np.searchsorted(ids, got_ids[order])]
    differ = got_ids[order][np.any(np.abs(got[order] - want) > 1e-5, axis=1)]
    if len(differ) == 0:
        return []
    return [f"index {name}: {len(differ)} vector(s) differ from the registry's (ids {', '.join(map(str, differ[:5]))}"
            f"{' ...' if len(differ) > 5 else ''}); `likeness-audit verify --repair` rebuilds the index"]


def problems(store: Store) -> list[str]:
    """Every disagreement between registry, index files and audit log (call under the shared lock)."""
    found = []
    known = {index_path(store.home, m, mo).name for m, mo in store.registry.models()}
    for modality, model in store.registry.models():
        found += seals.check_rows(store.registry, modality, model)
        try:
            ids, vecs, _ = store.registry.vectors(modality, model)
            idx, _ = load_checked(store, modality, model, ids)
        except StoreError as exc:
            found.append(str(exc))
            continue
        found += _content_problems(idx, ids, vecs, index_path(store.home, modality, model).name)
    for path in sorted(store.home.glob("*.faiss")):
        if path.name not in known:
            try:
                idx, _ = VectorIndex.load(path, store.cipher)
                if idx.count:
                    found.append(f"index {path.name} holds {idx.count} vectors the registry does not know")
            except StoreError as exc:
                found.append(str(exc))
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


def verify(store: Store, repair: bool) -> VerifyReport:
    """Store.verify."""
    report = VerifyReport()
    if repair:
        with store._writing():  # finishes an interrupted write first
            wipe_wal(store)
            report.repaired = rebuild(store, full=True)
    with store.lock(shared=True):  # a writer half-way through is not a problem
        store._set_sealer()
        report.problems = problems(store)
    report.people = len(store.registry.names())
    report.vectors = {f"{m}:{mo[:8]}": n for (m, mo), n in store.registry.counts().items()}
    report.log_entries = store.log.check().entries
    return report
