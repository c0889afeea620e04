"""The base of the largest galleries (beyond pqbase's range): IVF with 8-bit codes, a share of its lists probed.

Cheaper per search than scanning every code, but a true best template can lie in a list that is not probed: at 1M
face-like vectors it found the exact best person for only 0.8 of probes (benchmarks/README.md, Gallery scale), so a
scan against it says that it can miss a match.
"""

from __future__ import annotations

import math

import numpy as np

PURGE_SIMILARITY = 0.95  # a removed vector this close to a list centroid makes its removal retrain the base
SCAN = 20_000  # vectors a search scans (lists probed = nlist * SCAN / base size): about 3 ms a face here
TRAIN_PER_LIST = 32  # k-means training points per list
KMEANS_ITER = 10


def lists(n: int) -> int:
    """IVF lists for n vectors: the power of two at or above 4 sqrt(n), with at least TRAIN_PER_LIST vectors a list.

    More, smaller lists probed in the same share gave better recall on face-like vectors (benchmarks/README.md).
    """
    return max(2, min(2 ** math.ceil(math.log2(4 * max(n, 1) ** 0.5)), 2 ** int(math.log2(max(n // TRAIN_PER_LIST, 2)))))


def nprobe(nlist: int, n: int) -> int:
    """Lists to probe so that a search scans about SCAN vectors of n."""
    return max(1, min(nlist, round(nlist * SCAN / max(n, 1))))


def build(source, n: int, dim: int):
    """(base, lists) of every live vector; k-means trained on an even spread over the id order (ids grow with
    time, so this spans old and new people)."""
    import faiss

    nlist = lists(n)
    want = min(n, nlist * TRAIN_PER_LIST)
    step = max(1, n // want)
    train = np.concatenate([vecs[::step] for _, vecs in source()])[:want]
    base = faiss.index_factory(dim, f"IVF{nlist},SQ8", faiss.METRIC_INNER_PRODUCT)
    faiss.extract_index_ivf(base).cp.niter = KMEANS_ITER
    base.train(np.ascontiguousarray(train, np.float32))
    del train
    for ids, vecs in source():
        base.add_with_ids(np.ascontiguousarray(vecs, np.float32), ids)
    return base, nlist


def near_centroid(base, vecs: np.ndarray | None) -> bool:
    """Whether any of vecs is within PURGE_SIMILARITY of one of the base's list centroids: a k-means centroid of a
    small list can be (nearly) a copy of one person's template, so removing that person retrains the base."""
    import faiss

    if vecs is None or not len(vecs):
        return False
    quantizer = faiss.downcast_index(faiss.extract_index_ivf(base).quantizer)
    cents = quantizer.reconstruct_n(0, quantizer.ntotal)
    cents = cents / np.maximum(np.linalg.norm(cents, axis=1, keepdims=True), 1e-12)
    unit = vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
    return bool((unit @ cents.T).max() >= PURGE_SIMILARITY)
