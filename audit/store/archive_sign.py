"""The archive's compact first-stage code: 1024 sign bits per face (128 bytes, a quarter of the 8-bit code), from
two fixed pseudo-random rotations of the embedding (three rounds of Hadamard transform and random signs each, the
signs drawn from SHA-256 so every version and machine derives the same rotation).

Two steps, both on these bits only. Two unit vectors at angle a differ in each sign bit with probability a/pi
(random-hyperplane hashing), so the Hamming distance estimates the angle: FAISS keeps the rows whose distance is
within SIGMAS binomial standard deviations of what a row exactly at the threshold shows. Those rows are then
scored asymmetrically (the rotated template's components summed with the row's signs, through a table per code
byte), which separates far better, and kept when that score is above what a row at the threshold would score
less SIGMAS standard deviations (its mean and spread follow from the rotated template). Only what is left is
read further and scored exactly. Neither step is a bound: benchmarks/rematch.py and tests/test_archive_search.py
count the rows planted just above the threshold that get through.
"""

from __future__ import annotations

import hashlib
import math
from functools import lru_cache

import numpy as np

VERSION = "hd3x2"  # the partition metadata's "sign" value: partitions without it are searched on their 8-bit codes
ROTATIONS = 2  # bits = ROTATIONS * the embedding size rounded up to a power of two
SIGMAS = 4.0  # a row at the threshold passes unless its distance is this far above its expected value
FWHT_ROWS = 256  # from this many rows, one product with the rotation matrix beats the transforms (~6x at 3,000)


def _signs(size: int, tag: str) -> np.ndarray:
    """size pseudo-random +-1 values, the same everywhere (SHA-256 in counter mode)."""
    out = b""
    counter = 0
    while len(out) * 8 < size:
        out += hashlib.sha256(f"likeness-audit sign {tag} {counter}".encode()).digest()
        counter += 1
    bits = np.unpackbits(np.frombuffer(out, np.uint8))[:size]
    return np.where(bits == 1, 1.0, -1.0).astype(np.float32)


def _hadamard(n: int) -> np.ndarray:
    h = np.ones((1, 1), np.float32)
    while len(h) < n:
        h = np.block([[h, h], [h, -h]])
    return h / np.sqrt(n, dtype=np.float32)


@lru_cache(maxsize=4)
def rotation(dim: int) -> np.ndarray:
    """The [bits, size] matrix whose output signs are the code (size: dim rounded up to a power of two)."""
    size = 1 << max(0, (dim - 1).bit_length())
    h = _hadamard(size)
    blocks = []
    for r in range(ROTATIONS):
        m = np.eye(size, dtype=np.float32)
        for k in range(3):
            m = h @ (_signs(size, f"{size} {r} {k}")[:, None] * m)
        blocks.append(m)
    return np.concatenate(blocks)


def width(dim: int) -> int:
    """Bytes of sign code per row for embeddings of this size."""
    return ROTATIONS * (1 << max(0, (dim - 1).bit_length())) // 8


def encode(vectors: np.ndarray) -> np.ndarray:
    """uint8 [n, bits/8]: the sign codes of unit vectors."""
    return np.packbits(rotate(vectors) > 0, axis=1)


def rotate(vectors: np.ndarray) -> np.ndarray:
    """float32 [n, bits]: the vectors through both rotations (the code is the signs)."""
    x = np.asarray(vectors, np.float32)
    size = 1 << max(0, (x.shape[1] - 1).bit_length())
    if size > x.shape[1]:
        x = np.pad(x, ((0, 0), (0, size - x.shape[1])))
    if len(x) >= FWHT_ROWS:
        return x @ rotation(size).T
    # Few rows (a one-photo scan, a person's templates): the rotations applied as fast Walsh-Hadamard transforms,
    # additions only; building the rotation matrix costs ~25 ms a command, far more where BLAS threads wait on a
    # busy machine. The same transform as rotation(), to float rounding.
    out = []
    for r in range(ROTATIONS):
        y = x
        for k in range(3):
            y = _fwht(y * _signs(size, f"{size} {r} {k}"))
        out.append(y)
    return np.concatenate(out, axis=1)


