"""Graph passes keep results bit-exact with TFLite Micro while removing work."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.frontends.tflite import read_tflite
from edgekit.frontends.tflite_writer import TFLiteBuilder
from edgekit.pipeline import compile_graph
from edgekit.reference.tflm import run_tflm
from edgekit.runners.host import HostModel
from edgekit.verify import compare, random_inputs


def _conv_then(act_op: str, same_quant: bool) -> bytes:
    rng = np.random.default_rng(5)
    b = TFLiteBuilder()
    x = b.tensor("x", (1, 6, 6, 3), np.int8, scale=0.05, zero_point=3)
    w = b.const(
        "w",
        rng.integers(-127, 128, (4, 3, 3, 3), dtype=np.int8),
        scale=np.array([0.01, 0.02, 0.015, 0.03], np.float32),
        zero_point=np.zeros(4, np.int64),
        quantized_dimension=0,
    )
    bias = b.const(
        "b",
        rng.integers(-500, 500, 4, dtype=np.int32),
        scale=np.array([0.0005, 0.001, 0.00075, 0.0015], np.float32),
        zero_point=np.zeros(4, np.int64),
    )
    mid = b.tensor("mid", (1, 6, 6, 4), np.int8, scale=0.04, zero_point=-5)
    y = b.tensor(
        "y",
        (1, 6, 6, 4),
        np.int8,
        scale=0.04 if same_quant else 0.03,
        zero_point=-5 if same_quant else -20,
    )
    b.op("CONV_2D", [x, w, bias], [mid], stride=1, padding="SAME")
    b.op(act_op, [mid], [y])
    b.inputs([x])
    b.outputs([y])
    return b.finish()


@pytest.mark.parametrize("act_op", ["RELU", "RELU6"])
@pytest.mark.parametrize("same_quant", [True, False])
def test_standalone_activation_fused_only_when_exact(act_op: str, same_quant: bool) -> None:
    model = _conv_then(act_op, same_quant)
    compiled = compile_graph(read_tflite(model, "m", "m"))
    kinds = [op.kind for op in compiled.graph.ops]
    assert kinds == (["conv2d"] if same_quant else ["conv2d", act_op.lower()])
    inputs = random_inputs(compiled.graph, 30, seed=2)
    ours = [HostModel(compiled).run(s) for s in inputs]
    result = compare(compiled, ours, run_tflm(model, inputs))
    assert result.ok, result.to_json()
