"""The exported LSTM step's ONNX graph after ``ald_jax.deploy.graph.simplify`` (its function is
the parity tests'): no zero-noise ``Add``, the state reset a ``Mul``, the gates two chained
``Gemm``\\ s; and at batch 1 ONNX Runtime folds the symbolic batch's shape plumbing away."""

from __future__ import annotations

import numpy as np

from tests.export.helpers import random_params, require_export_extra

require_export_extra()

import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
from onnx import helper, numpy_helper  # noqa: E402

from ald_jax.deploy.exporter import export_network  # noqa: E402
from ald_jax.deploy.graph import simplify  # noqa: E402
from ald_jax.deploy.policy import session_options  # noqa: E402
from ald_jax.networks import LSTMNetwork  # noqa: E402

OBS = (5, 3, 3)


def _lstm_export(tmp_path) -> onnx.ModelProto:
    network = LSTMNetwork(num_actions=4, hidden_size=8, torso_sizes=(8,))
    export_network(network, random_params(network, OBS), OBS, "uint8", str(tmp_path))
    return onnx.load(str(tmp_path / "actor.onnx"))


def test_the_lstm_step_is_simplified(tmp_path):
    model = _lstm_export(tmp_path)
    nodes = model.graph.node
    producer = {out: node for node in nodes for out in node.output}
    assert not [n for n in nodes if n.op_type == "Where"], "the state reset should be a Mul"
    resets = [n for n in nodes if n.op_type == "Mul" and {"state_c", "state_h"} & set(n.input)]
    assert len(resets) == 2
    gemms = [n for n in nodes if n.op_type == "Gemm"]
    chained = [n for n in gemms if len(n.input) > 2 and producer.get(n.input[2]) in gemms]
    assert len(chained) == 1, "x W_x + b and h W_h should be two chained Gemms"
    assert producer["logits"].op_type == "Gemm" and producer["action"].op_type == "Cast"
    assert producer[producer["action"].input[0]].input[0] == "logits"  # argmax(logits), no + 0


def test_at_batch_1_onnx_runtime_folds_the_shape_plumbing(tmp_path):
    _lstm_export(tmp_path)
    options = session_options(1, batch=1)
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(str(tmp_path / "actor.onnx"), options, providers=["CPUExecutionProvider"])
    ops = [n.op_type for n in onnx.load(str(tmp_path / "optimized.onnx")).graph.node]
    assert not {"Shape", "Gather", "Concat", "Expand"} & set(ops), ops
    assert len(ops) <= 24, ops  # 49 converted, 35 simplified


def test_a_where_on_a_computed_value_is_left_alone():
    """Only the reset of a state input becomes a Mul (a computed value may be inf or NaN)."""
    inputs = [
        helper.make_tensor_value_info("c", onnx.TensorProto.BOOL, [2]),
        helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2]),
    ]
    nodes = [
        helper.make_node("Exp", ["x"], ["e"]),
        helper.make_node("Where", ["c", "e", "zero"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        inputs,
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2])],
        [numpy_helper.from_array(np.zeros((2,), np.float32), "zero")],
        value_info=[helper.make_tensor_value_info("e", onnx.TensorProto.FLOAT, [2])],
    )
    model = simplify(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    assert [n.op_type for n in model.graph.node] == ["Exp", "Where"]
