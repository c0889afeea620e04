"""Index contents against the registry: each vector an index holds must be the registry's vector of that id.

verify needs this beyond ids and checksums: a segment forged with the right ids (and its manifest's checksum
recomputed) but other vectors would pass those. Flat segments (the delta, a small base) are compared vector by
vector. An IVF base stores 8-bit codes, so the registry's vectors are encoded with the base's own quantizer and
compared list for list and code for code (through a keyed 64-bit fingerprint per code, so a million codes need not
be held at once); that is exact, not a tolerance. A fast-scan PQ base (pqbase.py) is checked the same way twice
over: its re-rank file's 8-bit codes against the registry's vectors encoded alike, code for code, and its PQ codes
against codes made afresh from that file with the base's own codebooks, byte for byte.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator

import numpy as np

from . import pqbase
from .. import files
from .segments import Segments, _ids_of

TOLERANCE = 1e-5  # float32 vectors written and read back are identical; this only absorbs nothing-but-rounding


def _flat_parts(seg: Segments) -> tuple[np.ndarray, np.ndarray]:
    """(ids, vectors) of the flat segments: the delta and a Flat base."""
    import faiss

    ids, vecs = [], []
    for part in (seg.delta, seg.base if seg.man.kind == "flat" else None):
        if part is not None and part.ntotal:
            ids.append(_ids_of(part))
            vecs.append(faiss.downcast_index(part.index).reconstruct_n(0, part.ntotal))
    if not ids:
        return np.zeros(0, np.int64), np.zeros((0, seg.dim), np.float32)
    return np.concatenate(ids), np.concatenate(vecs)


class _Fingerprint:
    """Keyed 64-bit fingerprints of IVF codes (a fresh random key per check: collisions cannot be aimed at)."""

    def __init__(self, code_size: int):
        self.words = -(-code_size // 8)
        self.key = np.frombuffer(os.urandom(8 * self.words), np.uint64) | np.uint64(1)

    def __call__(self, codes: np.ndarray) -> np.ndarray:
        padded = np.zeros((len(codes), self.words * 8), np.uint8)
        padded[:, :codes.shape[1]] = codes
        with np.errstate(over="ignore"):
            return (padded.view(np.uint64) * self.key).sum(axis=1, dtype=np.uint64)


def _ivf_codes(seg: Segments, fp: _Fingerprint) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ids, list numbers, code fingerprints) of everything an IVF base stores."""
    import faiss

    ivf = faiss.extract_index_ivf(seg.base)
    lists, size = ivf.invlists, ivf.code_size
    ids, nos, fps = [], [], []
    for no in range(ivf.nlist):
        m = lists.list_size(no)
        if m:
            ids.append(faiss.rev_swig_ptr(lists.get_ids(no), m).copy())
            fps.append(fp(faiss.rev_swig_ptr(lists.get_codes(no), m * size).reshape(m, size)))
            nos.append(np.full(m, no, np.int64))
    if not ids:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.uint64)
    return np.concatenate(ids).astype(np.int64), np.concatenate(nos), np.concatenate(fps)


def _pq_codes_differ(seg: Segments) -> list[int]:
    """Ids at the positions whose PQ codes differ from those the base's codebooks give the re-rank file's vectors."""
    base, rerank = seg.base, seg.rerank
    ids = pqbase.rerank_ids(rerank)
    if base.ntotal != rerank.ntotal:
        return ids.tolist()
    fresh = pqbase.refill(base, rerank)  # held: code_bytes is a view into it
    have, want = pqbase.code_bytes(base), pqbase.code_bytes(fresh)
    block = base.M2 * base.bbs // 2  # fast-scan packs the codes of bbs vectors together
    bad = np.flatnonzero((have.reshape(-1, block) != want.reshape(-1, block)).any(axis=1))
    return [int(i) for b in bad for i in ids[b * base.bbs:(b + 1) * base.bbs]]


