"""FAISS index of unit vectors keyed by registry vector ids, saved atomically with a manifest."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from . import faults, files
from ..errors import StoreError


@dataclass
class Manifest:
    """What an index file holds, written beside it."""

    modality: str
    model: str
    dim: int
    count: int
    ids_sha256: str  # digest of the sorted vector ids: compared with the registry on load
    file_sha256: str  # digest of the index file itself


def ids_digest(ids: np.ndarray) -> str:
    """Order-independent digest of a set of int64 ids."""
    return hashlib.sha256(np.sort(np.asarray(ids, np.int64)).tobytes()).hexdigest()


def atomic_write(path: Path, data: bytes) -> None:
    """Write a file by temp file + fsync + rename, so readers never see half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data[: len(data) // 2])
            faults.point("index.write:partial")
            f.write(data[len(data) // 2:])
            f.flush()
            os.fsync(f.fileno())
        faults.point("index.write:before-rename")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class VectorIndex:
    """Exact inner-product search over unit vectors (IndexIDMap2 over IndexFlatIP).

    Exact search: galleries of enrolled people are small (thousands to a few million vectors) and
    ANN indexes lost recall badly on real embeddings here.
    """

    def __init__(self, modality: str, model: str, dim: int):
        import faiss

        self.modality, self.model, self.dim = modality, model, dim
        self._index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))

    @property
    def count(self) -> int:
        """Number of vectors."""
        return int(self._index.ntotal)

    def ids(self) -> np.ndarray:
        """All vector ids."""
        import faiss

        return faiss.vector_to_array(self._index.id_map).astype(np.int64)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add vectors under the given ids (ids must be new)."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, self.dim)
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if len(ids) != len(vectors):
            raise ValueError("ids and vectors differ in length")
        if len(set(ids.tolist()) & set(self.ids().tolist())):
            raise StoreError("vector id already in the index")
        self._index.add_with_ids(vectors, ids)

    def remove(self, ids: np.ndarray) -> int:
        """Remove vectors by id; returns how many were removed."""
        import faiss

        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if len(ids) == 0:
            return 0
        return int(self._index.remove_ids(faiss.IDSelectorArray(ids)))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (similarities, ids) per query; missing slots have id -1."""
        queries = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, self.dim)
        k = max(1, min(k, self.count)) if self.count else 1
        if self.count == 0:
            n = len(queries)
            return np.full((n, 1), -np.inf, np.float32), np.full((n, 1), -1, np.int64)
        return self._index.search(queries, k)

    def contents(self) -> tuple[np.ndarray, np.ndarray]:
        """(ids, vectors) of everything stored, in storage order (for verify to compare with the registry)."""
        if self.count == 0:
            return np.zeros(0, np.int64), np.zeros((0, self.dim), np.float32)
        return self.ids(), self._index.index.reconstruct_n(0, self.count)

    def reconstruct(self, vid: int) -> np.ndarray:
        """The stored vector of one id."""
        return self._index.reconstruct(int(vid))

    def manifest(self, file_sha256: str = "") -> Manifest:
        """Describe this index."""
        return Manifest(self.modality, self.model, self.dim, self.count, ids_digest(self.ids()), file_sha256)

    def to_bytes(self) -> bytes:
        """Serialise with FAISS's own format (no pickle)."""
        import faiss

        return faiss.serialize_index(self._index).tobytes()

    def save(self, path: Path, cipher=None) -> Manifest:
        """Write index then manifest atomically; the manifest names the index file's checksum.

        With a cipher (audit/crypto.py) the index file is encrypted; the manifest holds no vectors.
        """
        data = self.to_bytes()
        if cipher is not None:
            data = cipher.seal(data, f"index|{path.name}".encode())
        man = self.manifest(hashlib.sha256(data).hexdigest())
        atomic_write(path, data)
        faults.point("index.save:between-files")
        atomic_write(manifest_path(path), json.dumps(asdict(man), indent=1).encode())
        return man

    @classmethod
    def load(cls, path: Path, cipher=None) -> tuple["VectorIndex", Manifest]:
        """Read an index and check it against its manifest (decrypting it with cipher when given)."""
        import faiss

        mpath = manifest_path(path)
        try:
            man = Manifest(**json.loads(files.read_bytes(mpath)))
            data = files.read_bytes(path)
        except (OSError, ValueError, TypeError) as exc:
            raise StoreError(f"cannot read index {path.name}: {exc}") from exc
        if hashlib.sha256(data).hexdigest() != man.file_sha256:
            raise StoreError(f"index {path.name} does not match its manifest checksum")
        if cipher is not None:
            data = cipher.open(data, f"index|{path.name}".encode(), f"index {path.name}")
        elif data[:4] == b"LAE1":
            raise StoreError(f"index {path.name} is encrypted: give the store's key (AUDIT_KEY, AUDIT_KEY_FILE or --key-file)")
        obj = cls.__new__(cls)
        obj.modality, obj.model, obj.dim = man.modality, man.model, man.dim
        try:
            obj._index = faiss.deserialize_index(np.frombuffer(data, np.uint8))
        except RuntimeError as exc:
            raise StoreError(f"index {path.name} is damaged: {exc}") from exc
        if obj.count != man.count or ids_digest(obj.ids()) != man.ids_sha256:
            raise StoreError(f"index {path.name} holds other vectors than its manifest says")
        return obj, man


def manifest_path(path: Path) -> Path:
    """The manifest beside an index file."""
    return path.with_suffix(".json")
