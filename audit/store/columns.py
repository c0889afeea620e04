"""Arrow columns built from buffers rather than converted from Python values.

Why: pyarrow's converter from Python values (pa.array, pa.table of lists, pa.scalar) imports pandas on first use,
about 0.2 s of a one-file command's 0.6 s (docs/performance.md). These build the same arrays from numpy buffers, for
the few column types the archive and the evidence sidecar use.
"""

from __future__ import annotations

from typing import Any

import numpy as np

_NUMBERS = {"double": np.float64, "float": np.float32, "int32": np.int32, "int64": np.int64}
_OFFSETS_MAX = 2**31 - 1  # a string or binary column's data must fit its 32-bit offsets


def column(values: list[Any], type):
    """An Arrow array of `type` (string, binary, fixed-size binary, float64/32, int32/64, bool, or a list of one of
    these) holding values, None as null."""
    import pyarrow as pa

    n = len(values)
    present = np.fromiter((v is not None for v in values), bool, n)
    valid = None if present.all() else pa.py_buffer(np.packbits(present, bitorder="little"))
    if pa.types.is_string(type) or pa.types.is_binary(type):
        parts = [b"" if v is None else v.encode() if isinstance(v, str) else bytes(v) for v in values]
        offsets = _offsets([len(p) for p in parts])
        if offsets[-1] > _OFFSETS_MAX:
            raise ValueError(f"{offsets[-1]} bytes do not fit one {type} column")
        return pa.Array.from_buffers(type, n, [valid, pa.py_buffer(offsets.astype(np.int32)),
                                               pa.py_buffer(b"".join(parts))])
    if pa.types.is_fixed_size_binary(type):
        blank = bytes(type.byte_width)
        return pa.Array.from_buffers(type, n, [valid, pa.py_buffer(b"".join(blank if v is None else bytes(v)
                                                                           for v in values))])
    if str(type) in _NUMBERS:
        data = np.array([0 if v is None else v for v in values], _NUMBERS[str(type)])
        return pa.Array.from_buffers(type, n, [valid, pa.py_buffer(data)])
    if pa.types.is_boolean(type):
        data = np.packbits(np.array([bool(v) for v in values], bool), bitorder="little")
        return pa.Array.from_buffers(type, n, [valid, pa.py_buffer(data)])
    if pa.types.is_list(type):
        items = [() if v is None else list(v) for v in values]
        child = column([x for item in items for x in item], type.value_type)
        offsets = _offsets([len(item) for item in items]).astype(np.int32)
        return pa.Array.from_buffers(type, n, [valid, pa.py_buffer(offsets)], children=[child])
    raise TypeError(f"no buffer builder for {type}")


def numbers(values: np.ndarray):
    """An Arrow array of a 1-d numeric or boolean numpy array (e.g. the row numbers of a take, a filter's mask)."""
    import pyarrow as pa

    values = np.ascontiguousarray(values)
    if values.dtype == bool:
        return pa.Array.from_buffers(pa.bool_(), len(values), [None, pa.py_buffer(np.packbits(values, bitorder="little"))])
    values = values.astype(np.int64) if values.dtype.kind in "iu" else values.astype(np.float64)
    return pa.Array.from_buffers(pa.int64() if values.dtype.kind == "i" else pa.float64(), len(values),
                                 [None, pa.py_buffer(values)])


def _offsets(sizes: list[int]) -> np.ndarray:
    out = np.zeros(len(sizes) + 1, np.int64)
    np.cumsum(sizes, out=out[1:])
    return out
