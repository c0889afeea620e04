"""Searching the embedding archive (archive.py) for templates: one FAISS scan of the 8-bit codes of a batch of
partitions, then the rows it proposes re-scored exactly on their stored embeddings.

The codes can only err by a known bound (CODE_STEP/2 * sum|q| for template q), so the shortlist takes every row
whose code score is within that bound of the threshold: no row scoring at or above the threshold is missed. When
the k nearest rows all lie within the bound, k grows (up to the whole batch) before anything is decided.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

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
    """Rows of a batch of face partitions (pyarrow Tables with code, clipped, embedding) at or above threshold
    for any template: FAISS scans of the batch's codes, the shortlist re-scored on the float16 embeddings."""
    tables = [t for t in tables if t.num_rows]
    if not tables or not len(templates):
        return []
    sizes = np.array([t.num_rows for t in tables])
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    # One FAISS scan per half of the batch, in two threads: FAISS parallelises over queries, and one new person
    # is a handful of templates, so a single scan would keep one core busy (FAISS releases the GIL).
    half = int(np.searchsorted(np.cumsum(sizes), sizes.sum() / 2)) + 1 if len(tables) > 1 else len(tables)
    groups = [(0, tables[:half]), (int(starts[half]) if half < len(tables) else 0, tables[half:])]
    groups = [(at, g) for at, g in groups if g]
    with ThreadPoolExecutor(len(groups)) as pool:
        parts = pool.map(lambda g: g[0] + shortlist([codes(t) for t in g[1]], templates, threshold), groups)
        rows = set(np.concatenate(list(parts)).tolist())
    for i, t in enumerate(tables):  # rows with a component outside the codes' range: always re-scored
        rows |= {int(starts[i] + r) for r in np.flatnonzero(t.column("clipped").to_numpy(zero_copy_only=False))}
    hits = []
    q = np.asarray(templates, np.float32).T
    found = np.array(sorted(rows), np.int64)
    which = np.searchsorted(starts, found, side="right") - 1
    for i, t in enumerate(tables):
        local = found[which == i] - starts[i]
        if not len(local):
            continue
        exact = t if "embedding" in t.column_names else load(i)  # load(i): table i's embedding column
        scores = (embeddings(exact.take(local)) @ q).max(axis=1)
        hits += [Hit(i, int(r), float(s)) for r, s in zip(local, scores) if s >= threshold]
    return hits
