"""The base of a large gallery: 4-bit PQ codes scanned whole by faiss's fast-scan kernel, then a shortlist re-scored
on 8-bit codes of the same vectors, so that the store's exact re-rank against the registry reads only the best few.

Two faiss files, both read into memory: the codes (IndexPQFastScan, 64 bytes a 512-d vector) and the re-rank file
(IndexIDMap over an 8-bit IndexScalarQuantizer, 512 bytes a vector), which also maps the codes' positions to vector
ids. The PQ codes are made from the 8-bit codes' vectors, so verify can re-derive them exactly.

Why this shape (benchmarks/README.md, "Gallery scale" and "Candidate indexes"): IVF could not reach the recall goal
at 1M within 5 ms, since a true best template fell outside the probed lists; scanning every PQ code can. Re-scoring
the shortlist from a memory-mapped float32 file was exact but each search faulted in fresh pages of it (20 ms a
search on this machine, and most of a 2 GB file mapped into the process); the 8-bit codes cost 512 MB at 1M, loaded
once. PQ sub-codebooks (16 centroids of 4 dimensions each) and the 8-bit ranges (a minimum and a width per dimension)
are trained on up to TRAIN vectors: averages and extremes over thousands of people, not a copy of anyone's template.
"""

from __future__ import annotations

import numpy as np

DIMS_PER_CODE = 4  # PQ sub-vector width: 128 sub-quantizers of 4 bits for 512-d vectors
FASTSCAN_CANDIDATES = 2000  # fast-scan candidates re-scored per probe (at 1M: recall@1 1798/1800 against 1795 with 1,000)
KERNEL = 15  # faiss fast-scan search implementation (implem), the fastest measured here for k = 1000
TRAIN = 65_536  # training vectors for the PQ codebooks and the 8-bit ranges
CHUNK = 65_536  # vectors encoded at a time
SLACK = 5e-3  # 8-bit cosines of face templates lie within ~1e-3 of the exact ones (benchmarks/README.md)


def empty_rerank(dim: int):
    """An empty (untrained) re-rank index with ids."""
    import faiss

    return faiss.IndexIDMap(faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT))


def codes_index(rerank):
    """The 8-bit index inside a re-rank file."""
    import faiss

    return faiss.downcast_index(rerank.index)


def rerank_ids(rerank) -> np.ndarray:
    """Vector id of each position."""
    import faiss

    return faiss.vector_to_array(rerank.id_map).astype(np.int64)


def rerank_codes(rerank) -> np.ndarray:
    """The 8-bit codes of every position, shape (n, code size) (a view: valid while rerank is alive)."""
    import faiss

    sq = codes_index(rerank)
    if not sq.ntotal:
        return np.zeros((0, sq.code_size), np.uint8)
    return faiss.rev_swig_ptr(sq.codes.data(), sq.ntotal * sq.code_size).reshape(sq.ntotal, sq.code_size)


def decoded(rerank, start: int, stop: int) -> np.ndarray:
    """Float32 vectors of positions start..stop-1 of the re-rank file."""
    return codes_index(rerank).sa_decode(np.ascontiguousarray(rerank_codes(rerank)[start:stop]))


def code_bytes(codes) -> np.ndarray:
    """The packed fast-scan codes as bytes (a view: valid while codes is alive)."""
    import faiss

    return faiss.rev_swig_ptr(codes.codes.get(), codes.codes.size()) if codes.ntotal else np.zeros(0, np.uint8)


def refill(codes, rerank):
    """A copy of codes with the same codebooks, holding the codes of every vector of rerank in position order."""
    import faiss

    fresh = faiss.deserialize_index(faiss.serialize_index(codes))
    fresh.reset()
    for start in range(0, rerank.ntotal, CHUNK):
        fresh.add(decoded(rerank, start, min(start + CHUNK, rerank.ntotal)))
    fresh.implem = KERNEL
    return fresh


def build(source, n: int, dim: int):
    """(codes, re-rank file) of every live vector: codebooks and ranges trained on an even spread over the id order."""
    import faiss

    step = max(1, n // TRAIN)
    train = np.concatenate([vecs[::step] for _, vecs in source()])[:TRAIN]
    if len(train) < 16:  # k-means wants a point per code; only tests shrink the policy this far
        train = np.resize(train, (16, dim))
    train = np.ascontiguousarray(train, np.float32)
    codes = faiss.IndexPQFastScan(dim, max(1, dim // DIMS_PER_CODE), 4, faiss.METRIC_INNER_PRODUCT)
    codes.train(train)
    rerank = empty_rerank(dim)
    rerank.train(train)
    del train
    for ids, vecs in source():
        rerank.add_with_ids(np.ascontiguousarray(vecs, np.float32), ids)
    return refill(codes, rerank), rerank


def fold(codes, rerank, removed: np.ndarray, add_ids: np.ndarray, add_vecs: np.ndarray):
    """(codes, re-rank file) with removed ids gone and new vectors appended; codebooks and ranges are kept."""
    import faiss

    if len(removed):
        rerank.remove_ids(faiss.IDSelectorBatch(np.asarray(removed, np.int64)))
    if len(add_ids):
        rerank.add_with_ids(np.ascontiguousarray(add_vecs, np.float32), np.asarray(add_ids, np.int64))
    return refill(codes, rerank), rerank


def search(codes, rerank, ids: np.ndarray, removed: np.ndarray, queries: np.ndarray,
           k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k (cosine on the 8-bit codes, id) per query; removed ids are dropped (fast-scan takes no id selector)."""
    n = codes.ntotal
    sims = np.full((len(queries), k), -np.inf, np.float32)
    out = np.full((len(queries), k), -1, np.int64)
    if not n:
        return sims, out
    codes.implem = KERNEL
    queries = queries / np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12)
    _, pos = codes.search(queries, min(n, max(FASTSCAN_CANDIDATES, k)))
    sq, stored = codes_index(rerank), rerank_codes(rerank)
    for row, (q, p) in enumerate(zip(queries, pos)):
        p = p[p >= 0]
        cand = ids[p]
        if len(removed):
            keep = ~np.isin(cand, removed)
            p, cand = p[keep], cand[keep]
        v = sq.sa_decode(stored[p])
        # cosine (search.py cuts the list by score); einsum, not BLAS, whose threads only spin for a product this size
        s = np.einsum("ij,j->i", v, q) / np.maximum(np.sqrt(np.einsum("ij,ij->i", v, v)), 1e-12)
        top = np.argsort(-s, kind="stable")[:k]
        sims[row, :len(top)], out[row, :len(top)] = s[top], cand[top]
    return sims, out
