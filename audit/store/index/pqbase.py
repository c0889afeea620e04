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
BBS = 64  # fast-scan block size of new codes: 1M codes scanned for 2,000 candidates in ~3.2 ms against ~4.4 ms at 32
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


def refill(codes, rerank, bbs: int | None = None):
    """A copy of codes with the same codebooks, holding the codes of every vector of rerank in position order, packed
    in blocks of bbs vectors (None: as codes are, which verify re-derives byte for byte)."""
    import faiss

    fresh = faiss.deserialize_index(faiss.serialize_index(codes))
    fresh.reset()
    fresh.bbs = bbs or codes.bbs
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
    codes = faiss.IndexPQFastScan(dim, max(1, dim // DIMS_PER_CODE), 4, faiss.METRIC_INNER_PRODUCT, BBS)
    codes.train(train)
    rerank = empty_rerank(dim)
    rerank.train(train)
    del train
    for ids, vecs in source():
        rerank.add_with_ids(np.ascontiguousarray(vecs, np.float32), ids)
    return refill(codes, rerank, BBS), rerank


def fold(codes, rerank, removed: np.ndarray, add_ids: np.ndarray, add_vecs: np.ndarray):
    """(codes, re-rank file) with removed ids gone and new vectors appended; codebooks and ranges are kept (the codes
    are packed in blocks of BBS, so a base from before BBS changes its layout at its next compaction)."""
    import faiss

    if len(removed):
        rerank.remove_ids(faiss.IDSelectorBatch(np.asarray(removed, np.int64)))
    if len(add_ids):
        rerank.add_with_ids(np.ascontiguousarray(add_vecs, np.float32), np.asarray(add_ids, np.int64))
    return refill(codes, rerank, BBS), rerank


def search(codes, rerank, ids: np.ndarray, removed: np.ndarray, queries: np.ndarray,
           k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k (cosine on the 8-bit codes, id) per query; removed ids are dropped (fast-scan takes no id selector)."""
    import faiss

    n = codes.ntotal
    sims = np.full((len(queries), k), -np.inf, np.float32)
    out = np.full((len(queries), k), -1, np.int64)
    if not n:
        return sims, out
    codes.implem = KERNEL
    queries = np.ascontiguousarray(queries / np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12),
                                   np.float32)
    _, pos = codes.search(queries, min(n, max(FASTSCAN_CANDIDATES, k)))
    sq, stored, dim = codes_index(rerank), rerank_codes(rerank), rerank.d
    for row, (q, p) in enumerate(zip(queries, pos)):
        p = p[p >= 0]
        if len(removed):
            p = p[~np.isin(np.take(ids, p), removed)]
        if not len(p):
            continue
        # np.take gathers rows at about twice the speed of fancy indexing; faiss's single-threaded SIMD products
        # beat einsum threefold (BLAS would start threads that only spin for a product this size)
        v = sq.sa_decode(np.take(stored, p, axis=0))
        dots, norms = np.empty(len(v), np.float32), np.empty(len(v), np.float32)
        faiss.fvec_inner_products_ny(faiss.swig_ptr(dots), faiss.swig_ptr(q), faiss.swig_ptr(v), dim, len(v))
        faiss.fvec_norms_L2sqr(faiss.swig_ptr(norms), faiss.swig_ptr(v), dim, len(v))
        s = dots / np.maximum(np.sqrt(norms), 1e-12)
        top = best_first(s, k)
        sims[row, :len(top)], out[row, :len(top)] = s[top], np.take(ids, np.take(p, top))
    return sims, out


def best_first(s: np.ndarray, k: int) -> np.ndarray:
    """Positions of the k highest of s, highest first, ties in position order: np.argsort(-s, kind="stable")[:k]
    without sorting all of s."""
    kth = -np.partition(-s, k - 1)[k - 1] if len(s) > k else np.nan  # NaN sorts last, as in argsort
    if np.isnan(kth):  # few scores, or fewer than k that are numbers
        return np.argsort(-s, kind="stable")[:k]
    above = np.flatnonzero(s > kth)
    sel = np.union1d(above, np.flatnonzero(s == kth)[:k - len(above)])  # sorted: ties keep position order
    return sel[np.argsort(-s[sel], kind="stable")]