def _fwht(x: np.ndarray) -> np.ndarray:
    """Rows times the normalised Hadamard matrix of their (power of two) length, as _hadamard builds it."""
    n, size = x.shape
    h = 1
    while h < size:
        pairs = x.reshape(n, size // (2 * h), 2, h)
        x = np.stack((pairs[:, :, 0] + pairs[:, :, 1], pairs[:, :, 0] - pairs[:, :, 1]), axis=2)
        h *= 2
    return x.reshape(n, size) * np.float32(1 / np.sqrt(size))


def radius(threshold: float, bits: int) -> int:
    """The largest Hamming distance a row at the threshold is allowed (its expected distance + SIGMAS sd)."""
    p = math.acos(max(-1.0, min(1.0, threshold))) / math.pi
    return int(math.ceil(bits * p + SIGMAS * math.sqrt(bits * p * (1 - p))))


def usable(table) -> bool:
    """Whether a partition carries sign codes of this version (older partitions: the 8-bit scan only)."""
    meta = table.schema.metadata or {}
    return meta.get(b"sign") == VERSION.encode() and "sign" in table.column_names


def sign_codes(table) -> np.ndarray:
    """The rows' sign codes as uint8 [n, bytes] (a view on the table's buffer)."""
    col = table.column("sign").combine_chunks()
    width = col.type.byte_width
    return np.frombuffer(col.buffers()[1], np.uint8, len(col) * width, col.offset * width).reshape(len(col), width)


def _table(u: np.ndarray) -> np.ndarray:
    """[bytes, 256]: what each value of each code byte adds to the asymmetric score of rotated template u."""
    signs = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1).astype(np.float32) * 2 - 1
    return u.reshape(-1, 8) @ signs.T


def _floor(u: np.ndarray, threshold: float, dim: int) -> float:
    """The asymmetric score a row exactly at the threshold reaches on average, less SIGMAS standard deviations
    (each rotated component of such a row: threshold * u_i plus noise of variance (1 - threshold^2)(1 - u_i^2) /
    (dim - 1); the bits taken as independent, which overstates the spread of orthogonal ones)."""
    t = max(-0.999999, min(0.999999, threshold))
    spread = np.sqrt((1 - t * t) * np.clip(1 - u * u, 1e-12, None) / (dim - 1))
    p = np.vectorize(math.erf)(t * u / (spread * math.sqrt(2)))  # E[sign] = 2 Phi(a) - 1 = erf(a / sqrt 2)
    return float((u * p).sum() - SIGMAS * math.sqrt(float((u * u * (1 - p * p)).sum())))


class Sifter:
    """The sign codes' two steps for a person's templates at a threshold, prepared once per search: the templates'
    codes, their rotated vectors, score tables and floors."""

    def __init__(self, templates: np.ndarray, threshold: float):
        q = np.asarray(templates, np.float32)
        self.dim = q.shape[1]
        self.codes = np.ascontiguousarray(encode(q))
        rotated = rotate(q)
        self.tables = [_table(u) for u in rotated]
        self.floors = [_floor(u, threshold, self.dim) for u in rotated]
        self.radius = radius(threshold, self.codes.shape[1] * 8)

    def prefilter(self, code: np.ndarray) -> np.ndarray:
        """Row numbers whose sign code is within the radius of some template's (all templates in one FAISS
        call)."""
        import faiss

        if not len(code):
            return np.zeros(0, np.int64)
        code, q = np.ascontiguousarray(code), self.codes
        res = faiss.RangeSearchResult(len(q))
        # faiss keeps distances strictly below the radius it is given
        faiss.hamming_range_search(faiss.swig_ptr(q), faiss.swig_ptr(code), len(q), len(code), self.radius + 1,
                                   code.shape[1], res)
        lims = faiss.rev_swig_ptr(res.lims, len(q) + 1).copy()
        rows = faiss.rev_swig_ptr(res.labels, int(lims[-1])).copy() if lims[-1] else np.zeros(0, np.int64)
        return np.unique(rows.astype(np.int64))

    def sift(self, code: np.ndarray) -> np.ndarray:
        """Row numbers that pass both steps for some template (the Hamming radius, then the asymmetric score)."""
        rows = self.prefilter(code)
        if not len(rows):
            return rows
        picked = code[rows]
        keep = np.zeros(len(rows), bool)
        for table, floor in zip(self.tables, self.floors):
            keep |= table[np.arange(table.shape[0]), picked].sum(axis=1) >= floor
        return rows[keep]


def sift(code: np.ndarray, templates: np.ndarray, threshold: float) -> np.ndarray:
    """Row numbers that pass both steps for some template (one-off; a search prepares a Sifter once)."""
    return Sifter(templates, threshold).sift(code)


def prefilter(code: np.ndarray, templates: np.ndarray, threshold: float) -> np.ndarray:
    """Row numbers whose sign code is within the Hamming radius of some template's (one-off)."""
    return Sifter(templates, threshold).prefilter(code) if len(templates) else np.zeros(0, np.int64)
