"""LEAKY_RELU, HARD_SWISH and TRANSPOSE_CONV end to end.

int8: one-op .tflite files written with TFLiteBuilder, compiled to C, byte-compared with TFLite
Micro (as tests/test_ops_int8.py does for the other ops). Float: ONNX LeakyRelu, HardSwish and
ConvTranspose imported and run through the float reference, compared with onnxruntime.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgekit.errors import EdgekitError
from edgekit.frontends.tflite import read_tflite
from edgekit.frontends.tflite_writer import TFLiteBuilder
from edgekit.pipeline import compile_graph
from edgekit.reference.tflm import run_tflm
from edgekit.runners.host import HostModel

SAMPLES = 4


def _examples(n: int) -> settings:
    return settings(max_examples=n, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _f32(x: float) -> float:
    return float(np.float32(x))


def _bit_exact(b: TFLiteBuilder, seed: int) -> None:
    model = b.finish()
    graph = read_tflite(model, "<test>", "op")
    rng = np.random.default_rng(seed)
    inputs = [[rng.integers(-128, 128, graph.tensor(t).shape).astype(np.int8)
               for t in graph.inputs] for _ in range(SAMPLES)]
    host = HostModel(compile_graph(graph))
    ours = [host.run(s) for s in inputs]
    want = run_tflm(model, inputs)
    for n, (got, ref) in enumerate(zip(ours, want, strict=True)):
        a = np.ascontiguousarray(got[0]).reshape(-1)
        r = np.asarray(ref[0], dtype=np.int8).reshape(-1)
        bad = np.nonzero(a != r)[0]
        assert not bad.size, (f"sample {n}: {bad.size} of {a.size} differ, first at "
                              f"{bad[:6].tolist()}: {a[bad[:6]].tolist()} vs {r[bad[:6]].tolist()}")


# --- int8 against TFLM ----------------------------------------------------------------------


def _unary_model(op: str, s_in: float, z_in: int, s_out: float, z_out: int, shape: list[int],
                 **opts: Any) -> TFLiteBuilder:
    b = TFLiteBuilder()
    x = b.tensor("x", shape, np.int8, s_in, z_in)
    y = b.tensor("y", shape, np.int8, s_out, z_out)
    b.op(op, [x], [y], **opts)
    b.inputs([x])
    b.outputs([y])
    return b


@_examples(12)
@given(st.data())
def test_leaky_relu_int8(data: st.DataObject) -> None:
    draw = data.draw
    s_in = _f32(10.0 ** draw(st.floats(-3.0, 0.0)))
    s_out = _f32(s_in * 10.0 ** draw(st.floats(-1.0, 1.0)))
    alpha = _f32(draw(st.sampled_from([0.01, 0.1, 0.2, 0.3, 0.5, 1.0, 1.7])))
    z_in, z_out = draw(st.integers(-128, 127)), draw(st.integers(-128, 127))
    shape = draw(st.sampled_from([[1, 300], [2, 5, 7], [1, 3, 3, 8]]))
    b = _unary_model("LEAKY_RELU", s_in, z_in, s_out, z_out, shape, alpha=alpha)
    _bit_exact(b, draw(st.integers(0, 2**32 - 1)))


@_examples(12)
@given(st.data())
def test_hard_swish_int8(data: st.DataObject) -> None:
    draw = data.draw
    # inputs spanning about [-4, 4] up to [-40, 40]; outputs as a calibrated model would have
    s_in = _f32(10.0 ** draw(st.floats(-2.0, -0.5)))
    s_out = _f32(s_in * 10.0 ** draw(st.floats(-0.7, 0.7)))
    z_in, z_out = draw(st.integers(-128, 127)), draw(st.integers(-128, 127))
    shape = draw(st.sampled_from([[1, 300], [2, 5, 7], [1, 3, 3, 8]]))
    b = _unary_model("HARD_SWISH", s_in, z_in, s_out, z_out, shape)
    _bit_exact(b, draw(st.integers(0, 2**32 - 1)))


def test_hard_swish_covers_every_input_value() -> None:
    """All 256 inputs at a few typical quantizations, including scales that shift left."""
    for s_in, z_in, s_out, z_out in [(0.05, -10, 0.03, -100), (0.2, 0, 0.12, -128),
                                     (0.005, 3, 0.004, 7), (0.09, 127, 0.5, 0)]:
        b = TFLiteBuilder()
        x = b.tensor("x", [1, 256], np.int8, s_in, z_in)
        y = b.tensor("y", [1, 256], np.int8, s_out, z_out)
        b.op("HARD_SWISH", [x], [y])
        b.inputs([x])
        b.outputs([y])
        model = b.finish()
        graph = read_tflite(model, "<test>", "op")
        sample = [np.arange(-128, 128, dtype=np.int8).reshape(1, 256)]
        got = HostModel(compile_graph(graph)).run(sample)[0]
        want = np.asarray(run_tflm(model, [sample])[0][0], dtype=np.int8)
        assert np.array_equal(got.reshape(-1), want.reshape(-1)), (s_in, s_out)


@st.composite
def _tconv_cases(draw: Any) -> dict[str, Any]:
    return {
        "padding": draw(st.sampled_from(["SAME", "VALID"])),
        "hw": (draw(st.integers(1, 6)), draw(st.integers(1, 6))),
        "kernel": (draw(st.integers(1, 4)), draw(st.integers(1, 4))),
        "stride": (draw(st.integers(1, 3)), draw(st.integers(1, 3))),
        "cin": draw(st.integers(1, 5)),
        "cout": draw(st.integers(1, 6)),
        "batch": draw(st.sampled_from([1, 1, 2])),
        "bias": draw(st.booleans()),
        "per_channel": draw(st.booleans()),
        "in_zp": draw(st.integers(-128, 127)),
        "out_zp": draw(st.integers(-128, 127)),
        "gain": draw(st.floats(0.3, 3.0)),
        "seed": draw(st.integers(0, 2**32 - 1)),
    }


def _tconv_model(case: dict[str, Any]) -> TFLiteBuilder:
    rng = np.random.default_rng(case["seed"])
    (h, w), (kh, kw), (sh, sw) = case["hw"], case["kernel"], case["stride"]
    cin, cout = case["cin"], case["cout"]
    if case["padding"] == "SAME":
        oh, ow = h * sh, w * sw
    else:
        oh, ow = (h - 1) * sh + kh, (w - 1) * sw + kw
    w_scales = (10.0 ** rng.uniform(-3.0, -1.5, cout if case["per_channel"] else 1)
                ).astype(np.float32)
    in_s = _f32(0.02)
    # each output sums about kh*kw*cin/(sh*sw) products of ~74 x ~60
    taps = max(1.0, kh * kw * cin / (sh * sw))
    out_s = _f32(in_s * float(np.median(w_scales)) * np.sqrt(taps) * 74 * 60 / 60 * case["gain"])
    b = TFLiteBuilder()
    x = b.tensor("x", [case["batch"], h, w, cin], np.int8, in_s, case["in_zp"])
    wt = b.const("w", rng.integers(-127, 128, (cout, kh, kw, cin)).astype(np.int8), w_scales, 0,
                 quantized_dimension=0)
    ins = [wt, x]
    if case["bias"]:
        bias_scale = (in_s * w_scales.astype(np.float64)).astype(np.float32)
        ins.append(b.const("b", rng.normal(0, 3000, cout).astype(np.int32), bias_scale, 0))
    y = b.tensor("y", [case["batch"], oh, ow, cout], np.int8, out_s, case["out_zp"])
    b.op("TRANSPOSE_CONV", ins, [y], stride=case["stride"], padding=case["padding"])
    b.inputs([x])
    b.outputs([y])
    return b


@_examples(14)
@given(_tconv_cases())
def test_transpose_conv_int8(case: dict[str, Any]) -> None:
    _bit_exact(_tconv_model(case), case["seed"])


def test_transpose_conv_fused_activation_is_refused() -> None:
    b = TFLiteBuilder()
    x = b.tensor("x", [1, 2, 2, 1], np.int8, 0.1, 0)
    wt = b.const("w", np.ones((1, 2, 2, 1), np.int8), 0.1, 0)
    y = b.tensor("y", [1, 4, 4, 1], np.int8, 0.1, 0)
    b.op("TRANSPOSE_CONV", [wt, x], [y], stride=2, padding="SAME", activation="RELU")
    b.inputs([x])
    b.outputs([y])
    with pytest.raises(EdgekitError, match="fused activation"):
        read_tflite(b.finish(), "<test>", "op")
