"""TFLiteBuilder writes models TFLM loads and runs, with the options meaning what they should.

Each case is a one-op int8 model checked against a NumPy reference computed from the integer
inputs, so a swapped stride, a wrong layout or a misread option shows up as a wrong value, not
only as a load failure. Requantising ops may differ from the exact result by 1 LSB (TFLM uses
fixed-point multipliers); pure data movement must match exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as schema

from edgekit.errors import EdgekitError
from edgekit.frontends.tflite_writer import TFLiteBuilder
from edgekit.reference.tflm import run_tflm

RNG_SEED = 1234


@dataclass
class Case:
    model: bytes
    inputs: list[np.ndarray]
    expected: np.ndarray
    atol: float  # in output LSBs (or absolute, for float outputs)


def _i8(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.integers(-128, 128, shape).astype(np.int8)


def _requant(real: np.ndarray, scale: float, zp: int, lo: int = -128, hi: int = 127) -> np.ndarray:
    return np.clip(np.round(real / scale) + zp, lo, hi)


def _same_pad(size: int, k: int, s: int, d: int = 1) -> tuple[int, int, int]:
    out = -(-size // s)
    eff = (k - 1) * d + 1
    total = max((out - 1) * s + eff - size, 0)
    return out, total // 2, total - total // 2


def _conv_acc(
    xq: np.ndarray,
    zp: int,
    w: np.ndarray,
    stride: tuple[int, int],
    padding: str,
    dilation: tuple[int, int] = (1, 1),
    depthwise: bool = False,
) -> np.ndarray:
    """Integer accumulators of a conv (w OHWI) or depthwise conv (w 1HWC) on NHWC input."""
    x = xq.astype(np.int64) - zp
    kh, kw = w.shape[1:3]
    _, h, wd, c = x.shape
    if padding == "SAME":
        oh, pt, pb = _same_pad(h, kh, stride[0], dilation[0])
        ow, pl, pr = _same_pad(wd, kw, stride[1], dilation[1])
        x = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))  # pad with real zero
    else:
        oh = (h - (kh - 1) * dilation[0] - 1) // stride[0] + 1
        ow = (wd - (kw - 1) * dilation[1] - 1) // stride[1] + 1
    out_c = w.shape[3] if depthwise else w.shape[0]
    acc = np.zeros((1, oh, ow, out_c), np.int64)
    mult = out_c // c
    for i in range(oh):
        for j in range(ow):
            hs, ws = i * stride[0], j * stride[1]
            dh, dw = dilation
            patch = x[0, hs : hs + kh * dh : dh, ws : ws + kw * dw : dw]
            if depthwise:
                acc[0, i, j] = np.einsum("hwc,hwc->c", np.repeat(patch, mult, axis=2), w[0])
            else:
                acc[0, i, j] = np.einsum("hwc,ohwc->o", patch, w.astype(np.int64))
    return acc


def case_conv_2d(rng: np.random.Generator) -> Case:
    b = TFLiteBuilder()
    xq = _i8(rng, (1, 7, 6, 3))
    wq = rng.integers(-127, 128, (4, 3, 2, 3)).astype(np.int8)
    bq = rng.integers(-2000, 2000, 4).astype(np.int32)
    s_in, zp_in, s_w, s_out, zp_out = 0.05, -3, rng.uniform(0.002, 0.01, 4), 0.08, -20
    x = b.tensor("x", xq.shape, np.int8, scale=s_in, zero_point=zp_in)
    w = b.const("w", wq, scale=s_w, zero_point=0, quantized_dimension=0)
    bias = b.const("b", bq, scale=s_in * s_w, zero_point=0)
    y = b.tensor("y", (1, 4, 3, 4), np.int8, scale=s_out, zero_point=zp_out)
    b.op("CONV_2D", [x, w, bias], [y], stride=(2, 2), padding="SAME", dilation=1, activation="RELU")
    b.inputs([x])
    b.outputs([y])
    acc = _conv_acc(xq, zp_in, wq, (2, 2), "SAME") + bq
    expected = _requant(np.maximum(acc * s_in * s_w, 0.0), s_out, zp_out)
    return Case(b.finish(), [xq], expected, 1)


def case_conv_2d_dilated_valid(rng: np.random.Generator) -> Case:
    b = TFLiteBuilder()
    xq = _i8(rng, (1, 8, 9, 2))
    wq = rng.integers(-127, 128, (3, 2, 3, 2)).astype(np.int8)
    bq = rng.integers(-500, 500, 3).astype(np.int32)
    s_in, zp_in, s_w, s_out, zp_out = 0.03, 5, rng.uniform(0.002, 0.01, 3), 0.1, 3
    x = b.tensor("x", xq.shape, np.int8, scale=s_in, zero_point=zp_in)
    w = b.const("w", wq, scale=s_w, zero_point=0, quantized_dimension=0)
    bias = b.const("b", bq, scale=s_in * s_w, zero_point=0)
    # Dilation 2 makes the 2x3 kernel span 3x5: H (8 - 3) // 1 + 1 = 6, W (9 - 5) // 2 + 1 = 3.
    y = b.tensor("y", (1, 6, 3, 3), np.int8, scale=s_out, zero_point=zp_out)
    b.op("CONV_2D", [x, w, bias], [y], stride=(1, 2), dilation=(2, 2), padding="VALID")
    b.inputs([x])
    b.outputs([y])
    acc = _conv_acc(xq, zp_in, wq, (1, 2), "VALID", dilation=(2, 2)) + bq
    return Case(b.finish(), [xq], _requant(acc * s_in * s_w, s_out, zp_out), 1)


def case_depthwise_conv_2d(rng: np.random.Generator) -> Case:
    b = TFLiteBuilder()
    xq = _i8(rng, (1, 5, 6, 2))
    wq = rng.integers(-127, 128, (1, 3, 3, 4)).astype(np.int8)
    bq = rng.integers(-1000, 1000, 4).astype(np.int32)
    s_in, zp_in, s_w, s_out, zp_out = 0.04, 7, rng.uniform(0.002, 0.01, 4), 6.0 / 255, -128
    x = b.tensor("x", xq.shape, np.int8, scale=s_in, zero_point=zp_in)
    w = b.const("w", wq, scale=s_w, zero_point=0, quantized_dimension=3)
    bias = b.const("b", bq, scale=s_in * s_w, zero_point=0, quantized_dimension=0)
    y = b.tensor("y", (1, 5, 3, 4), np.int8, scale=s_out, zero_point=zp_out)
    b.op(
        "DEPTHWISE_CONV_2D",
        [x, w, bias],
        [y],
        stride=(1, 2),
        padding="SAME",
        depth_multiplier=2,
        activation="RELU6",
    )
    b.inputs([x])
    b.outputs([y])
    acc = _conv_acc(xq, zp_in, wq, (1, 2), "SAME", depthwise=True) + bq
    expected = _requant(np.clip(acc * s_in * s_w, 0.0, 6.0), s_out, zp_out)
    return Case(b.finish(), [xq], expected, 1)


def case_fully_connected(rng: np.random.Generator) -> Case:
    b = TFLiteBuilder()
    xq = _i8(rng, (1, 8))
    wq = rng.integers(-127, 128, (3, 8)).astype(np.int8)
    bq = rng.integers(-3000, 3000, 3).astype(np.int32)
    s_in, zp_in, s_w, s_out, zp_out = 0.1, -10, 0.004, 0.2, 6
    x = b.tensor("x", xq.shape, np.int8, scale=s_in, zero_point=zp_in)
    w = b.const("w", wq, scale=s_w, zero_point=0)
    bias = b.const("b", bq, scale=s_in * s_w, zero_point=0)
    y = b.tensor("y", (1, 3), np.int8, scale=s_out, zero_point=zp_out)
    b.op("FULLY_CONNECTED", [x, w, bias], [y])
    b.inputs([x])
    b.outputs([y])
    acc = (xq.astype(np.int64) - zp_in) @ wq.T.astype(np.int64) + bq
    return Case(b.finish(), [xq], _requant(acc * s_in * s_w, s_out, zp_out), 1)


def _pool_case(rng: np.random.Generator, kind: str) -> Case:
    b = TFLiteBuilder()
    xq = _i8(rng, (1, 6, 5, 2))
    s, zp = 0.1, 4
    x = b.tensor("x", xq.shape, np.int8, scale=s, zero_point=zp)
    if kind == "AVERAGE_POOL_2D":
        fh, fw, sh, sw, oh, ow, pad = 3, 2, 2, 1, 2, 4, "VALID"
    else:
        fh, fw, sh, sw, oh, ow, pad = 2, 3, 2, 2, 3, 3, "SAME"
    y = b.tensor("y", (1, oh, ow, 2), np.int8, scale=s, zero_point=zp)
    b.op(kind, [x], [y], filter=(fh, fw), stride=(sh, sw), padding=pad)
    b.inputs([x])
    b.outputs([y])
    xi = xq.astype(np.float64)
    expected = np.zeros((1, oh, ow, 2))
    _, pt, _ = _same_pad(6, fh, sh) if pad == "SAME" else (0, 0, 0)
    _, pl, _ = _same_pad(5, fw, sw) if pad == "SAME" else (0, 0, 0)
    for i in range(oh):
        for j in range(ow):
            h0, w0 = i * sh - pt, j * sw - pl
            win = xi[0, max(h0, 0) : h0 + fh, max(w0, 0) : w0 + fw]  # padding is excluded
            expected[0, i, j] = win.mean((0, 1)) if kind == "AVERAGE_POOL_2D" else win.max((0, 1))
    atol = 1 if kind == "AVERAGE_POOL_2D" else 0
    return Case(b.finish(), [xq], np.round(expected), atol)


def _binary_case(rng: np.random.Generator, kind: str) -> Case:
    b = TFLiteBuilder()
    aq, bq = _i8(rng, (1, 3, 4, 5)), _i8(rng, (1, 3, 4, 5))
    (sa, za), (sb, zb) = (0.05, -7), (0.03, 12)
    so, zo = {"ADD": (0.08, -2), "SUB": (0.08, 3), "MUL": (0.02, -5)}[kind]
    a = b.tensor("a", aq.shape, np.int8, scale=sa, zero_point=za)
    c = b.tensor("b", bq.shape, np.int8, scale=sb, zero_point=zb)
    y = b.tensor("y", aq.shape, np.int8, scale=so, zero_point=zo)
    b.op(kind, [a, c], [y], activation="RELU" if kind == "ADD" else "NONE")
    b.inputs([a, c])
    b.outputs([y])
    ra, rb = (aq.astype(np.float64) - za) * sa, (bq.astype(np.float64) - zb) * sb
    real = {"ADD": np.maximum(ra + rb, 0.0), "SUB": ra - rb, "MUL": ra * rb}[kind]
    return Case(b.finish(), [aq, bq], _requant(real, so, zo), 1)


def _unary_case(rng: np.random.Generator, kind: str) -> Case:
    b = TFLiteBuilder()
    xq = _i8(rng, (1, 4, 10))
    s, zp = 0.06, -4
    out_q = {
        "SOFTMAX": (1.0 / 256, -128),
        "LOGISTIC": (1.0 / 256, -128),
        "TANH": (1.0 / 128, 0),
        "RELU": (0.03, -128),
        # TFLM's int8 RELU6 clamps in the input's quantised domain and never requantises, so
        # only same-quantisation RELU6 is meaningful (see test_tflm_relu6_keeps_input_scale).
        "RELU6": (s, zp),
    }[kind]
    x = b.tensor("x", xq.shape, np.int8, scale=s, zero_point=zp)
    y = b.tensor("y", xq.shape, np.int8, scale=out_q[0], zero_point=out_q[1])
    opts = {"beta": 1.0} if kind == "SOFTMAX" else {}
    b.op(kind, [x], [y], **opts)
    b.inputs([x])
    b.outputs([y])
    r = (xq.astype(np.float64) - zp) * s
    if kind == "SOFTMAX":
        e = np.exp(r - r.max(-1, keepdims=True))
        real = e / e.sum(-1, keepdims=True)
    else:
        real = {
            "LOGISTIC": lambda v: 1 / (1 + np.exp(-v)),
            "TANH": np.tanh,
            "RELU": lambda v: np.maximum(v, 0.0),
            "RELU6": lambda v: np.clip(v, 0.0, 6.0),
        }[kind](r)
    return Case(b.finish(), [xq], _requant(real, *out_q), 1)


def test_tflm_relu6_keeps_input_scale() -> None:
    """A TFLM quirk the code generator must copy: RELU6 output quantisation is ignored."""
    rng = np.random.default_rng(RNG_SEED)
    b = TFLiteBuilder()
    xq = _i8(rng, (1, 32))
    x = b.tensor("x", xq.shape, np.int8, scale=0.06, zero_point=-4)
    y = b.tensor("y", xq.shape, np.int8, scale=6.0 / 255, zero_point=-128)
    b.op("RELU6", [x], [y])
    b.inputs([x])
    b.outputs([y])
    (out,) = run_tflm(b.finish(), [[xq]])[0]
    np.testing.assert_array_equal(out, np.clip(xq, -4, -4 + round(6.0 / 0.06)))


def case_quantize(rng: np.random.Generator) -> Case:
    b = TFLiteBuilder()
    xf = rng.uniform(-3, 3, (1, 16)).astype(np.float32)
    x = b.tensor("x", xf.shape, np.float32)
    y = b.tensor("y", xf.shape, np.int8, scale=0.025, zero_point=-9)
    b.op("QUANTIZE", [x], [y])
    b.inputs([x])
    b.outputs([y])
    return Case(b.finish(), [xf], _requant(xf / np.float32(0.025), 1.0, -9), 0)


def case_dequantize(rng: np.random.Generator) -> Case:
    b = TFLiteBuilder()
    xq = _i8(rng, (1, 16))
    x = b.tensor("x", xq.shape, np.int8, scale=0.025, zero_point=-9)
    y = b.tensor("y", xq.shape, np.float32)
    b.op("DEQUANTIZE", [x], [y])
    b.inputs([x])
    b.outputs([y])
    expected = (xq.astype(np.float32) + 9) * np.float32(0.025)
    return Case(b.finish(), [xq], expected, 1e-6)


def case_reshape(rng: np.random.Generator) -> Case:
    b = TFLiteBuilder()
    xq = _i8(rng, (1, 2, 3, 4))
    x = b.tensor("x", xq.shape, np.int8, scale=0.1, zero_point=0)
    y = b.tensor("y", (1, 24), np.int8, scale=0.1, zero_point=0)
    b.op("RESHAPE", [x], [y])  # the shape operand is made from y's shape
    b.inputs([x])
    b.outputs([y])
    return Case(b.finish(), [xq], xq.reshape(1, 24), 0)


def case_pad(rng: np.random.Generator) -> Case:
    b = TFLiteBuilder()
    xq = _i8(rng, (1, 3, 4, 2))
    paddings = [[0, 0], [1, 2], [0, 1], [0, 0]]
    x = b.tensor("x", xq.shape, np.int8, scale=0.1, zero_point=-5)
    y = b.tensor("y", (1, 6, 5, 2), np.int8, scale=0.1, zero_point=-5)
    b.op("PAD", [x], [y], paddings=paddings)
    b.inputs([x])
    b.outputs([y])
    return Case(b.finish(), [xq], np.pad(xq, paddings, constant_values=-5), 0)


def case_concatenation(rng: np.random.Generator) -> Case:
    b = TFLiteBuilder()
    aq, cq = _i8(rng, (1, 2, 3, 2)), _i8(rng, (1, 2, 3, 3))
    a = b.tensor("a", aq.shape, np.int8, scale=0.1, zero_point=1)
    c = b.tensor("c", cq.shape, np.int8, scale=0.1, zero_point=1)
    y = b.tensor("y", (1, 2, 3, 5), np.int8, scale=0.1, zero_point=1)
    b.op("CONCATENATION", [a, c], [y], axis=3, activation="NONE")
    b.inputs([a, c])
    b.outputs([y])
    return Case(b.finish(), [aq, cq], np.concatenate([aq, cq], axis=3), 0)


def case_mean(rng: np.random.Generator) -> Case:
    b = TFLiteBuilder()
    xq = _i8(rng, (1, 4, 5, 3))
    x = b.tensor("x", xq.shape, np.int8, scale=0.05, zero_point=3)
    y = b.tensor("y", (1, 1, 1, 3), np.int8, scale=0.02, zero_point=-1)
    b.op("MEAN", [x], [y], axis=[1, 2], keep_dims=True)
    b.inputs([x])
    b.outputs([y])
    real = ((xq.astype(np.float64) - 3) * 0.05).mean(axis=(1, 2), keepdims=True)
    return Case(b.finish(), [xq], _requant(real, 0.02, -1), 1)


def case_strided_slice(rng: np.random.Generator) -> Case:
    b = TFLiteBuilder()
    xq = _i8(rng, (1, 6, 8, 3))
    x = b.tensor("x", xq.shape, np.int8, scale=0.1, zero_point=0)
    y = b.tensor("y", (1, 3, 3, 2), np.int8, scale=0.1, zero_point=0)
    # begin_mask on axis 2 makes its begin (7) ignored; end_mask on axis 0 ignores its end.
    b.op(
        "STRIDED_SLICE",
        [x],
        [y],
        begin=[0, 1, 7, 1],
        end=[0, 6, 8, 3],
        strides=[1, 2, 3, 1],
        begin_mask=0b0100,
        end_mask=0b0001,
    )
    b.inputs([x])
    b.outputs([y])
    return Case(b.finish(), [xq], xq[:, 1:6:2, 0:8:3, 1:3], 0)


def case_squeeze(rng: np.random.Generator) -> Case:
    b = TFLiteBuilder()
    xq = _i8(rng, (1, 1, 5, 3))
    x = b.tensor("x", xq.shape, np.int8, scale=0.1, zero_point=0)
    y = b.tensor("y", (1, 5, 3), np.int8, scale=0.1, zero_point=0)
    b.op("SQUEEZE", [x], [y], squeeze_dims=[1])
    b.inputs([x])
    b.outputs([y])
    return Case(b.finish(), [xq], xq.reshape(1, 5, 3), 0)


CASES: dict[str, Callable[[np.random.Generator], Case]] = {
    "CONV_2D": case_conv_2d,
    "CONV_2D dilated VALID": case_conv_2d_dilated_valid,
    "DEPTHWISE_CONV_2D": case_depthwise_conv_2d,
    "FULLY_CONNECTED": case_fully_connected,
    "AVERAGE_POOL_2D": lambda r: _pool_case(r, "AVERAGE_POOL_2D"),
    "MAX_POOL_2D": lambda r: _pool_case(r, "MAX_POOL_2D"),
    "ADD": lambda r: _binary_case(r, "ADD"),
    "SUB": lambda r: _binary_case(r, "SUB"),
    "MUL": lambda r: _binary_case(r, "MUL"),
    "RESHAPE": case_reshape,
    "SOFTMAX": lambda r: _unary_case(r, "SOFTMAX"),
    "LOGISTIC": lambda r: _unary_case(r, "LOGISTIC"),
    "TANH": lambda r: _unary_case(r, "TANH"),
    "RELU": lambda r: _unary_case(r, "RELU"),
    "RELU6": lambda r: _unary_case(r, "RELU6"),
    "QUANTIZE": case_quantize,
    "DEQUANTIZE": case_dequantize,
    "PAD": case_pad,
    "CONCATENATION": case_concatenation,
    "MEAN": case_mean,
    "STRIDED_SLICE": case_strided_slice,
    "SQUEEZE": case_squeeze,
}


@pytest.mark.parametrize("name", list(CASES))
def test_tflm_runs_op(name: str) -> None:
    case = CASES[name](np.random.default_rng(RNG_SEED))
    (out,) = run_tflm(case.model, [case.inputs])[0]
    assert out.shape == case.expected.shape
    if out.dtype == np.float32:
        np.testing.assert_allclose(out, case.expected, atol=case.atol, rtol=0)
    else:
        assert out.dtype == np.int8
        diff = np.abs(out.astype(np.int64) - case.expected.astype(np.int64))
        assert diff.max() <= case.atol, f"{name}: off by up to {diff.max()} LSB"


def _parsed(data: bytes) -> schema.ModelT:
    return schema.ModelT.InitFromPackedBuf(bytearray(data), 0)


def _versions(data: bytes) -> dict[int, int]:
    return {oc.builtinCode: oc.version for oc in _parsed(data).operatorCodes}


def test_operator_codes_carry_int8_versions() -> None:
    rng = np.random.default_rng(0)
    op = schema.BuiltinOperator
    expected = {
        "CONV_2D": (op.CONV_2D, 3),
        "DEPTHWISE_CONV_2D": (op.DEPTHWISE_CONV_2D, 3),
        "FULLY_CONNECTED": (op.FULLY_CONNECTED, 4),
        "AVERAGE_POOL_2D": (op.AVERAGE_POOL_2D, 2),
        "SOFTMAX": (op.SOFTMAX, 2),
        "MUL": (op.MUL, 2),
        "QUANTIZE": (op.QUANTIZE, 1),
        "DEQUANTIZE": (op.DEQUANTIZE, 2),
        "STRIDED_SLICE": (op.STRIDED_SLICE, 2),
        "SQUEEZE": (op.SQUEEZE, 1),
    }
    for name, (code, version) in expected.items():
        model = CASES[name](rng).model
        codes = _parsed(model).operatorCodes
        assert [(c.builtinCode, c.deprecatedBuiltinCode, c.version) for c in codes][0] == (
            code,
            code,
            version,
        )
        assert _versions(model)[code] == version


def test_model_layout() -> None:
    case = case_conv_2d(np.random.default_rng(0))
    m = _parsed(case.model)
    assert m.version == 3
    assert m.buffers[0].data is None  # the empty sentinel every TFLite file starts with
    sg = m.subgraphs[0]
    activations = [t for t in sg.tensors if t.name in (b"x", b"y")]
    assert all(t.buffer == 0 for t in activations)
    w = next(t for t in sg.tensors if t.name == b"w")
    assert len(w.quantization.scale) == 4 and list(w.quantization.zeroPoint) == [0] * 4
    opts = sg.operators[0].builtinOptions
    assert (opts.strideH, opts.strideW, opts.padding) == (2, 2, schema.Padding.SAME)
    assert opts.fusedActivationFunction == schema.ActivationFunctionType.RELU


def test_buffers_are_16_byte_aligned() -> None:
    data = case_conv_2d(np.random.default_rng(0)).model
    root = schema.Model.GetRootAs(data, 0)
    base = np.frombuffer(data, np.uint8).ctypes.data
    for i in range(1, root.BuffersLength()):
        view = root.Buffers(i).DataAsNumpy()
        assert (view.ctypes.data - base) % 16 == 0


def test_extended_opcode_uses_placeholder_in_deprecated_field() -> None:
    b = TFLiteBuilder()
    x = b.tensor("x", (1, 4), np.float32)
    y = b.tensor("y", (1, 4), np.float32)
    b.op("GELU", [x], [y])
    b.inputs([x])
    b.outputs([y])
    (code,) = _parsed(b.finish()).operatorCodes
    assert code.builtinCode == schema.BuiltinOperator.GELU > 127
    assert code.deprecatedBuiltinCode == 127


def test_same_graph_same_bytes() -> None:
    assert case_mean(np.random.default_rng(3)).model == case_mean(np.random.default_rng(3)).model


def test_int16_and_uint8_tensors_round_trip() -> None:
    b = TFLiteBuilder()
    x = b.tensor("x", (2, 3), np.int16, scale=0.001, zero_point=0)
    u = b.const("u", np.arange(6, dtype=np.uint8).reshape(2, 3), scale=0.5, zero_point=128)
    b.inputs([x])
    b.outputs([u])
    tensors = _parsed(b.finish()).subgraphs[0].tensors
    assert tensors[0].type == schema.TensorType.INT16
    assert tensors[1].type == schema.TensorType.UINT8


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda b, x, y: b.op("NOT_AN_OP", [x], [y]), "unknown builtin operator"),
        (lambda b, x, y: b.op("SOFTMAX", [x], [y], betta=2.0), "unexpected options"),
        (lambda b, x, y: b.op("MAX_POOL_2D", [x], [y], stride=1), "missing option 'filter'"),
        (lambda b, x, y: b.op("RELU", [x], [y, 9]), "no tensor with index 9"),
        (
            lambda b, x, y: b.op("CONV_2D", [x, x, -1], [y], activation="GELU"),
            "bad options: activation='GELU'",
        ),
        (lambda b, x, y: b.tensor("z", (1,), np.float64), "unsupported tensor dtype"),
    ],
)
def test_mistakes_are_reported(call: Callable, message: str) -> None:
    b = TFLiteBuilder()
    x = b.tensor("x", (1, 4, 4, 1), np.int8, scale=0.1, zero_point=0)
    y = b.tensor("y", (1, 4, 4, 1), np.int8, scale=0.1, zero_point=0)
    with pytest.raises(EdgekitError, match=message):
        call(b, x, y)


def test_finish_requires_inputs_and_outputs() -> None:
    with pytest.raises(EdgekitError, match="no inputs"):
        TFLiteBuilder().finish()
