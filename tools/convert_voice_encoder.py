"""Convert resemblyzer's GE2E speaker encoder (pretrained.pt) to ONNX without torch.

Usage:
    python tools/convert_voice_encoder.py PATH/TO/resemblyzer/pretrained.pt [--out audit/models/voice_encoder.onnx]

`pretrained.pt` (PyPI package resemblyzer==0.1.4, Apache-2.0) is in torch's legacy, non-zip serialisation:
five pickles in a row (magic number, protocol version, system info, the checkpoint, the list of storage keys)
followed by the raw bytes of every storage in that key order. The checkpoint is read with a restricted
unpickler that only knows the three globals the file uses; tensors become numpy views onto the storages.
This is a developer tool: the package itself never unpickles anything.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import pickle
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
N_MELS = 40
HIDDEN = 256
EMBED = 256
LAYERS = 3
OPSET = 17
IR_VERSION = 8  # readable by onnxruntime >= 1.14
# torch packs LSTM gates as (input, forget, cell, output); ONNX wants (input, output, forget, cell).
TORCH_TO_ONNX_GATES = (0, 3, 1, 2)

STORAGE_DTYPES = {"FloatStorage": np.float32}


@dataclass
class _Storage:
    """A storage announced in the pickle; its bytes follow the pickles in the file."""

    key: str
    dtype: type
    numel: int
    data: np.ndarray | None = None


@dataclass
class _LazyTensor:
    """A tensor whose storage has not been read yet."""

    storage: _Storage
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]

    def array(self) -> np.ndarray:
        """Return a copy of the tensor as a contiguous numpy array."""
        data = self.storage.data
        if data is None:
            raise ValueError(f"storage {self.storage.key} was never read")
        item = data.itemsize
        last = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride, strict=True))
        if all(self.size) and last >= len(data):
            raise ValueError(f"tensor overruns storage {self.storage.key}")
        view = np.lib.stride_tricks.as_strided(
            data[self.offset :], shape=self.size, strides=tuple(s * item for s in self.stride)
        )
        return np.ascontiguousarray(view)


def _rebuild_tensor_v2(storage, offset, size, stride, requires_grad=False, hooks=None, metadata=None):
    """Stand-in for torch._utils._rebuild_tensor_v2."""
    return _LazyTensor(storage, int(offset), tuple(size), tuple(stride))


class _StorageType:
    """Stand-in for torch.FloatStorage and friends: only carries the dtype."""

    def __init__(self, name: str):
        self.dtype = STORAGE_DTYPES[name]


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals a legacy torch checkpoint needs."""

    def __init__(self, f: BinaryIO):
        super().__init__(f)
        self.storages: dict[str, _Storage] = {}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor_v2
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name)
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed")

    def persistent_load(self, pid: Any) -> _Storage:
        # ('storage', storage_type, key, location, numel, view_metadata)
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
        _, stype, key, _location, numel, view_metadata = pid
        if view_metadata is not None:
            raise pickle.UnpicklingError("storage views are not supported")
        if not isinstance(stype, _StorageType):
            raise pickle.UnpicklingError(f"unsupported storage type {stype!r}")
        if key not in self.storages:
            self.storages[key] = _Storage(key, stype.dtype, int(numel))
        return self.storages[key]


def _load_small(f: BinaryIO) -> Any:
    """Unpickle one of the small header pickles (numbers, strings, containers) with the same allow-list."""
    return _RestrictedUnpickler(f).load()


def load_legacy_checkpoint(path: Path) -> dict[str, Any]:
    """Read a legacy (non-zip) torch checkpoint into nested dicts of numpy arrays."""
    with open(path, "rb") as f:
        if _load_small(f) != LEGACY_MAGIC:
            raise ValueError(f"{path} is not a legacy torch checkpoint")
        _protocol = _load_small(f)
        sys_info = _load_small(f)
        if not sys_info.get("little_endian", False):
            raise ValueError("big-endian checkpoints are not supported")
        unpickler = _RestrictedUnpickler(f)
        checkpoint = unpickler.load()
        keys = _load_small(f)
        for key in keys:
            storage = unpickler.storages[key]
            item = np.dtype(storage.dtype).itemsize
            numel = int(np.frombuffer(f.read(8), "<i8")[0])
            if numel != storage.numel:
                raise ValueError(f"storage {key}: header says {numel} elements, pickle says {storage.numel}")
            raw = f.read(numel * item)
            if len(raw) != numel * item:
                raise ValueError(f"storage {key} is truncated")
            storage.data = np.frombuffer(raw, dtype=np.dtype(storage.dtype).newbyteorder("<"))
        if f.read(1):
            raise ValueError("unexpected bytes after the last storage")
    return _materialise(checkpoint)


