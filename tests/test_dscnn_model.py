"""The built-in demo models: deterministic, quantised by the usual conventions, and alive."""

from __future__ import annotations

import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as schema

from edgekit.models.dscnn import build_dscnn_kws, build_tiny_mlp
from edgekit.reference.tflm import run_tflm

OP = schema.BuiltinOperator


@pytest.fixture(scope="module")
def dscnn() -> bytes:
    return build_dscnn_kws(0)


def _model(data: bytes) -> schema.ModelT:
    return schema.ModelT.InitFromPackedBuf(bytearray(data), 0)


def _ops(m: schema.ModelT) -> list[int]:
    return [m.operatorCodes[op.opcodeIndex].builtinCode for op in m.subgraphs[0].operators]


def test_deterministic_per_seed(dscnn: bytes) -> None:
    assert build_dscnn_kws(0) == dscnn
    assert build_dscnn_kws(1) != dscnn
    assert build_tiny_mlp(3) == build_tiny_mlp(3)
    assert build_tiny_mlp(3) != build_tiny_mlp(4)


def test_dscnn_structure(dscnn: bytes) -> None:
    m = _model(dscnn)
    sg = m.subgraphs[0]
    assert _ops(m) == [
        OP.CONV_2D,
        OP.DEPTHWISE_CONV_2D,
        OP.CONV_2D,
        OP.DEPTHWISE_CONV_2D,
        OP.CONV_2D,
        OP.AVERAGE_POOL_2D,
        OP.RESHAPE,
        OP.FULLY_CONNECTED,
        OP.SOFTMAX,
    ]
    (inp,), (out,) = sg.inputs, sg.outputs
    assert list(sg.tensors[inp].shape) == [1, 49, 10, 1]
    assert list(sg.tensors[out].shape) == [1, 12]
    assert sg.tensors[inp].type == sg.tensors[out].type == schema.TensorType.INT8
    first_conv = sg.operators[0]
    assert list(sg.tensors[first_conv.inputs[1]].shape)[1:3] == [10, 4]
    assert (first_conv.builtinOptions.strideH, first_conv.builtinOptions.strideW) == (2, 2)


def test_dscnn_quantisation_conventions(dscnn: bytes) -> None:
    m = _model(dscnn)
    sg = m.subgraphs[0]
    tensors = sg.tensors
    for op, code in zip(sg.operators, _ops(m), strict=True):
        x, y = tensors[op.inputs[0]], tensors[op.outputs[0]]
        if code == OP.SOFTMAX:
            assert (y.quantization.scale[0], y.quantization.zeroPoint[0]) == (1 / 256, -128)
        if code in (OP.AVERAGE_POOL_2D, OP.RESHAPE):
            assert y.quantization.scale[0] == x.quantization.scale[0]
            assert y.quantization.zeroPoint[0] == x.quantization.zeroPoint[0]
        if code not in (OP.CONV_2D, OP.DEPTHWISE_CONV_2D, OP.FULLY_CONNECTED):
            continue
        w, bias = tensors[op.inputs[1]], tensors[op.inputs[2]]
        wdata = np.frombuffer(m.buffers[w.buffer].data.tobytes(), np.int8)
        assert wdata.min() >= -127  # symmetric: -128 is never used
        assert not any(w.quantization.zeroPoint) and not any(bias.quantization.zeroPoint)
        assert bias.type == schema.TensorType.INT32
        w_scale = np.asarray(w.quantization.scale, np.float32)
        # Per-channel along the output channels for convolutions, one scale for FC.
        axis = {OP.CONV_2D: 0, OP.DEPTHWISE_CONV_2D: 3}.get(code, 0)
        channels = w.shape[axis] if code != OP.FULLY_CONNECTED else 1
        assert w.quantization.quantizedDimension == axis and len(w_scale) == channels
        in_scale = np.float32(x.quantization.scale[0])
        np.testing.assert_allclose(bias.quantization.scale, in_scale * w_scale, rtol=1e-6)
        if op.builtinOptions.fusedActivationFunction == schema.ActivationFunctionType.RELU:
            assert y.quantization.zeroPoint[0] == -128  # ReLU outputs start at real zero


def test_dscnn_outputs_are_not_degenerate(dscnn: bytes) -> None:
    rng = np.random.default_rng(2024)
    samples = [[rng.integers(-128, 128, (1, 49, 10, 1)).astype(np.int8)] for _ in range(32)]
    scores = np.concatenate([outs[0] for outs in run_tflm(dscnn, samples)])
    assert scores.shape == (32, 12)
    assert len(set(scores.argmax(axis=1))) > 1, "every input gets the same class"
    assert (scores > -128).any(axis=1).all(), "softmax output is all -128"
    # Probabilities sum to ~1 (256 steps of 1/256), give or take rounding of 12 entries.
    assert np.all(np.abs((scores.astype(np.int64) + 128).sum(axis=1) - 256) <= 12)


def test_tiny_mlp_runs() -> None:
    mlp = build_tiny_mlp(0)
    m = _model(mlp)
    assert _ops(m) == [OP.FULLY_CONNECTED, OP.FULLY_CONNECTED]
    rng = np.random.default_rng(5)
    samples = [[rng.integers(-128, 128, (1, 32)).astype(np.int8)] for _ in range(16)]
    scores = np.concatenate([outs[0] for outs in run_tflm(mlp, samples)])
    assert scores.shape == (16, 4)
    assert len(set(scores.argmax(axis=1))) > 1
