"""PReLU as Mul + Max (audit/models/onnxgraph.py): the recognizer's embeddings stay the same bit for bit, and a graph
that cannot be rewritten safely loads as it is."""

from __future__ import annotations

import numpy as np
import pytest

from audit import config
from audit.models import onnxgraph
from audit.models.face import find_pack_files
from audit.models.onnxface import Recognizer, session


@pytest.fixture(scope="module")
def arcface():
    return find_pack_files(config.vectron_dir())[1]


def _ops(model: bytes) -> list[str]:
    graph = next(v for n, w, v, _ in onnxgraph._fields(memoryview(model)) if n == 7)
    nodes = [v for n, w, v, _ in onnxgraph._fields(graph) if n == 1]
    return [bytes(next(v for n, w, v, _ in onnxgraph._fields(node) if n == 4)).decode() for node in nodes]


def test_the_shipped_recognizer_gives_the_same_embeddings_rewritten(arcface):
    original = arcface.read_bytes()
    rewritten = onnxgraph.prelu_as_max(original)
    assert rewritten is not None
    before, after = _ops(original), _ops(rewritten)
    assert before.count("PRelu") == 34 and "PRelu" not in after
    assert after.count("Mul") == after.count("Max") == 34 and len(after) == len(before) + 34
    rng = np.random.default_rng(0)
    faces = rng.uniform(-1, 1, (16, 3, 112, 112)).astype(np.float32)
    plain, ours = session(arcface, 1), Recognizer(arcface).session
    name = plain.get_inputs()[0].name
    for x in np.split(faces, 4):
        assert np.array_equal(plain.run(None, {name: x})[0], ours.run(None, {name: x})[0])


def test_a_slope_above_one_or_bytes_it_cannot_read_are_left_alone(arcface):
    assert onnxgraph.prelu_as_max(b"not a model at all \xff\xff\xff") is None
    assert onnxgraph.prelu_as_max(arcface.read_bytes()[:5000]) is None  # cut short
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    def model(slope):
        node = helper.make_node("PRelu", ["x", "a"], ["y"], name="p")
        graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 2, 2])],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 2, 2])],
                                  [numpy_helper.from_array(np.array(slope, np.float32).reshape(2, 1, 1), "a")])
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]).SerializeToString()

    assert onnxgraph.prelu_as_max(model([0.5, 1.5])) is None  # max(x, 1.5x) is not PReLU for x > 0
    kept = onnxgraph.prelu_as_max(model([-0.8, 1.0]))
    assert _ops(kept) == ["Mul", "Max"]
    onnx.checker.check_model(onnx.load_from_string(kept))
    x = np.array([-2, -0.5, 0, 3, -1, 2, -0.25, 1e-30], np.float32).reshape(1, 2, 2, 2)
    a, b = session(None, 1, model([-0.8, 1.0])), session(None, 1, kept)
    assert np.array_equal(a.run(None, {"x": x})[0], b.run(None, {"x": x})[0])
