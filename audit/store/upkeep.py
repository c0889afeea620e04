"""Keeping a store's index files in step with its registry: sync, rebuild, finish an interrupted write, verify."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import StoreError
from .index import Manifest, VectorIndex, ids_digest

if TYPE_CHECKING:
    from .store import Store

UNFINISHED = "unfinished_write"  # meta key set in a write's transaction, cleared once its index files are written


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
    """Temp files of index and manifest writes (index.atomic_write) left by a killed writer."""
    return sorted(p for p in home.glob("*.tmp") if re.fullmatch(r"\w+-\w+\.(faiss|json)\.\w+\.tmp", p.name))


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


def sync_index(store: Store, modality: str, model: str) -> Manifest:
    """Bring one index file in line with the registry: incremental when possible, else rebuilt."""
    ids, vecs, _ = store.registry.vectors(modality, model)
    path = index_path(store.home, modality, model)
    idx = None
    if path.exists():
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


def rebuild(store: Store) -> list[str]:
    """Bring every index in line with the registry and drop index files it has no rows for."""
    done, known = [], set()
    for modality, model in store.registry.models():
        man = sync_index(store, modality, model)
        known.add(index_path(store.home, modality, model))
        done.append(f"{index_path(store.home, modality, model).name}: {man.count} vectors")
    for path in store.home.glob("*.faiss"):
        if path not in known:
            path.unlink()
            path.with_suffix(".json").unlink(missing_ok=True)
            done.append(f"{path.name}: removed (no registry rows)")
    return done


def wipe_wal(store: Store) -> None:
    """Fold the WAL into the database and truncate it: old pages of deleted rows must not linger there."""
    for _ in range(3):
        if store.registry.db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0:
            return


def finish(store: Store) -> None:
    """Complete an interrupted write: indexes from the registry, deleted pages wiped; then clear the flag."""
    rebuild(store)
    store.registry.db.execute("VACUUM")
    wipe_wal(store)
    with store.registry.transaction():
        store.registry.set_meta(UNFINISHED, None)


def problems(store: Store) -> list[str]:
    """Every disagreement between registry, index files and audit log (call under the shared lock)."""
    found = []
    known = {index_path(store.home, m, mo).name for m, mo in store.registry.models()}
    for modality, model in store.registry.models():
        ids, _, _ = store.registry.vectors(modality, model)
        try:
            load_checked(store, modality, model, ids)
        except StoreError as exc:
            found.append(str(exc))
    for path in sorted(store.home.glob("*.faiss")):
        if path.name not in known:
            try:
                idx, _ = VectorIndex.load(path, store.cipher)
                if idx.count:
                    found.append(f"index {path.name} holds {idx.count} vectors the registry does not know")
            except StoreError as exc:
                found.append(str(exc))
    if store.registry.meta(UNFINISHED):
        found.append(f"an interrupted {store.registry.meta(UNFINISHED)} was not finished; the next write, or "
                     "`likeness-audit verify --repair`, finishes it")
    found += store.log.check().problems()
    found += [f"leftover temp file {p.name} from an interrupted write" for p in temp_files(store.home)]
    return found
