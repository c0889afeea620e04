"""PReLU as Mul + Max in an ONNX graph, read and written as protobuf wire data (no `onnx` import: 0.9 s).

Why: onnxruntime's CPU PRelu is a slow elementwise kernel that also takes each tensor out of the blocked layout its
convolutions use and back. ArcFace w600k_mbf has 34 of them after its 49 convolutions; they were 40 % of its time
(19 ms a face on one thread, 12 ms rewritten; benchmarks/recognizer_graph.py). For a channel slope a <= 1,
PReLU(x) = max(x, a * x) exactly: for x >= 0, a * x <= x; for x < 0, a * x >= x. A slope above 1, or one that is
not a float initializer, leaves its node as it was.

Only the fields touched are decoded: a ModelProto's graph (field 7), a GraphProto's nodes (1) and initializers (5),
a NodeProto's inputs (1), outputs (2), name (3) and op type (4), a TensorProto's type (2), name (8) and data (4, 9).
Everything else is copied byte for byte.
"""

from __future__ import annotations

import numpy as np

MIN_OPSET = 8  # Max with broadcasting


def prelu_as_max(model: bytes) -> bytes | None:
    """The model with every PReLU whose slopes are all <= 1 replaced by Mul + Max; None when none is, or when the
    bytes are not a model this understands (the caller then loads the original)."""
    try:
        return _rewrite(memoryview(model))  # views, not copies, of a 13 MB model's fields
    except (ValueError, IndexError, UnicodeDecodeError):
        return None


def _rewrite(model: memoryview) -> bytes | None:
    fields = list(_fields(model))
    if _opset(fields) < MIN_OPSET:
        return None
    graphs = [f for f in fields if f[0] == 7 and f[1] == 2]
    if len(graphs) != 1:
        return None
    graph = graphs[0][2]
    parts = list(_fields(graph))
    slopes = {}
    for num, wire, value, _ in parts:
        if num == 5 and wire == 2:
            name, data = _float_tensor(value)
            if name is not None and data is not None:
                slopes[name] = data
    changed = 0
    chunks: list = []  # pieces of the new graph, joined once: the 13 MB of weights are copied a single time
    for num, wire, value, raw in parts:
        node = _node(value) if num == 1 and wire == 2 else None
        if node is None or node["op_type"] != "PRelu" or len(node["input"]) != 2 or len(node["output"]) != 1:
            chunks.append(raw)
            continue
        (x, a), y = node["input"], node["output"][0]
        slope = slopes.get(a)
        if slope is None or not len(slope) or not np.all(slope <= 1.0):
            chunks.append(raw)
            continue
        ax = f"{y}/prelu_ax"
        chunks.append(_field(1, _encode_node([x, a], [ax], f"{node['name']}/mul", "Mul")))
        chunks.append(_field(1, _encode_node([x, ax], [y], f"{node['name']}/max", "Max")))
        changed += 1
    if not changed:
        return None
    size = sum(len(c) for c in chunks)
    out: list = []
    for num, wire, _, raw in fields:
        if num == 7 and wire == 2:
            out += [_encode_varint(7 << 3 | 2), _encode_varint(size), *chunks]
        else:
            out.append(raw)
    return b"".join(out)


def _opset(fields) -> int:
    """The default-domain opset of a model (field 8: OperatorSetIdProto, domain 1, version 2)."""
    version = 0
    for num, wire, value, _ in fields:
        if num == 8 and wire == 2:
            entry = {n: v for n, _, v, _ in _fields(value)}
            if entry.get(1, b"") in (b"", b"ai.onnx"):
                version = max(version, int(entry.get(2, 0)))
    return version


def _node(buf: bytes) -> dict | None:
    node = {"input": [], "output": [], "name": "", "op_type": "", "domain": ""}
    for num, wire, value, _ in _fields(buf):
        if wire != 2:
            continue
        if num == 1:
            node["input"].append(bytes(value).decode())
        elif num == 2:
            node["output"].append(bytes(value).decode())
        elif num == 3:
            node["name"] = bytes(value).decode()
        elif num == 4:
            node["op_type"] = bytes(value).decode()
        elif num == 7:
            node["domain"] = bytes(value).decode()
        elif num == 5:
            return None  # PRelu has no attributes: a node with some is left alone
    return node if node["domain"] in ("", "ai.onnx") else None


def _float_tensor(buf: bytes) -> tuple[str | None, np.ndarray | None]:
    """(name, values) of a float32 TensorProto stored inline; (name, None) otherwise."""
    name, dtype, raw, floats = None, None, None, []
    for num, wire, value, _ in _fields(buf):
        if num == 8 and wire == 2:
            name = bytes(value).decode()
        elif num == 2 and wire == 0:
            dtype = value
        elif num == 9 and wire == 2:
            raw = value
        elif num == 4 and wire == 2:  # packed floats
            floats.append(np.frombuffer(value, "<f4"))
        elif num == 4 and wire == 5:
            floats.append(np.frombuffer(value, "<f4"))
        elif num == 14 and wire == 0 and value:  # data kept in an external file
            return name, None
    if dtype != 1:
        return name, None
    if raw is not None:
        return name, np.frombuffer(raw, "<f4")
    return name, np.concatenate(floats) if floats else None


def _encode_node(inputs: list[str], outputs: list[str], name: str, op_type: str) -> bytes:
    out = bytearray()
    for s in inputs:
        out += _field(1, s.encode())
    for s in outputs:
        out += _field(2, s.encode())
    out += _field(3, name.encode())
    out += _field(4, op_type.encode())
    return bytes(out)


def _fields(buf: bytes):
    """(field number, wire type, value, the field's own bytes) of a protobuf message, in order."""
    i, n = 0, len(buf)
    while i < n:
        start = i
        key, i = _varint(buf, i)
        num, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 1:
            value, i = buf[i:i + 8], i + 8
        elif wire == 2:
            size, i = _varint(buf, i)
            value, i = buf[i:i + size], i + size
        elif wire == 5:
            value, i = buf[i:i + 4], i + 4
        else:
            raise ValueError(f"protobuf wire type {wire} is not read here")
        if i > n:
            raise ValueError("truncated protobuf")
        yield num, wire, value, buf[start:i]


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, i
        shift += 7
        if shift > 63:
            raise ValueError("bad varint")


def _field(num: int, value: bytes) -> bytes:
    """A length-delimited field."""
    return _encode_varint(num << 3 | 2) + _encode_varint(len(value)) + value


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        if value:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)
