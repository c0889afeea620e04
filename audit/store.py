"""The store: registry + one FAISS index per modality and model, kept in step under a writer lock."""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import StoreError
from .index import Manifest, VectorIndex, ids_digest
from .registry import Registry, Sample

REGISTRY_FILE = "registry.sqlite"


@dataclass
class Candidate:
    """One registered person's best score against a probe."""

    person: str
    similarity: float
    vector_id: int


class Store:
    """Open a store folder; creates it on first write."""

    def __init__(self, home: Path):
        self.home = Path(home)
        self.home.mkdir(parents=True, exist_ok=True)
        with self.lock(shared=True):
            self.registry = Registry(self.home / REGISTRY_FILE)
        self._indexes: dict[tuple[str, str], tuple[VectorIndex, Manifest | None]] = {}
        self._owners: dict[tuple[str, str], dict[int, str]] = {}
        self._cache: dict[tuple, object] = {}

    def close(self) -> None:
        """Close the registry."""
        self.registry.close()

    @contextmanager
    def lock(self, shared: bool = False):
        """Writers hold an exclusive lock; readers a shared one while they load."""
        fd = os.open(self.home / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def index_path(self, modality: str, model: str) -> Path:
        """Where the index of one modality and model lives."""
        return self.home / f"{modality}-{model[:16]}.faiss"

    # reading
    def index(self, modality: str, model: str) -> tuple[VectorIndex, Manifest | None]:
        """The index for one modality and model, checked against the registry."""
        key = (modality, model)
        if key not in self._indexes:
            with self.lock(shared=True):
                ids, _, people = self.registry.vectors(modality, model)
                idx, man = self._load_checked(modality, model, ids)
                self._owners[key] = dict(zip(ids.tolist(), people))
            self._indexes[key] = (idx, man)
        return self._indexes[key]

    def _load_checked(self, modality: str, model: str, ids: np.ndarray) -> tuple[VectorIndex, Manifest | None]:
        path = self.index_path(modality, model)
        if not path.exists():
            if len(ids):
                raise StoreError(
                    f"index {path.name} is missing but the registry has {len(ids)} {modality} vectors; "
                    "run `likeness-audit verify --repair`"
                )
            return VectorIndex(modality, model, 0), None
        idx, man = VectorIndex.load(path)
        if man.model != model or ids_digest(idx.ids()) != ids_digest(ids):
            raise StoreError(
                f"index {path.name} is out of step with the registry (index {idx.count} vectors, registry "
                f"{len(ids)}); run `likeness-audit verify --repair`"
            )
        return idx, man

    def search(self, modality: str, model: str, vectors: np.ndarray, top_k: int) -> list[list[Candidate]]:
        """Per probe vector, the best-scoring sample of each of the top_k people, best first."""
        idx, _ = self.index(modality, model)
        owners = self._owners[(modality, model)]
        if idx.count == 0 or len(vectors) == 0:
            return [[] for _ in range(len(vectors))]
        # Ask for more samples than people: a person with many samples would otherwise crowd out others.
        sims, ids = idx.search(vectors, min(idx.count, max(top_k * 16, 64)))
        out = []
        for srow, irow in zip(sims, ids):
            best: dict[str, Candidate] = {}
            for s, vid in zip(srow.tolist(), irow.tolist()):
                if vid < 0:
                    continue
                p = owners[vid]
                if p not in best:
                    best[p] = Candidate(p, float(s), int(vid))
                if len(best) >= top_k:
                    break
            out.append(list(best.values()))
        return out

    def centroids(self, modality: str, model: str) -> tuple[list[str], np.ndarray]:
        """(person ids, unit mean vector of each person's samples), cached until the next write."""
        key = ("centroids", modality, model)
        if key not in self._cache:
            _, vecs, people = self.registry.vectors(modality, model)
            order = sorted(set(people))
            rows = np.array(people)
            cents = np.stack([vecs[rows == p].mean(axis=0) for p in order]) if order else np.zeros((0, 0), np.float32)
            if len(order):
                cents /= np.maximum(np.linalg.norm(cents, axis=1, keepdims=True), 1e-12)
            self._cache[key] = (order, cents.astype(np.float32))
        return self._cache[key]

    def index_version(self, modality: str, model: str) -> str | None:
        """Short checksum of the index file, for findings."""
        _, man = self.index(modality, model)
        return man.file_sha256[:12] if man else None

    # writing
    def add_samples(self, pid: str, name: str | None, samples: list[Sample], reference: tuple[str, bytes] | None) -> list[int]:
        """Register samples for a person in one transaction, then update the index files."""
        with self.lock():
            with self.registry.transaction():
                self.registry.ensure_person(pid, name)
                ids = [self.registry.add_sample(pid, s) for s in samples]
                if reference is not None:
                    self.registry.set_reference(pid, *reference)
            for modality, model in {(s.modality, s.model) for s in samples}:
                self._sync_index(modality, model)
        return ids

    def remove_person(self, pid: str) -> int:
        """Delete a person from the registry and every index; returns the number of vectors removed."""
        with self.lock():
            models = [m for m in self.registry.models()]
            with self.registry.transaction():
                ids = self.registry.delete_person(pid)
            for modality, model in models:
                self._sync_index(modality, model)
            # Compact the file so deleted pages do not linger (secure_delete zeroes them as well).
            self.registry.db.execute("VACUUM")
        return len(ids)

    def _sync_index(self, modality: str, model: str) -> Manifest:
        """Bring one index file in line with the registry: incremental when possible, else rebuilt."""
        ids, vecs, _ = self.registry.vectors(modality, model)
        path = self.index_path(modality, model)
        idx = None
        if path.exists():
            try:
                idx, _ = VectorIndex.load(path)
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
        man = idx.save(path)
        self._indexes.pop((modality, model), None)
        self._cache.clear()
        return man

    def verify(self) -> list[str]:
        """Problems found between registry and index files (empty list: consistent)."""
        problems = []
        known = {self.index_path(m, mo).name for m, mo in self.registry.models()}
        for modality, model in self.registry.models():
            ids, _, _ = self.registry.vectors(modality, model)
            try:
                self._load_checked(modality, model, ids)
            except StoreError as exc:
                problems.append(str(exc))
        for path in sorted(self.home.glob("*.faiss")):
            if path.name not in known:
                try:
                    idx, _ = VectorIndex.load(path)
                    if idx.count:
                        problems.append(f"index {path.name} holds {idx.count} vectors the registry does not know")
                except StoreError as exc:
                    problems.append(str(exc))
        return problems

    def repair(self) -> list[str]:
        """Rebuild every index from the registry; returns what was rebuilt."""
        done = []
        with self.lock():
            known = set()
            for modality, model in self.registry.models():
                man = self._sync_index(modality, model)
                known.add(self.index_path(modality, model))
                done.append(f"{self.index_path(modality, model).name}: {man.count} vectors")
            for path in self.home.glob("*.faiss"):
                if path not in known:
                    path.unlink()
                    path.with_suffix(".json").unlink(missing_ok=True)
                    done.append(f"{path.name}: removed (no registry rows)")
        return done
