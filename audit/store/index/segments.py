"""A vector index kept as segments: a large base (exact Flat; above a crossover fast-scan PQ codes with a re-rank
file of the vectors, pqbase.py; beyond the measured range IVF with 8-bit codes, ivfbase.py), a small exact delta of recent
additions and a list of removed base ids, tied together by a manifest.

A write rewrites only the delta (a few MB) and the manifest; compaction folds the delta into the base now and then.
The manifest is the commit point: segment files carry a generation in their name, so a killed writer leaves at worst
files no manifest names, which the next write deletes. Plaintext Flat and IVF bases are memory-mapped (faiss
IO_FLAG_MMAP_IFC); a PQ base's codes and re-rank file are read into memory (576 MB at 1M vectors, see pqbase.py);
encrypted segments are one AES-GCM blob each and are decrypted into memory (AES-GCM authenticates a whole blob, which
rules out paging it in), which costs time and memory at scale.

The index only proposes candidates: the store re-scores them against the registry's exact vectors, so an approximate
base can miss a candidate (measured by benchmarks/gallery_scale.py) but never invent or inflate a match.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict
from pathlib import Path

import numpy as np

from . import ivfbase, manifest, pqbase
from .manifest import SegManifest
from .. import faults, files
from ...errors import StoreError
from ..files import atomic_write
from ..vectors import id_state

# Policy; figures behind each number are in benchmarks/README.md ("Gallery scale").
FLAT_MAX = 32_768  # crossover: above this many vectors the base is fast-scan PQ (exact Flat passes ~3 ms per face)
PQFS_MAX = 2_000_000  # above this the base is IVF: fast-scan costs ~2.5 ms per million vectors scanned
DELTA_MAX = 8_192  # recent additions searched exactly; beyond this a write compacts them into the base
REMOVED_MAX = 8_192  # replaced base ids (old centroids) remembered; beyond this a write compacts
RETRAIN_GROWTH = 2.0  # a PQ or IVF base is trained again once it holds this many times what it was trained on
HASH_AT_OPEN = 64 << 20  # segments up to this size are checksummed when opened; larger ones by verify only


def base_kind(n: int, kind: str) -> str:
    """The base kind for n vectors, keeping the current kind near a crossover (a factor of two of hysteresis)."""
    fits = {"flat": n <= FLAT_MAX, "pqfs": FLAT_MAX // 2 < n <= PQFS_MAX, "ivf": n > PQFS_MAX // 2}
    if fits.get(kind):
        return kind
    return "flat" if n <= FLAT_MAX else "pqfs" if n <= PQFS_MAX else "ivf"


def _empty(dim: int):
    import faiss

    return faiss.IndexIDMap2(faiss.IndexFlatIP(dim))


def _ids_of(index) -> np.ndarray:
    """Every id an index (IDMap2 over Flat, or IVF) holds."""
    import faiss

    if isinstance(index, faiss.IndexIDMap2):
        return faiss.vector_to_array(index.id_map).astype(np.int64)
    ivf = faiss.extract_index_ivf(index)
    lists = ivf.invlists
    parts = [faiss.rev_swig_ptr(lists.get_ids(i), lists.list_size(i)).copy()
             for i in range(ivf.nlist) if lists.list_size(i)]
    return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)


class Segments:
    """The index of one table (samples or centroids) of one modality and model, in home under a file prefix."""

    def __init__(self, home: Path, prefix: str, modality: str, model: str, cipher=None, registry=None):
        self.home, self.prefix, self.modality, self.model, self.cipher = Path(home), prefix, modality, model, cipher
        self.registry = registry  # its sealer seals the manifest: segment checksums bound to the store's key
        self.man: SegManifest | None = None
        self._reset()

    def _reset(self) -> None:
        self._base = self._rerank = self.delta = None
        self._base_due = self._check_all = False  # _base_due: the manifest's base is still to be opened (lazy load)
        self._removed = None
        self._rerank_ids = None

    @property
    def base(self):
        """The base index (None when there is none), opened on first use after a lazy load."""
        self._open_base()
        return self._base

    @base.setter
    def base(self, index) -> None:
        self._base, self._base_due = index, False

    @property
    def rerank(self):
        """A PQ base's re-rank file (None for other kinds), opened with the base."""
        self._open_base()
        return self._rerank

    @property
    def manifest_path(self) -> Path:
        """The manifest: the commit point of every change."""
        return self.home / f"{self.prefix}.json"

    @property
    def count(self) -> int:
        """Live vectors."""
        return self.man.count if self.man else 0

    @property
    def dim(self) -> int:
        """Vector dimension (0 before the first vector)."""
        return self.man.dim if self.man else 0

    @property
    def slack(self) -> float | None:
        """How far search's scores may lie from the exact cosines (None: too far to cut a shortlist by them)."""
        return pqbase.SLACK if self.man is not None and self.man.kind == "pqfs" else None

    def files(self) -> set[str]:
        """Names of the files the manifest refers to, the manifest included."""
        if self.man is None:
            return set()
        return {self.manifest_path.name} | {n for n in (self.man.base, self.man.delta, self.man.rerank) if n}

    def owns(self, name: str) -> bool:
        """Whether a file name in home is one of this index's segment or manifest files (current or stale)."""
        return re.fullmatch(re.escape(self.prefix) + r"(\.[bdr]\d+\.faiss|\.json)", name) is not None

    # reading
    def read_manifest(self) -> SegManifest | None:
        """Read the manifest (None when there is none); StoreError when it is unreadable, of the old format, or
        without the store's seal."""
        self.man = manifest.read(self.manifest_path, self.registry)
        return self.man

    def load(self, check_all: bool = False, lazy: bool = False) -> None:
        """Open the segments the manifest names (base memory-mapped when plaintext); StoreError when one is missing,
        damaged, or (small segments; all with check_all) differs from its checksum.

        lazy: open the base on first use (a write that only rewrites the delta never reads a 576 MB PQ base).
        """
        man = self.man
        self.delta = self._open(man.delta, man.delta_sha256, mmap=False, check=True) if man.delta else None
        self._removed = np.array(sorted(man.removed), np.int64)
        self._base = self._rerank = self._rerank_ids = None
        self._base_due, self._check_all = True, check_all
        for name in (n for n in (man.base, man.rerank) if n and lazy):  # found now: missing, or sealed unlike the store
            if self._sealed(name) != (self.cipher is not None):
                self._open_base()  # raises the error that says which
        if not lazy:
            self._open_base()

    def _sealed(self, name: str) -> bool:
        """Whether a segment file is encrypted (StoreError when it is missing)."""
        if not (self.home / name).exists():
            raise StoreError(f"index file {name} is missing; run `likeness-audit verify --repair`")
        with files.open_read(self.home / name) as f:
            return f.read(4) == b"LAE1"

    def _open_base(self) -> None:
        if not self._base_due:
            return
        man, check = self.man, self._check_all
        base = self._open(man.base, man.base_sha256, mmap=True, check=check) if man.base else None
        # Read whole: a search touches thousands of scattered rows of it, and page faults cost more than the read.
        rerank = self._open(man.rerank, man.rerank_sha256, mmap=False, check=check) if man.rerank else None
        self._base, self._rerank, self._base_due = base, rerank, False
        self._rerank_ids = pqbase.rerank_ids(rerank) if rerank is not None else None

    def _open(self, name: str, sha: str, mmap: bool, check: bool):
        import faiss

        path = self.home / name
        if not path.exists():
            raise StoreError(f"index file {name} is missing; run `likeness-audit verify --repair`")
        if self.cipher is None and not check and path.stat().st_size > HASH_AT_OPEN:
            files.check_file(path)  # faiss opens it by name: no symlink, ours, private
            if self._sealed(name):
                raise StoreError(f"index {name} is encrypted: give the store's key (AUDIT_KEY, AUDIT_KEY_FILE or --key-file)")
            try:
                return faiss.read_index(str(path), faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY if mmap else 0)
            except RuntimeError as exc:
                raise StoreError(f"index {name} is damaged: {exc}") from exc
        try:
            data = files.read_bytes(path)
        except OSError as exc:  # deleted since the manifest was read: a writer replaced it
            raise StoreError(f"cannot read index file {name}: {exc.strerror}") from exc
        if hashlib.sha256(data).hexdigest() != sha:
            raise StoreError(f"index {name} does not match its manifest checksum")
        if self.cipher is not None:
            data = self.cipher.open(data, f"index|{name}".encode(), f"index {name}")
        elif data[:4] == b"LAE1":
            raise StoreError(f"index {name} is encrypted: give the store's key (AUDIT_KEY, AUDIT_KEY_FILE or --key-file)")
        try:
            return faiss.deserialize_index(np.frombuffer(data, np.uint8))
        except RuntimeError as exc:
            raise StoreError(f"index {name} is damaged: {exc}") from exc

    def ids(self) -> np.ndarray:
        """Every live id (reads every list of the base: for verify and recovery)."""
        base = self._rerank_ids if self.rerank is not None else \
            _ids_of(self.base) if self.base is not None else np.zeros(0, np.int64)
        base = base[~np.isin(base, self._removed)]
        delta = _ids_of(self.delta) if self.delta is not None else np.zeros(0, np.int64)
        return np.concatenate([base, delta])

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Approximate top-k (similarities, ids) per query over base and delta; missing slots have id -1.

        One query runs on one OpenMP thread (the count is restored after): on work this size more threads only
        spin, and on a busy machine wait for each other (docs/performance.md, search at 1M)."""
        import faiss

        if len(queries) != 1:
            return self._search(queries, k)
        threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)
        try:
            return self._search(queries, k)
        finally:
            faiss.omp_set_num_threads(threads)

    def _search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        import faiss

        queries = np.ascontiguousarray(queries, dtype=np.float32).reshape(len(queries), -1)
        parts = []
        if self.base is not None and self.man.base_count and self.man.kind == "pqfs":
            parts.append(pqbase.search(self.base, self.rerank, self._rerank_ids, self._removed, queries, k))
        elif self.base is not None and self.man.base_count:
            sel = faiss.IDSelectorNot(faiss.IDSelectorBatch(self._removed)) if len(self._removed) else None
            if self.man.kind == "ivf":
                params = faiss.SearchParametersIVF(nprobe=self.man.nprobe, sel=sel)
            else:
                params = faiss.SearchParameters(sel=sel) if sel is not None else None
            parts.append(self.base.search(queries, k, params=params))
        if self.delta is not None and self.delta.ntotal:
            parts.append(self.delta.search(queries, min(k, self.delta.ntotal)))
        if not parts:
            return np.full((len(queries), 1), -np.inf, np.float32), np.full((len(queries), 1), -1, np.int64)
        sims = np.concatenate([p[0] for p in parts], axis=1)
        ids = np.concatenate([p[1] for p in parts], axis=1)
        sims = np.where(ids < 0, -np.inf, sims)
        order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(sims, order, 1), np.take_along_axis(ids, order, 1)

    # writing (under the store's writer lock)
    def apply(self, add_ids: np.ndarray, add_vecs: np.ndarray, remove_ids, source, purge: bool = False,
              compact: bool = False, purged: np.ndarray | None = None, retrain: bool = False) -> SegManifest:
        """Add and remove vectors: rewrite the delta and the manifest, or compact when the delta has grown.

        purge: removed vectors must leave every file now (a person removed), so removing base vectors compacts;
        otherwise (a centroid replaced) they are only masked until the next compaction.
        source() yields (ids, vectors) chunks of every live vector from the registry, for a compaction that retrains.
        purged: the removed vectors; an IVF base whose list centroids come close to one is retrained, since a
        k-means centroid of a small list can be (nearly) a copy of one person's template. retrain: rebuild the base
        from the registry whatever the sizes (recovery, where the removed vectors are no longer known).
        """
        import faiss

        add_ids = np.asarray(add_ids, np.int64)
        add_vecs = np.ascontiguousarray(add_vecs, np.float32)
        add_vecs = add_vecs.reshape(len(add_ids), -1) if len(add_ids) else np.zeros((0, self.dim), np.float32)
        remove_ids = np.asarray(sorted(set(int(i) for i in remove_ids)), np.int64)
        if self.man is None:
            dim = add_vecs.shape[1] if len(add_ids) else 0
            self.man = SegManifest(self.modality, self.model, dim, 0, [0, 0, 0])
            self._reset()
            self._removed = np.zeros(0, np.int64)
        man = self.man
        if len(add_ids) and man.dim and add_vecs.shape[1] != man.dim:
            raise StoreError(f"vectors of dimension {add_vecs.shape[1]} for an index of dimension {man.dim}")
        man.dim = man.dim or (add_vecs.shape[1] if len(add_ids) else 0)
        delta = self.delta if self.delta is not None else _empty(man.dim or 1)
        if self.delta is not None:
            delta = faiss.deserialize_index(faiss.serialize_index(self.delta))  # the loaded one stays searchable
        in_delta = np.isin(remove_ids, _ids_of(delta))
        if in_delta.any():
            delta.remove_ids(faiss.IDSelectorBatch(remove_ids[in_delta]))
        removed = sorted(set(man.removed) | set(remove_ids[~in_delta].tolist()))
        if len(add_ids):
            delta.add_with_ids(add_vecs, add_ids)
        count = man.base_count - len(removed) + delta.ntotal
        gone, new = id_state(remove_ids), id_state(add_ids)
        state = [man.state[i] - gone[i] + new[i] for i in range(3)]
        retrain = retrain or base_kind(count, man.kind) != man.kind or \
            (man.kind != "flat" and count > RETRAIN_GROWTH * man.trained) or (man.kind == "ivf" and ivfbase.near_centroid(self.base, purged))
        if compact or retrain or delta.ntotal > DELTA_MAX or len(removed) > REMOVED_MAX or \
                (purge and (~in_delta).any()):
            return self.compact(delta, removed, state, source, retrain)
        gen = man.generation + 1
        name, sha = self._write(f"{self.prefix}.d{gen}.faiss", delta) if delta.ntotal else (None, "")
        new_man = SegManifest(**{**asdict(man), "count": count, "state": state, "delta": name, "delta_sha256": sha,
                                 "removed": removed, "generation": gen})
        return self._commit(new_man)

    def compact(self, delta, removed: list[int], state: list[int], source, retrain: bool) -> SegManifest:
        """Fold delta and removals into a new base; with retrain, rebuild it from the registry (Flat, PQ or IVF)."""
        import faiss

        man = self.man
        gen = man.generation + 1
        faults.point("segments.compact:start")
        rerank = None
        if retrain:
            kind = base_kind(state[0], man.kind)
            base, rerank, nlist, trained = self._build(source, state[0], man.dim, kind)
        elif man.kind == "pqfs":
            base = self._open(man.base, man.base_sha256, mmap=False, check=True)
            rerank = self._open(man.rerank, man.rerank_sha256, mmap=False, check=True)
            base, rerank = pqbase.fold(base, rerank, np.array(removed, np.int64), _ids_of(delta),
                                       faiss.downcast_index(delta.index).reconstruct_n(0, delta.ntotal))
            kind, nlist, trained = man.kind, man.nlist, man.trained
        else:
            base = self._open(man.base, man.base_sha256, mmap=False, check=True) if man.base else _empty(man.dim)
            if removed:
                base.remove_ids(faiss.IDSelectorBatch(np.array(removed, np.int64)))
            if delta.ntotal:
                base.add_with_ids(faiss.downcast_index(delta.index).reconstruct_n(0, delta.ntotal), _ids_of(delta))
            kind, nlist, trained = man.kind, man.nlist, man.trained
        faults.point("segments.compact:built")
        name, sha = self._write(f"{self.prefix}.b{gen}.faiss", base)
        rname, rsha = self._write(f"{self.prefix}.r{gen}.faiss", rerank) if rerank is not None else (None, "")
        n = int(base.ntotal)
        new_man = SegManifest(
            self.modality, self.model, man.dim, n, state, kind=kind, base=name, base_sha256=sha, rerank=rname,
            rerank_sha256=rsha, base_count=n, nlist=nlist, nprobe=ivfbase.nprobe(nlist, n) if kind == "ivf" else 0,
            trained=trained, generation=gen)
        return self._commit(new_man)

    def _build(self, source, n: int, dim: int, kind: str):
        """A fresh base of one kind from every live vector: (base, re-rank file or None, IVF lists, trained on)."""
        if kind == "flat":
            base = _empty(dim)
            for ids, vecs in source():
                base.add_with_ids(np.ascontiguousarray(vecs, np.float32), ids)
            return base, None, 0, 0
        if kind == "pqfs":
            return *pqbase.build(source, n, dim), 0, n
        base, nlist = ivfbase.build(source, n, dim)
        return base, None, nlist, n

    def rebuild(self, source, dim: int) -> SegManifest:
        """A new base from every live vector in the registry, no delta (repair)."""
        ids_all = [ids for ids, _ in source()]
        ids = np.concatenate(ids_all) if ids_all else np.zeros(0, np.int64)
        self.man = SegManifest(self.modality, self.model, dim, 0, [0, 0, 0], generation=self._max_generation())
        self._reset()
        self._removed = np.zeros(0, np.int64)
        return self.compact(_empty(dim), [], list(id_state(ids)), source, retrain=True)

    def _max_generation(self) -> int:
        gens = [int(m.group(1)) for p in self.home.iterdir()
                if self.owns(p.name) and (m := re.search(r"\.[bdr](\d+)\.faiss$", p.name))]
        return max(gens, default=0)

    def _write(self, name: str, index) -> tuple[str, str]:
        import faiss

        data = faiss.serialize_index(index).tobytes()
        if self.cipher is not None:
            data = self.cipher.seal(data, f"index|{name}".encode())
        atomic_write(self.home / name, data)
        faults.point("segments.write:segment")
        return name, hashlib.sha256(data).hexdigest()

    def write_manifest(self, man: SegManifest) -> None:
        """Write the manifest, sealed when the store has a key."""
        manifest.write(self.manifest_path, man, self.registry)

    def _commit(self, man: SegManifest) -> SegManifest:
        """Write the manifest (the commit point), then delete the files it no longer names."""
        self.write_manifest(man)
        faults.point("segments.commit:manifest")
        self.man = man
        self.sweep()
        self.load(lazy=True)
        return man

    def sweep(self) -> list[str]:
        """Delete this index's files that the manifest does not name (left by a killed or earlier write)."""
        keep = self.files()
        gone = []
        for p in sorted(self.home.iterdir()):
            if self.owns(p.name) and p.name not in keep:
                p.unlink(missing_ok=True)
                gone.append(p.name)
        return gone

    def drop(self) -> list[str]:
        """Delete every file of this index."""
        self.man = None
        self._reset()
        return self.sweep()
