"""A vector index kept as segments: a large base (exact Flat, or IVF with 8-bit codes above a crossover), a small
exact delta of recent additions and a list of removed base ids, tied together by a manifest.

A write rewrites only the delta (a few MB) and the manifest; compaction folds the delta into the base now and then.
The manifest is the commit point: segment files carry a generation in their name, so a killed writer leaves at worst
files no manifest names, which the next write deletes. Plaintext bases are memory-mapped (faiss IO_FLAG_MMAP_IFC),
so opening a million-vector store reads a few kB; encrypted bases are one AES-GCM blob each and are decrypted into
memory (AES-GCM authenticates a whole blob, which rules out paging it in), which costs time and memory at scale.

The index only proposes candidates: the store re-scores them against the registry's exact vectors, so an approximate
base can miss a candidate (measured by benchmarks/gallery_scale.py) but never invent or inflate a match.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from . import faults, files
from ..errors import StoreError
from .index import atomic_write
from .vectors import id_state

# Policy; figures behind each number are in benchmarks/README.md ("Gallery scale").
FLAT_MAX = 32_768  # crossover: above this many vectors the base is IVF (exact Flat search passes ~3 ms per face)
DELTA_MAX = 8_192  # recent additions searched exactly; beyond this a write compacts them into the base
REMOVED_MAX = 8_192  # replaced base ids (old centroids) remembered; beyond this a write compacts
RETRAIN_GROWTH = 2.0  # an IVF base is retrained (k-means again) once it holds this many times what it was trained on
PURGE_SIMILARITY = 0.95  # a removed vector this close to an IVF list centroid makes its removal retrain the base
HASH_AT_OPEN = 64 << 20  # segments up to this size are checksummed when opened; larger ones by verify only
SCAN = 20_000  # vectors an IVF search scans (lists probed = nlist * SCAN / base size): about 3 ms a face here
TRAIN_PER_LIST = 32  # k-means training points per list
KMEANS_ITER = 10


@dataclass
class SegManifest:
    """What the segments of one index hold; the JSON beside them."""

    modality: str
    model: str
    dim: int
    count: int
    state: list[int]  # (count, sum, hash sum) of the live ids: compared with the registry's id_state on open
    kind: str = "flat"  # base kind: flat | ivf
    base: str | None = None
    base_sha256: str = ""
    base_count: int = 0
    delta: str | None = None
    delta_sha256: str = ""
    removed: list[int] = field(default_factory=list)  # base ids removed since the last compaction
    nlist: int = 0
    nprobe: int = 0
    trained: int = 0  # vectors the IVF base was trained on
    generation: int = 0
    version: int = 2

    @property
    def file_sha256(self) -> str:
        """One digest of the whole index state, for findings."""
        return hashlib.sha256(f"{self.base_sha256}|{self.delta_sha256}|{sorted(self.removed)}".encode()).hexdigest()


def sha256_file(path: Path) -> str:
    """SHA-256 of a file, read in blocks."""
    h = hashlib.sha256()
    with files.open_read(path) as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def ivf_lists(n: int) -> int:
    """IVF lists for n vectors: the power of two at or above 4 sqrt(n), with at least TRAIN_PER_LIST vectors a list.

    More, smaller lists probed in the same share gave better recall on face-like vectors (benchmarks/README.md).
    """
    return max(2, min(2 ** math.ceil(math.log2(4 * max(n, 1) ** 0.5)), 2 ** int(math.log2(max(n // TRAIN_PER_LIST, 2)))))


def nprobe(nlist: int, n: int) -> int:
    """Lists to probe so that a search scans about SCAN vectors of n."""
    return max(1, min(nlist, round(nlist * SCAN / max(n, 1))))


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

    def __init__(self, home: Path, prefix: str, modality: str, model: str, cipher=None):
        self.home, self.prefix, self.modality, self.model, self.cipher = Path(home), prefix, modality, model, cipher
        self.man: SegManifest | None = None
        self.base = self.delta = None
        self._removed = None

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

    def files(self) -> set[str]:
        """Names of the files the manifest refers to, the manifest included."""
        if self.man is None:
            return set()
        return {self.manifest_path.name} | {n for n in (self.man.base, self.man.delta) if n}

    def owns(self, name: str) -> bool:
        """Whether a file name in home is one of this index's segment or manifest files (current or stale)."""
        return re.fullmatch(re.escape(self.prefix) + r"(\.[bd]\d+\.faiss|\.json)", name) is not None

    # reading
    def read_manifest(self) -> SegManifest | None:
        """Read the manifest (None when there is none); StoreError when it is unreadable or of the old format."""
        try:
            data = json.loads(files.read_bytes(self.manifest_path))
        except FileNotFoundError:
            self.man = None
            return None
        except (OSError, ValueError) as exc:
            raise StoreError(f"cannot read index manifest {self.manifest_path.name}: {exc}") from exc
        if not isinstance(data, dict) or data.get("version") != 2:
            raise StoreError(f"index {self.manifest_path.name} is of an older format; run `likeness-audit verify --repair`")
        try:
            self.man = SegManifest(**data)
        except TypeError as exc:
            raise StoreError(f"index manifest {self.manifest_path.name} is damaged: {exc}") from exc
        return self.man

    def load(self, check_all: bool = False) -> None:
        """Open the segments the manifest names (base memory-mapped when plaintext); StoreError when one is missing,
        damaged, or (small segments; all with check_all) differs from its checksum."""
        man = self.man
        self.base = self._open(man.base, man.base_sha256, mmap=True, check=check_all) if man.base else None
        self.delta = self._open(man.delta, man.delta_sha256, mmap=False, check=True) if man.delta else None
        self._removed = np.array(sorted(man.removed), np.int64)

    def _open(self, name: str, sha: str, mmap: bool, check: bool):
        import faiss

        path = self.home / name
        if not path.exists():
            raise StoreError(f"index file {name} is missing; run `likeness-audit verify --repair`")
        if self.cipher is None and mmap and not check and path.stat().st_size > HASH_AT_OPEN:
            files.check_file(path)  # faiss opens it by name: no symlink, ours, private
            with files.open_read(path) as f:
                head = f.read(4)
            if head == b"LAE1":
                raise StoreError(f"index {name} is encrypted: give the store's key (AUDIT_KEY, AUDIT_KEY_FILE or --key-file)")
            try:
                return faiss.read_index(str(path), faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY)
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
        base = _ids_of(self.base) if self.base is not None else np.zeros(0, np.int64)
        base = base[~np.isin(base, self._removed)]
        delta = _ids_of(self.delta) if self.delta is not None else np.zeros(0, np.int64)
        return np.concatenate([base, delta])

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Approximate top-k (similarities, ids) per query over base and delta; missing slots have id -1."""
        import faiss

        queries = np.ascontiguousarray(queries, dtype=np.float32).reshape(len(queries), -1)
        parts = []
        if self.base is not None and self.man.base_count:
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
            self.base = self.delta = None
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
        retrain = retrain or (count > FLAT_MAX and (man.kind == "flat" or count > RETRAIN_GROWTH * man.trained)) or \
                  (man.kind == "ivf" and count <= FLAT_MAX // 2) or self._near_centroid(purged)
        if compact or retrain or delta.ntotal > DELTA_MAX or len(removed) > REMOVED_MAX or \
                (purge and (~in_delta).any()):
            return self.compact(delta, removed, state, source, retrain)
        gen = man.generation + 1
        name, sha = self._write(f"{self.prefix}.d{gen}.faiss", delta) if delta.ntotal else (None, "")
        new_man = SegManifest(**{**asdict(man), "count": count, "state": state, "delta": name, "delta_sha256": sha,
                                 "removed": removed, "generation": gen})
        return self._commit(new_man)

    def _near_centroid(self, vecs: np.ndarray | None) -> bool:
        """Whether any of vecs is within PURGE_SIMILARITY of one of the IVF base's list centroids."""
        import faiss

        if vecs is None or not len(vecs) or self.base is None or self.man.kind != "ivf":
            return False
        quantizer = faiss.downcast_index(faiss.extract_index_ivf(self.base).quantizer)
        cents = quantizer.reconstruct_n(0, quantizer.ntotal)
        cents = cents / np.maximum(np.linalg.norm(cents, axis=1, keepdims=True), 1e-12)
        unit = vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
        return bool((unit @ cents.T).max() >= PURGE_SIMILARITY)

    def compact(self, delta, removed: list[int], state: list[int], source, retrain: bool) -> SegManifest:
        """Fold delta and removals into a new base; with retrain, rebuild it from the registry (IVF or Flat)."""
        import faiss

        man = self.man
        gen = man.generation + 1
        faults.point("segments.compact:start")
        if retrain:
            base, kind, nlist, trained = self._build(source, state[0], man.dim)
        else:
            base = self._open(man.base, man.base_sha256, mmap=False, check=True) if man.base else _empty(man.dim)
            if removed:
                base.remove_ids(faiss.IDSelectorBatch(np.array(removed, np.int64)))
            if delta.ntotal:
                base.add_with_ids(faiss.downcast_index(delta.index).reconstruct_n(0, delta.ntotal), _ids_of(delta))
            kind, nlist, trained = man.kind, man.nlist, man.trained
        faults.point("segments.compact:built")
        name, sha = self._write(f"{self.prefix}.b{gen}.faiss", base)
        new_man = SegManifest(
            self.modality, self.model, man.dim, int(base.ntotal), state, kind, name, sha, int(base.ntotal), None, "",
            [], nlist, nprobe(nlist, int(base.ntotal)) if kind == "ivf" else 0, trained, gen)
        return self._commit(new_man)

    def _build(self, source, n: int, dim: int):
        """A fresh base from every live vector: Flat up to FLAT_MAX, else IVF (nlist ~ sqrt n) with 8-bit codes."""
        import faiss

        if n <= FLAT_MAX:
            base = _empty(dim)
            for ids, vecs in source():
                base.add_with_ids(np.ascontiguousarray(vecs, np.float32), ids)
            return base, "flat", 0, 0
        nlist = ivf_lists(n)
        # Training points: an even spread over the id order (ids grow with time, so this spans old and new people).
        want = min(n, nlist * TRAIN_PER_LIST)
        step = max(1, n // want)
        train = np.concatenate([vecs[::step] for _, vecs in source()])[:want]
        base = faiss.index_factory(dim, f"IVF{nlist},SQ8", faiss.METRIC_INNER_PRODUCT)
        faiss.extract_index_ivf(base).cp.niter = KMEANS_ITER
        base.train(np.ascontiguousarray(train, np.float32))
        del train
        for ids, vecs in source():
            base.add_with_ids(np.ascontiguousarray(vecs, np.float32), ids)
        return base, "ivf", nlist, n

    def rebuild(self, source, dim: int) -> SegManifest:
        """A new base from every live vector in the registry, no delta (repair)."""
        ids_all = [ids for ids, _ in source()]
        ids = np.concatenate(ids_all) if ids_all else np.zeros(0, np.int64)
        self.man = SegManifest(self.modality, self.model, dim, 0, [0, 0, 0], generation=self._max_generation())
        self.base = self.delta = None
        self._removed = np.zeros(0, np.int64)
        return self.compact(_empty(dim), [], list(id_state(ids)), source, retrain=True)

    def _max_generation(self) -> int:
        gens = [int(m.group(1)) for p in self.home.iterdir()
                if self.owns(p.name) and (m := re.search(r"\.[bd](\d+)\.faiss$", p.name))]
        return max(gens, default=0)

    def _write(self, name: str, index) -> tuple[str, str]:
        import faiss

        data = faiss.serialize_index(index).tobytes()
        if self.cipher is not None:
            data = self.cipher.seal(data, f"index|{name}".encode())
        atomic_write(self.home / name, data)
        faults.point("segments.write:segment")
        return name, hashlib.sha256(data).hexdigest()

    def _commit(self, man: SegManifest) -> SegManifest:
        """Write the manifest (the commit point), then delete the files it no longer names."""
        atomic_write(self.manifest_path, json.dumps(asdict(man), indent=1).encode())
        faults.point("segments.commit:manifest")
        self.man = man
        self.sweep()
        self.load()
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
        self.base = self.delta = None
        return self.sweep()

    def check(self) -> list[str]:
        """Problems with this index's files themselves: checksums of every segment (reads them all)."""
        problems = []
        for name, sha in ((self.man.base, self.man.base_sha256), (self.man.delta, self.man.delta_sha256)):
            if name is None:
                continue
            path = self.home / name
            if not path.exists():
                problems.append(f"index file {name} is missing")
            elif sha256_file(path) != sha:
                problems.append(f"index {name} does not match its manifest checksum")
        return problems

