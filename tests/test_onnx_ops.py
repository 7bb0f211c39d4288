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


# --- float ONNX -> quantized int8 -> C, against TFLM and onnxruntime -----------------------


def _onnx_model() -> Any:
    """Conv -> LeakyRelu -> ConvTranspose (x2 upsampling, TFLite SAME) -> HardSwish."""
    from tests.test_onnx_frontend import OnnxBuilder, X

    b = OnnxBuilder(seed=3)
    h = b.node("Conv", [X, b.w(6, 3, 3, 3), b.w(6)], pads=[1, 1, 1, 1])
    h = b.node("LeakyRelu", [h], alpha=0.1)
    h = b.node("ConvTranspose", [h, b.w(6, 4, 3, 3), b.w(4)], strides=[2, 2],
               pads=[0, 0, 1, 1])
    h = b.node("Mul", [h, b.f32(3.0)])
    return b.model({X: [1, 3, 8, 8]}, [b.node("HardSwish", [h])])


def _onnx_model_fp16() -> Any:
    """Conv -> LeakyRelu -> ConvTranspose (x2 upsampling) -> HardSwish: every op has an FP16
    kernel (the Mul of `_onnx_model` has none)."""
    from tests.test_onnx_frontend import OnnxBuilder, X

    b = OnnxBuilder(seed=5)
    h = b.node("Conv", [X, b.w(6, 3, 3, 3), b.w(6)], pads=[1, 1, 1, 1])
    h = b.node("LeakyRelu", [h], alpha=0.2)
    h = b.node("ConvTranspose", [h, b.w(6, 4, 3, 3), b.w(4)], strides=[2, 2],
               pads=[0, 0, 1, 1])
    return b.model({X: [1, 3, 8, 8]}, [b.node("HardSwish", [h])])


def test_transpose_conv_macs_count_the_taps_that_land() -> None:
    """op_macs of a transpose conv counts the (input pixel, tap) pairs whose output survives the
    crop, against a brute-force walk over the output."""
    from codegen.render import op_macs
    from edgekit.frontends.onnx import read_onnx

    graph = read_onnx(_onnx_model_fp16().SerializeToString(), "<test>", "m")
    op = next(op for op in graph.ops if op.kind == "transpose_conv")
    x, w, y = (graph.tensor(n) for n in (op.inputs[0], op.inputs[1], op.outputs[0]))
    (sh, sw), (pt, pl) = op.attrs["stride"], op.attrs["pad"]
    pairs = sum(
        (oy + pt - ky) % sh == 0 and 0 <= (oy + pt - ky) // sh < x.shape[1]
        and (ox + pl - kx) % sw == 0 and 0 <= (ox + pl - kx) // sw < x.shape[2]
        for oy in range(y.shape[1]) for ox in range(y.shape[2])
        for ky in range(w.shape[1]) for kx in range(w.shape[2])
    )  # fmt: skip
    assert op_macs(graph, op) == pairs * x.shape[3] * w.shape[0] > 0


@pytest.fixture(scope="module")
def quantized() -> Any:
    pytest.importorskip("onnxruntime")
    from edgekit.frontends.onnx import read_onnx
    from edgekit.quantize import QuantConfig, quantize

    model = _onnx_model()
    fg = read_onnx(model.SerializeToString(), "<test>", "upsample")
    calib = np.random.default_rng(0).normal(size=(32, 3, 8, 8)).astype(np.float32)
    return model, fg, quantize(fg, [calib], QuantConfig())


def test_quantized_model_keeps_the_new_ops_and_is_accurate(quantized: Any) -> None:
    from edgekit.quantize.metrics import dequantize_array, quantize_array, sqnr_db
    from edgekit.reference.float_ref import FloatModel

    _, fg, q = quantized
    assert {"leaky_relu", "transpose_conv", "hard_swish"} <= {op.kind for op in q.ops}
    tconv = next(op for op in q.ops if op.kind == "transpose_conv")
    w = q.tensor(tconv.inputs[1])
    assert w.dtype == "int8" and w.quant is not None and w.quant.axis == 0 and w.quant.per_channel
    x = np.random.default_rng(1).normal(size=(8, 3, 8, 8)).astype(np.float32)
    xs = x.transpose(0, 2, 3, 1)[:, None]
    ref = FloatModel(fg).run([xs])[0]
    model = HostModel(compile_graph(q))
    qi, qo = q.tensor(q.inputs[0]).quant, q.tensor(q.outputs[0]).quant
    got = np.stack([dequantize_array(model.run([quantize_array(s, qi)])[0], qo) for s in xs])
    assert sqnr_db(ref.reshape(len(x), -1), got.reshape(len(x), -1)) > 25.0