def _materialise(obj: Any) -> Any:
    """Replace lazy tensors by numpy arrays throughout a nested structure."""
    if isinstance(obj, _LazyTensor):
        return obj.array()
    if isinstance(obj, dict):
        return {k: _materialise(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_materialise(v) for v in obj)
    return obj


def _reorder_gates(w: np.ndarray) -> np.ndarray:
    """Reorder the four gate blocks along axis 0 from torch's order to ONNX's."""
    return np.concatenate([w[g * HIDDEN : (g + 1) * HIDDEN] for g in TORCH_TO_ONNX_GATES], axis=0)


def build_onnx(state: dict[str, np.ndarray]) -> onnx.ModelProto:
    """Build the ONNX graph: 3-layer LSTM, linear, ReLU, L2 normalisation."""
    inits: list[TensorProto] = []
    nodes: list[onnx.NodeProto] = []

    def init(name: str, arr: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(arr, dtype=np.float32), name))
        return name

    inits.append(numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"))
    inits.append(numpy_helper.from_array(np.array([0], dtype=np.int64), "axis0"))
    # ONNX LSTM is time-major; onnxruntime does not implement layout=1.
    nodes.append(helper.make_node("Transpose", ["mels"], ["x0"], perm=[1, 0, 2], name="to_time_major"))
    x = "x0"
    for layer in range(LAYERS):
        w = _reorder_gates(state[f"lstm.weight_ih_l{layer}"])[None]
        r = _reorder_gates(state[f"lstm.weight_hh_l{layer}"])[None]
        b = np.concatenate(
            [_reorder_gates(state[f"lstm.bias_ih_l{layer}"]), _reorder_gates(state[f"lstm.bias_hh_l{layer}"])]
        )[None]
        last = layer == LAYERS - 1
        y, y_h = ("", "h_last") if last else (f"y{layer}", "")
        nodes.append(
            helper.make_node(
                "LSTM",
                [x, init(f"W{layer}", w), init(f"R{layer}", r), init(f"B{layer}", b)],
                [y, y_h] if last else [y],
                hidden_size=HIDDEN,
                direction="forward",
                name=f"lstm{layer}",
            )
        )
        if not last:
            # Y is [seq, num_directions=1, batch, hidden]; drop the direction axis.
            x = f"x{layer + 1}"
            nodes.append(helper.make_node("Squeeze", [y, "axis1"], [x], name=f"squeeze{layer}"))
    nodes += [
        helper.make_node("Squeeze", ["h_last", "axis0"], ["hidden"], name="squeeze_h"),
        helper.make_node(
            "Gemm",
            ["hidden", init("linear_w", state["linear.weight"]), init("linear_b", state["linear.bias"])],
            ["linear"],
            transB=1,
            name="linear",
        ),
        helper.make_node("Relu", ["linear"], ["relu"], name="relu"),
        helper.make_node("LpNormalization", ["relu"], ["embedding"], axis=1, p=2, name="l2norm"),
    ]
    graph = helper.make_graph(
        nodes,
        "ge2e_voice_encoder",
        [helper.make_tensor_value_info("mels", TensorProto.FLOAT, ["batch", "frames", N_MELS])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", EMBED])],
        initializer=inits,
    )
    model = helper.make_model(
        graph,
        producer_name="likeness-audit tools/convert_voice_encoder.py",
        opset_imports=[helper.make_opsetid("", OPSET)],
        doc_string="GE2E speaker encoder from resemblyzer 0.1.4 (Apache-2.0). Input: mel power frames "
        "[batch, frames, 40] (16 kHz, 25 ms window, 10 ms hop, Slaney mel). Output: L2-normalised [batch, 256].",
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    return model


def sha256(path: Path) -> str:
    """Return the SHA-256 hex digest of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def main(argv: list[str] | None = None) -> int:
    """Convert the checkpoint and print the SHA-256 of input and output."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path, help="resemblyzer/pretrained.pt")
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parents[1] / "audit" / "models" / "voice_encoder.onnx"
    )
    args = parser.parse_args(argv)
    checkpoint = load_legacy_checkpoint(args.checkpoint)
    state = checkpoint["model_state"]
    expected = {f"lstm.{p}_l{i}" for i in range(LAYERS) for p in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
    expected |= {"linear.weight", "linear.bias"}
    missing = expected - set(state)
    if missing:
        print(f"missing tensors: {sorted(missing)}", file=sys.stderr)
        return 1
    model = build_onnx(state)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(model.SerializeToString())
    print(f"tensors in state dict: {len(state)}")
    print(f"pretrained.pt      sha256 {sha256(args.checkpoint)}")
    print(f"{args.out.name:<18} sha256 {sha256(args.out)} ({args.out.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
