"""Searching the embedding archive (archive.py) for templates. A partition with sign codes is sifted on them
alone (archive_sign.py: Hamming distance, then an asymmetric score; measured recall); a partition written before
them has its 8-bit codes scanned by FAISS with their error bound (guaranteed). The rows left either way are
re-scored exactly on their float16 embeddings.

The codes can only err by a known bound (CODE_STEP/2 * sum|q| for template q), so the shortlist takes every row
whose code score is within that bound of the threshold: no row scoring at or above the threshold is missed. When
the k nearest rows all lie within the bound, k grows (up to the whole batch) before anything is decided.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from . import archive_sign
from .archive import CODE_LOW, CODE_SPAN, CODE_STEP, codes, embeddings

FIRST_K = 64  # nearest rows per template asked of FAISS first; grown 8-fold while they all reach the bound


@dataclass
class Hit:
    """An archived row at or above the threshold: which table of the batch, which row, its best exact score."""

    table: int
    row: int
    score: float


def _index(dim: int):
    import faiss

    index = faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_8bit_uniform, faiss.METRIC_INNER_PRODUCT)
    faiss.copy_array_to_vector(np.array([CODE_LOW, CODE_SPAN], np.float32), index.sq.trained)
    index.is_trained = True
    return index


def shortlist(code: np.ndarray | list[np.ndarray], templates: np.ndarray, threshold: float) -> np.ndarray:
    """Row numbers (across the code arrays, in order) whose code score may reach the threshold for some template:
    a superset of the true hits."""
    parts = [code] if isinstance(code, np.ndarray) else list(code)
    n = sum(len(c) for c in parts)
    if n == 0 or not len(templates):
        return np.zeros(0, np.int64)
    q = np.ascontiguousarray(templates, np.float32)
    low = threshold - (CODE_STEP / 2) * np.abs(q).sum(axis=1) - 1e-4  # the codes' bound, and float rounding
    index = _index(parts[0].shape[1])
    for c in parts:  # added one array at a time: no concatenated copy of the batch
        index.add_sa_codes(np.ascontiguousarray(c))
    k = min(n, FIRST_K)
    while True:
        scores, rows = index.search(q, k)
        if k >= n or not (scores[:, -1] >= low).any():
            break
        k = min(n, k * 8)  # the k-th nearest may still reach the threshold: look further
    return np.unique(rows[(scores >= low[:, None]) & (rows >= 0)])


def search(tables: list, templates: np.ndarray, threshold: float, load=None) -> list[Hit]:
    """Rows of a batch of face partitions (pyarrow Tables with sign, or code and clipped for partitions written
    before sign codes; embedding, or load(i, rows) giving those rows of it) at or above threshold for any template. Partitions with
    sign codes: their two sifting steps (archive_sign.py, measured recall), then the exact score; older ones:
    FAISS scans of their 8-bit codes (the guaranteed bound), then the exact score. Exact scores come from the
    float16 embeddings."""
    tables = [t for t in tables if t.num_rows]
    if not tables or not len(templates):
        return []
    q = np.ascontiguousarray(templates, np.float32)
    fast = [i for i, t in enumerate(tables) if archive_sign.usable(t)]
    old = [i for i in range(len(tables)) if i not in set(fast)]
    rows: dict[int, np.ndarray] = {}
    # Two threads (FAISS and numpy release the GIL; one new person is a handful of templates, so a single call
    # would keep one core busy): the sign-coded partitions one per task, the older ones in two FAISS scans.
    with ThreadPoolExecutor(2) as pool:
        sifter = _sifter(q, threshold) if fast else None
        for i, found in zip(fast, pool.map(lambda i: _sifted(tables[i], sifter), fast)):
            rows[i] = found
        rows.update(_scanned([tables[i] for i in old], old, q, threshold, pool))
    hits = []
    for i, t in enumerate(tables):
        local = rows.get(i, np.zeros(0, np.int64))
        if not len(local):
            continue
        # load(i, rows): those rows of table i with their embeddings, when the table was read without them
        exact = t.take(local) if "embedding" in t.column_names else load(i, local)
        scores = (embeddings(exact) @ q.T).max(axis=1)
        hits += [Hit(i, int(r), float(s)) for r, s in zip(local, scores) if s >= threshold]
    return hits


_PREPARED: dict = {}


def _sifter(q: np.ndarray, threshold: float):
    """The Sifter of these templates, prepared once for all of a search's batches (the last one kept)."""
    key = (q.tobytes(), q.shape, threshold)
    sifter = _PREPARED.get(key)
    if sifter is None:  # kept in a local: another thread's search may replace the cached one meanwhile
        sifter = archive_sign.Sifter(q, threshold)
        _PREPARED.clear()
        _PREPARED[key] = sifter
    return sifter


def _sifted(table, sifter) -> np.ndarray:
    """A sign-coded partition's rows that pass the sign codes' two steps (archive_sign.sift); run on a worker
    thread of search(), which it sets to one OpenMP thread (a per-thread setting): FAISS's parallel region per
    call otherwise costs more than the scan of one partition's codes (0.9 against 0.02 CPU s per 10^6 rows)."""
    import faiss

    faiss.omp_set_num_threads(1)
    return sifter.sift(archive_sign.sign_codes(table))


def _scanned(tables: list, which: list[int], q: np.ndarray, threshold: float, pool) -> dict[int, np.ndarray]:
    """Partitions without sign codes: their 8-bit codes scanned by FAISS in up to two halves, the shortlist and
    every clipped row; table which[j] -> its rows."""
    if not tables:
        return {}
    sizes = np.array([t.num_rows for t in tables])
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    half = int(np.searchsorted(np.cumsum(sizes), sizes.sum() / 2)) + 1 if len(tables) > 1 else len(tables)
    groups = [(0, tables[:half]), (int(starts[half]) if half < len(tables) else 0, tables[half:])]
    groups = [(at, g) for at, g in groups if g]
    parts = pool.map(lambda g: g[0] + shortlist([codes(t) for t in g[1]], q, threshold), groups)
    found = np.concatenate(list(parts))
    out = {}
    for j, t in enumerate(tables):
        local = found[(found >= starts[j]) & (found < starts[j] + sizes[j])] - starts[j]
        clipped = np.flatnonzero(t.column("clipped").to_numpy(zero_copy_only=False))
        out[which[j]] = np.unique(np.concatenate([local, clipped]).astype(np.int64))
    return out