def test_quantized_model_exports_to_tflite_bit_exact_with_tflm(quantized: Any) -> None:
    from edgekit.export.tflite import export_tflite
    from edgekit.verify import random_inputs

    _, _, q = quantized
    compiled = compile_graph(q)
    tflite = export_tflite(q)
    assert [op.kind for op in read_tflite(tflite, "<export>", "q").ops] == \
        [op.kind for op in q.ops]
    inputs = random_inputs(compiled.graph, 6, seed=2)
    host = HostModel(compiled)
    ours = [host.run(s) for s in inputs]
    ref = run_tflm(tflite, inputs)
    for a, r in zip(ours, ref, strict=True):
        assert a[0].tobytes() == np.ascontiguousarray(r[0], dtype=np.int8).tobytes()
    assert len({o[0].tobytes() for o in ours}) > 1


def test_quantized_model_exports_to_qdq_onnx(quantized: Any) -> None:
    """onnxruntime runs QDQ in float and rounds once per tensor; the C model requantizes in
    fixed point, so outputs agree to within a few output steps (docs/numerics-int8.md)."""
    ort = pytest.importorskip("onnxruntime")
    from edgekit.export.onnx_qdq import export_onnx_qdq
    from edgekit.quantize.metrics import dequantize_array, quantize_array

    _, _, q = quantized
    sess = ort.InferenceSession(export_onnx_qdq(q), providers=["CPUExecutionProvider"])
    model = HostModel(compile_graph(q))
    qi, qo = q.tensor(q.inputs[0]).quant, q.tensor(q.outputs[0]).quant
    step = qo.scalar_scale()
    x = np.random.default_rng(4).normal(size=(4, 1, 3, 8, 8)).astype(np.float32)
    for s in x:
        xq = quantize_array(s.transpose(0, 2, 3, 1), qi)
        ours = dequantize_array(model.run([xq])[0], qo).transpose(0, 3, 1, 2)
        x_in = dequantize_array(xq, qi).transpose(0, 3, 1, 2).astype(np.float32)
        theirs = sess.run(None, {sess.get_inputs()[0].name: x_in})[0]
        diff = np.abs(ours - theirs) / step
        assert diff.max() <= 4.0 and np.mean(diff) < 0.5, (diff.max(), diff.mean())


def test_fp16_precision_takes_the_three_ops(quantized: Any) -> None:
    """FP16 kernels are per op (no generic path): the model's one op without an FP16 kernel,
    the Mul, is named in one clear error; the three new ops have kernels and are not named."""
    import copy

    from edgekit.passes.fp16 import to_float

    _, fg, _ = quantized
    with pytest.raises(EdgekitError) as err:
        to_float(copy.deepcopy(fg), "fp16", "<test>")
    assert "no fp16 kernel for 'mul'" in str(err.value)
    for kind in ("leaky_relu", "transpose_conv", "hard_swish"):
        assert f"'{kind}'" not in str(err.value)


def test_fp16_new_ops_track_onnxruntime() -> None:
    """Conv -> LeakyRelu -> ConvTranspose -> HardSwish compiled with --precision fp16 stays
    within FP16's precision of onnxruntime's float32 run (bit-exactness is test_fp16.py's job)."""
    ort = pytest.importorskip("onnxruntime")
    from edgekit.frontends.onnx import read_onnx

    model = _onnx_model_fp16()
    graph = read_onnx(model.SerializeToString(), "<test>", "act16")
    compiled = compile_graph(graph, "host", precision="fp16")
    assert {"leaky_relu", "transpose_conv", "hard_swish"} <= {op.kind for op in compiled.graph.ops}
    host = HostModel(compiled)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(6).normal(size=(4, 1, 3, 8, 8)).astype(np.float32)
    for s in x:
        theirs = sess.run(None, {sess.get_inputs()[0].name: s})[0].transpose(0, 2, 3, 1)
        ours = host.run([s.transpose(0, 2, 3, 1).astype(np.float16)])[0].astype(np.float32)
        scale = float(np.abs(theirs).max())
        assert np.abs(ours - theirs).max() <= 4e-3 * scale, np.abs(ours - theirs).max() / scale


def test_cortex_m4_falls_back_to_portable_and_matches_the_host(quantized: Any) -> None:
    """The Arm DSP family claims none of the three kinds: they take the portable C, which gives
    the host's bytes under QEMU."""
    from edgekit.runners.emulated_model import EmulatedModel
    from edgekit.verify import random_inputs

    _, _, q = quantized
    compiled = compile_graph(q, "cortex-m4")
    fams = {op.kind: op.attrs["kernel"]["family"] for op in compiled.graph.ops}
    assert all(fams[k] == "portable" for k in ("leaky_relu", "transpose_conv", "hard_swish"))
    inputs = random_inputs(compiled.graph, 2, seed=7)
    host = HostModel(compile_graph(q))
    emu = EmulatedModel(compiled).run(inputs)
    for s, got in zip(inputs, emu.outputs, strict=True):
        assert got[0].tobytes() == host.run(s)[0].tobytes()