def _lookup(have: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mask of ids present in have, their positions in have's argsort order); have sorted beforehand."""
    pos = np.clip(np.searchsorted(have, ids), 0, max(len(have) - 1, 0))
    found = (have[pos] == ids) if len(have) else np.zeros(len(ids), bool)
    return found, pos


def differing(seg: Segments, source: Callable[[], Iterator[tuple[np.ndarray, np.ndarray]]]) -> list[int]:
    """Ids whose stored vector (or IVF list and code) differs from the registry's; source() yields its chunks."""
    if seg.man is None:
        return []
    fids, fvecs = _flat_parts(seg)
    order = np.argsort(fids)
    fids, fvecs = fids[order], fvecs[order]
    ivf = seg.base is not None and seg.man.kind == "ivf"
    pq = seg.rerank is not None and seg.man.kind == "pqfs"
    if pq:  # the re-rank file's 8-bit codes, by id
        sq = pqbase.codes_index(seg.rerank)
        pfp = _Fingerprint(sq.code_size)
        pids = pqbase.rerank_ids(seg.rerank)
        pfps = np.concatenate([pfp(pqbase.rerank_codes(seg.rerank)[s:s + 65_536])
                               for s in range(0, len(pids), 65_536)]) if len(pids) else np.zeros(0, np.uint64)
        order = np.argsort(pids)
        pids, pfps = pids[order], pfps[order]
    if ivf:
        import faiss

        index = faiss.extract_index_ivf(seg.base)
        fp = _Fingerprint(index.code_size)
        bids, bnos, bfps = _ivf_codes(seg, fp)
        order = np.argsort(bids)
        bids, bnos, bfps = bids[order], bnos[order], bfps[order]
        coarse = index.coarse_code_size()
    bad: list[int] = []
    for ids, vecs in source():
        vecs = np.ascontiguousarray(vecs, np.float32)
        found, pos = _lookup(fids, ids)
        if found.any():
            diff = np.abs(fvecs[pos[found]] - vecs[found]).max(axis=1) > TOLERANCE
            bad += ids[found][diff].tolist()
        if ivf:
            found, pos = _lookup(bids, ids)
            if found.any():
                enc = index.sa_encode(vecs[found])
                nos = np.zeros(len(enc), np.int64)
                for b in range(coarse):  # faiss writes the list number little-endian in the first bytes
                    nos |= enc[:, b].astype(np.int64) << (8 * b)
                diff = (nos != bnos[pos[found]]) | (fp(enc[:, coarse:]) != bfps[pos[found]])
                bad += ids[found][diff].tolist()
        if pq:
            found, pos = _lookup(pids, ids)
            if found.any():
                bad += ids[found][pfp(sq.sa_encode(vecs[found])) != pfps[pos[found]]].tolist()
    if pq:
        bad += _pq_codes_differ(seg)
    return sorted(set(bad))


def sha256_file(path) -> str:
    """SHA-256 of a store file, read in blocks."""
    h = hashlib.sha256()
    with files.open_read(path) as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def file_problems(seg: Segments) -> list[str]:
    """Problems with an index's files themselves: checksums of every segment (reads them all)."""
    problems = []
    man = seg.man
    for name, sha in ((man.base, man.base_sha256), (man.delta, man.delta_sha256), (man.rerank, man.rerank_sha256)):
        if name is None:
            continue
        path = seg.home / name
        if not path.exists():
            problems.append(f"index file {name} is missing")
        elif sha256_file(path) != sha:
            problems.append(f"index {name} does not match its manifest checksum")
    return problems


def problems(seg: Segments, source) -> list[str]:
    """verify's sentence for an index whose vectors differ from the registry's (empty when they agree)."""
    from ...errors import StoreError

    try:
        differ = differing(seg, source)
    except StoreError as exc:  # a registry vector that does not decrypt: seals.check_rows names the rows
        return [f"index {seg.manifest_path.name}: its vectors could not be compared with the registry's ({exc})"]
    if not differ:
        return []
    return [f"index {seg.manifest_path.name}: {len(differ)} vector(s) differ from the registry's (ids "
            f"{', '.join(map(str, differ[:5]))}{' ...' if len(differ) > 5 else ''}); `likeness-audit verify --repair` "
            "rebuilds the index"]
