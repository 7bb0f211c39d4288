"""Post-training quantization: estimators, TFLite conventions, and the end-to-end proof.

The end-to-end proof: a float model is quantized, exported to .tflite, and TFLite Micro running
that file agrees byte for byte with edgekit's generated C for the quantized IR. Accuracy is
measured as SQNR of dequantized int8 outputs against the float model (edgekit's float
reference, itself checked against onnxruntime in test_onnx_frontend.py and against LiteRT
here, in a separate process).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

import onnx  # noqa: E402

from edgekit.errors import EdgekitError  # noqa: E402
from edgekit.export.tflite import export_tflite  # noqa: E402
from edgekit.frontends.onnx import read_onnx  # noqa: E402
from edgekit.frontends.tflite import load_tflite, read_tflite  # noqa: E402
from edgekit.ir.graph import Graph  # noqa: E402
from edgekit.pipeline import compile_graph  # noqa: E402
from edgekit.quantize import (  # noqa: E402
    Calibration,
    QuantConfig,
    dequantize_array,
    quantize,
    quantize_array,
    sqnr_db,
)
from edgekit.quantize.observers import BINS, TensorStats  # noqa: E402
from edgekit.quantize.ranges import asymmetric_params, mse, percentile  # noqa: E402
from edgekit.quantize.weights import bias_scale, quantize_weights  # noqa: E402
from edgekit.reference.float_ref import FloatModel  # noqa: E402
from edgekit.reference.tflm import run_tflm  # noqa: E402
from edgekit.runners.host import HostModel  # noqa: E402
from edgekit.verify import random_inputs  # noqa: E402
from tests.conftest import MLPERF_DIR  # noqa: E402
from tests.test_onnx_frontend import OnnxBuilder, X  # noqa: E402

# --- estimators and parameters (no model) -----------------------------------------------------


@pytest.mark.parametrize("lo,hi", [(-3.0, 5.0), (0.0, 6.0), (0.5, 2.0), (-4.0, -1.0),
                                   (-1e-3, 2e-3), (0.0, 0.0), (-100.0, 0.1)])
def test_zero_is_exactly_representable_and_the_range_covered(lo: float, hi: float) -> None:
    s, z = asymmetric_params(lo, hi)
    assert s > 0 and -128 <= z <= 127
    assert s * (z - z) == 0.0  # real 0 is the integer z
    q_lo, q_hi = s * (-128 - z), s * (127 - z)
    assert q_lo <= min(lo, 0.0) + s / 2 and q_hi >= max(hi, 0.0) - s / 2


def test_histogram_growth_merges_bins_exactly() -> None:
    rng = np.random.default_rng(0)
    chunks = [rng.normal(0, 0.3, 5000), rng.normal(0, 3, 5000), rng.uniform(-40, 17, 5000)]
    st = TensorStats()
    for c in chunks:
        st.update(c.astype(np.float32))
    data = np.concatenate(chunks).astype(np.float32).astype(np.float64)
    assert st.radius == 64.0  # the smallest power of two >= 40
    expect, _ = np.histogram(data, bins=BINS, range=(-st.radius, st.radius))
    np.testing.assert_array_equal(st.hist, expect)
    assert (st.lo, st.hi) == (float(data.min()), float(data.max()))


def _quant_error(data: np.ndarray, lo: float, hi: float) -> float:
    s, z = asymmetric_params(lo, hi)
    q = np.clip(np.round(data / s) + z, -128, 127)
    return float(np.mean((s * (q - z) - data) ** 2))


def test_percentile_ignores_rare_outliers_and_minmax_keeps_them() -> None:
    rng = np.random.default_rng(1)
    data = np.concatenate([rng.normal(0, 1, 200_000), np.full(5, 500.0)]).astype(np.float32)
    st = TensorStats()
    st.update(data)
    assert st.hi == 500.0
    lo, hi = percentile(st, 99.99)
    assert 3.0 < hi < 6.0 and -6.0 < lo < -3.0


def test_mse_range_has_less_error_than_minmax_on_heavy_tails() -> None:
    data = np.random.default_rng(2).laplace(0, 1, 100_000).astype(np.float32)
    st = TensorStats()
    st.update(data)
    lo, hi = mse(st)
    assert _quant_error(data, lo, hi) < 0.9 * _quant_error(data, st.lo, st.hi)
    # the analytic optimum for a Laplace(b) at 8 bits clips at about 9.89 b (Banner et al.,
    # ACIQ, 2019); the sample maximum here is above 10
    assert 8.5 < (hi - lo) / 2 < 10.5 < (st.hi - st.lo) / 2


def test_weights_are_symmetric_per_channel() -> None:
    rng = np.random.default_rng(3)
    w = rng.normal(size=(4, 3, 3, 2)) * np.array([1, 10, 0.01, 0]).reshape(4, 1, 1, 1)
    q, quant = quantize_weights(w.astype(np.float32), axis=0)
    assert quant.axis == 0 and np.all(quant.zero_point == 0)
    assert q.dtype == np.int8 and q.min() >= -127
    expect = np.abs(w[:3]).reshape(3, -1).max(axis=1) / 127
    np.testing.assert_allclose(quant.scale[:3], expect, rtol=1e-6)
    assert quant.scale[3] > 0 and not q[3].any()  # an all-zero channel
    deq = q * quant.scale.reshape(4, 1, 1, 1)
    assert np.all(np.abs(deq - w) <= quant.scale.reshape(4, 1, 1, 1) / 2 + 1e-7)
    # the bias scale is TFLite's float32 product
    bs = bias_scale(0.1, quant)
    assert bs.dtype == np.float32 and bs[1] == np.float32(0.1) * quant.scale[1]


# --- a float CNN with every convention in it -------------------------------------------------


def _bn(b: OnnxBuilder, x: str, c: int) -> str:
    return b.bn(x, c)


def cnn_model(seed: int = 0) -> Any:
    """Conv+BN+ReLU, a ResNet-style max pool, depthwise+ReLU6, a residual add, sigmoid and
    tanh branches, concat, slice, pad, a strided conv, global pool, dense and softmax."""
    b = OnnxBuilder(seed)
    r1 = b.node("Relu", [_bn(b, b.node("Conv", [X, b.w(8, 3, 5, 5), b.w(8)], pads=[2, 2, 2, 2],
                                       strides=[2, 2]), 8)])
    p1 = b.node("MaxPool", [r1], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    a = b.node("Conv", [p1, b.w(8, 1, 3, 3), b.w(8)], group=8, pads=[1, 1, 1, 1])
    a = b.node("Clip", [_bn(b, a, 8), b.f32(0), b.f32(6)])
    s = b.node("Relu", [b.node("Add", [a, b.node("Conv", [p1, b.w(8, 8, 1, 1), b.w(8)])])])
    sig = b.node("Sigmoid", [b.node("Conv", [s, b.w(4, 8, 1, 1), b.w(4)])])
    th = b.node("Tanh", [b.node("Conv", [s, b.w(4, 8, 1, 1), b.w(4)])])
    cat = b.node("Concat", [s, b.node("Mul", [sig, th])], axis=1)
    sl = b.node("Slice", [cat, b.ints(0, 1), b.ints(10, 8), b.ints(1, 2)])
    pd = b.node("Pad", [sl, b.ints(0, 0, 1, 0, 0, 0, 0, 1)])
    c3 = b.node("Relu", [b.node("Conv", [pd, b.w(16, 10, 3, 3), b.w(16)], strides=[2, 2],
                                pads=[0, 1, 1, 1])])
    f = b.node("Flatten", [b.node("GlobalAveragePool", [c3])])
    y = b.node("Softmax", [b.node("Gemm", [f, b.w(10, 16), b.w(10)], transB=1)])
    return b.model({X: [1, 3, 32, 32]}, [y])


@pytest.fixture(scope="module")
def cnn() -> Graph:
    return read_onnx(cnn_model().SerializeToString(), "cnn.onnx", "cnn")


@pytest.fixture(scope="module")
def calib() -> np.ndarray:
    return np.random.default_rng(10).normal(size=(64, 3, 32, 32)).astype(np.float32)


@pytest.fixture(scope="module")
def held_out() -> np.ndarray:
    return np.random.default_rng(11).normal(size=(16, 3, 32, 32)).astype(np.float32)


@pytest.fixture(scope="module")
def quantized(cnn: Graph, calib: np.ndarray) -> Graph:
    return quantize(cnn, [calib], QuantConfig())


def _by_kind(g: Graph, kind: str) -> list[Any]:
    return [op for op in g.ops if op.kind == kind]


def _sq(g: Graph, name: str) -> tuple[float, int]:
    q = g.tensor(name).quant
    assert q is not None and not q.per_channel
    return q.scalar_scale(), q.scalar_zero_point()


def test_tflite_conventions(quantized: Graph) -> None:
    g = quantized
    for t in g.activations():
        assert t.dtype == "int8" and t.quant is not None and t.quant.scale.size == 1
    assert _sq(g, _by_kind(g, "softmax")[0].outputs[0]) == (1 / 256, -128)
    assert _sq(g, _by_kind(g, "logistic")[0].outputs[0]) == (1 / 256, -128)
    assert _sq(g, _by_kind(g, "tanh")[0].outputs[0]) == (1 / 128, 0)
    # ops that copy bytes keep one quantization from input to output
    for kind in ("max_pool2d", "avg_pool2d", "pad", "strided_slice", "reshape"):
        for op in _by_kind(g, kind):
            assert _sq(g, op.inputs[0]) == _sq(g, op.outputs[0]), op.name
    cat = _by_kind(g, "concat")[0]
    assert {_sq(g, n) for n in cat.inputs} == {_sq(g, cat.outputs[0])}
    # a ReLU output starts at real 0: zero point -128 (the max pool shares it)
    assert _sq(g, _by_kind(g, "max_pool2d")[0].outputs[0])[1] == -128


def test_weight_and_bias_conventions(quantized: Graph) -> None:
    g = quantized
    for op in _by_kind(g, "conv2d") + _by_kind(g, "depthwise_conv2d") + \
            _by_kind(g, "fully_connected"):
        w, b = g.tensor(op.inputs[1]), g.tensor(op.inputs[2])
        assert w.dtype == "int8" and w.quant is not None and np.all(w.quant.zero_point == 0)
        assert np.abs(w.data.astype(int)).max() == 127  # every scale is set by its largest weight
        if op.kind == "fully_connected":
            assert not w.quant.per_channel
        else:
            axis = 0 if op.kind == "conv2d" else 3
            assert w.quant.axis == axis and w.quant.scale.size == w.shape[axis]
        in_s = g.tensor(op.inputs[0]).quant.scalar_scale()
        assert b.dtype == "int32" and b.quant is not None
        np.testing.assert_array_equal(
            b.quant.scale, (np.float32(in_s) * w.quant.scale.astype(np.float32)))


def test_per_channel_modes(cnn: Graph, calib: np.ndarray) -> None:
    every = quantize(cnn, [calib[:8]], QuantConfig(per_channel="all"))
    fc = _by_kind(every, "fully_connected")[0]
    assert every.tensor(fc.inputs[1]).quant.axis == 0
    none = quantize(cnn, [calib[:8]], QuantConfig(per_channel="none"))
    assert all(not none.tensor(op.inputs[1]).quant.per_channel for op in none.ops
               if op.kind in ("conv2d", "depthwise_conv2d"))


def test_two_fixed_formats_meeting_in_a_concat_get_a_requantize() -> None:
    b = OnnxBuilder(4)
    sm = b.node("Softmax", [b.node("Conv", [X, b.w(4, 3, 1, 1)])], axis=1)
    th = b.node("Tanh", [b.node("Conv", [X, b.w(4, 3, 1, 1)])])
    y = b.node("Concat", [sm, th], axis=1)
    g = read_onnx(b.model({X: [1, 3, 6, 6]}, [y]).SerializeToString())
    q = quantize(g, [np.random.default_rng(0).normal(size=(16, 3, 6, 6))])
    requant = _by_kind(q, "quantize")
    assert len(requant) == 1
    cat = _by_kind(q, "concat")[0]
    assert requant[0].outputs[0] in cat.inputs
    assert {_sq(q, n) for n in cat.inputs} == {_sq(q, cat.outputs[0])}
    _assert_export_bit_exact(q, samples=10)


def test_a_constant_difference_still_compiles() -> None:
    """x - x has an empty range; TFLM's SUB needs its output scale above 2^-20 x its inputs'."""
    b = OnnxBuilder(5)
    c = b.node("Conv", [X, b.w(4, 3, 1, 1)])
    y = b.node("Sub", [c, c])
    g = read_onnx(b.model({X: [1, 3, 6, 6]}, [y]).SerializeToString())
    q = quantize(g, [np.random.default_rng(0).normal(size=(8, 3, 6, 6))])
    s_in, s_out = _sq(q, c)[0], _sq(q, y)[0]
    assert 2 * s_in < (1 << 20) * s_out
    _assert_export_bit_exact(q, samples=5, varying=False)


def _sqnr_of(q: Graph, f: Graph, x_nchw: np.ndarray) -> float:
    """Dequantized outputs of the generated C for q, against the float reference of f."""
    model = HostModel(compile_graph(q))
    qi, qo = q.tensor(q.inputs[0]).quant, q.tensor(q.outputs[0]).quant
    x = x_nchw.transpose(0, 2, 3, 1)[:, None]
    ref = FloatModel(f).run([x])[0]
    got = np.stack([dequantize_array(model.run([quantize_array(s, qi)])[0], qo) for s in x])
    return sqnr_db(ref.reshape(len(x), -1), got.reshape(len(x), -1))


def _assert_export_bit_exact(q: Graph, samples: int = 40, varying: bool = True) -> None:
    compiled = compile_graph(q)
    model = HostModel(compiled)
    tflite = export_tflite(q)
    inputs = random_inputs(compiled.graph, samples, seed=5)
    ours = [model.run(s) for s in inputs]
    ref = run_tflm(tflite, inputs)
    for n, (a, r) in enumerate(zip(ours, ref, strict=True)):
        for k, (x, y) in enumerate(zip(a, r, strict=True)):
            assert x.tobytes() == np.ascontiguousarray(y, dtype=x.dtype).tobytes(), (n, k)
    assert len({o[0].tobytes() for o in ours}) > 1 or not varying


def test_quantized_cnn_is_accurate(quantized: Graph, cnn: Graph, held_out: np.ndarray) -> None:
    assert _sqnr_of(quantized, cnn, held_out) > 30.0


def test_exported_tflite_runs_bit_exact_in_tflm(quantized: Graph) -> None:
    _assert_export_bit_exact(quantized)
    # the exported file reads back as the same graph (PAD ops in front of windows included)
    back = read_tflite(export_tflite(quantized), "<export>", quantized.name)
    assert [op.kind for op in back.ops] == [op.kind for op in quantized.ops]


def test_data_free_mode(cnn: Graph, held_out: np.ndarray) -> None:
    q = quantize(cnn, None, QuantConfig(input_range=(-3.0, 3.0)), data_free=True)
    assert q.meta["quantization"]["ranges_from"] == "batchnorm"
    # the ranges of BatchNorm-folded layers are beta +- 6 |gamma|, clipped by their ReLU
    first = q.ops[1]
    assert first.kind == "conv2d" and first.attrs["activation"] == "relu"
    st = cnn.meta["bn_stats"][first.name]
    hi = max(m + 6 * s for m, s in zip(st["mean"], st["std"], strict=True))
    scale, zp = _sq(q, first.outputs[0])
    assert zp == -128 and abs(scale * 255 - hi) < 1e-5 * hi + 1e-6
    assert _sqnr_of(q, cnn, held_out) > 20.0
    _assert_export_bit_exact(q, samples=10)


def test_data_free_without_batchnorm_uses_synthetic_inputs(cnn: Graph,
                                                            held_out: np.ndarray) -> None:
    plain = Graph(cnn.name, cnn.tensors, cnn.ops, cnn.inputs, cnn.outputs,
                  {k: v for k, v in cnn.meta.items() if k != "bn_stats"})
    q = quantize(plain, None, QuantConfig(input_range=(-3.0, 3.0)), data_free=True)
    assert q.meta["quantization"]["ranges_from"] == "synthetic"
    assert q.meta["quantization"]["samples"] == 64
    assert _sqnr_of(q, cnn, held_out) > 20.0


@pytest.mark.parametrize("method,bc", [("percentile", False), ("mse", True)])
def test_other_estimators_and_bias_correction(cnn: Graph, calib: np.ndarray,
                                              held_out: np.ndarray, method: str,
                                              bc: bool) -> None:
    q = quantize(cnn, [calib], QuantConfig(method=method, bias_correction=bc))
    assert q.meta["quantization"]["method"] == method
    assert _sqnr_of(q, cnn, held_out) > 25.0


# --- calibration data ---------------------------------------------------------------------------


def _params(g: Graph) -> list[Any]:
    return [(n, t.quant.scale.tolist(), t.quant.zero_point.tolist())
            for n, t in sorted(g.tensors.items()) if t.quant is not None]


def test_calibration_sources_agree(cnn: Graph, calib: np.ndarray, tmp_path: Path) -> None:
    data = calib[:12]
    # chunks of 5 everywhere: a float matrix product may round differently per batch size
    reference = _params(quantize(cnn, [data], QuantConfig(chunk=5)))
    np.savez(tmp_path / "named.npz", x=data)
    np.savez(tmp_path / "positional.npz", data)
    folder = tmp_path / "samples"
    folder.mkdir()
    for i, s in enumerate(data):
        np.save(folder / f"{i:03d}.npy", s)
    sources: list[Any] = [tmp_path / "named.npz", str(tmp_path / "positional.npz"), folder,
                          list(data), [{"x": data[:5]}, {"x": data[5:]}],
                          [data.transpose(0, 2, 3, 1)]]  # already NHWC
    for src in sources:
        assert _params(quantize(cnn, src, QuantConfig(chunk=5))) == reference, src
    assert Calibration(cnn, tmp_path / "named.npz").total == 12
    assert _params(quantize(cnn, [calib], QuantConfig(limit=12, chunk=5))) == reference


def test_bad_calibration_data_is_a_clean_error(cnn: Graph, tmp_path: Path) -> None:
    with pytest.raises(EdgekitError, match="fits neither"):
        quantize(cnn, [np.zeros((4, 3, 31, 32), np.float32)])
    with pytest.raises(EdgekitError, match="not found"):
        quantize(cnn, tmp_path / "missing.npz")
    with pytest.raises(EdgekitError, match="no calibration data"):
        quantize(cnn, None)


def test_progress_only_on_request(cnn: Graph, calib: np.ndarray,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    quantize(cnn, [calib[:4]], QuantConfig())  # stderr is not a terminal here
    assert capsys.readouterr().err == ""
    quantize(cnn, [calib[:4]], QuantConfig(), progress=True)
    assert "calibrating: 4 samples" in capsys.readouterr().err


def test_an_int8_model_is_refused(quantized: Graph) -> None:
    with pytest.raises(EdgekitError, match="already quantized"):
        quantize(quantized, [np.zeros((1, 3, 32, 32), np.float32)])


# --- the commands -----------------------------------------------------------------------------


def test_cli_quantize_export_verify_generate(tmp_path: Path, calib: np.ndarray,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    from edgekit.cli import main

    model = tmp_path / "cnn.onnx"
    onnx.save(cnn_model(), str(model))
    np.savez(tmp_path / "calib.npz", x=calib[:32])
    ekir, tfl = tmp_path / "cnn.ekir", tmp_path / "cnn_int8.tflite"
    assert main(["quantize", str(model), "--calib", str(tmp_path / "calib.npz"),
                 "--method", "percentile", "-o", str(ekir)]) == 0
    out = capsys.readouterr().out
    assert "32 calibration samples" in out and "dB" in out
    assert main(["export", str(ekir), "--format", "tflite", "-o", str(tfl)]) == 0
    assert main(["verify", str(ekir), "--reference", str(tfl), "--samples", "20"]) == 0
    assert "bit-exact" in capsys.readouterr().out
    assert main(["generate", str(ekir), "-o", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "cnn.c").is_file()
    assert main(["quantize", str(model), "--data-free", "-o", str(tmp_path / "df.ekir")]) == 0
    assert main(["quantize", str(model), "-o", str(tmp_path / "none.ekir")]) == 2
    assert main(["export", str(model), "--format", "tflite", "-o", str(tmp_path / "x.tflite")]) == 2
    assert "quantize` first" in capsys.readouterr().err


# --- the MLPerf Tiny float models, next to the official int8 files ------------------------------

MLPERF = {
    "ad": ("ad01_fp32.tflite", "ad01_int8.tflite"),
    "kws": ("kws_ref_model_float32.tflite", "kws_ref_model.tflite"),
    "vww": ("vww_96_float.tflite", "vww_96_int8.tflite"),
    "ic": ("pretrainedResnet.tflite", "pretrainedResnet_quant.tflite"),
}


def mlperf_sqnr(key: str, calib_n: int = 100, eval_n: int = 30, cfg: QuantConfig | None = None
                ) -> dict[str, Any]:
    """Quantize the float model on inputs drawn uniformly from the official int8 model's input
    range; return SQNR (dB) of ours (generated C) and of the official file (TFLM) against the
    float model on the same held-out inputs, plus whether our export runs bit-exact in TFLM."""
    fname, oname = MLPERF[key]
    fpath, opath = MLPERF_DIR / fname, MLPERF_DIR / oname
    if not fpath.is_file() or not opath.is_file():
        pytest.skip(f"MLPerf Tiny models not found in {MLPERF_DIR}")
    fg = load_tflite(fpath)
    official = load_tflite(opath)
    oq_in, oq_out = (official.tensor(official.inputs[0]).quant,
                     official.tensor(official.outputs[0]).quant)
    s, z = oq_in.scalar_scale(), oq_in.scalar_zero_point()
    lo, hi = s * (-128 - z), s * (127 - z)
    shape = fg.tensor(fg.inputs[0]).shape
    rng = np.random.default_rng(0)
    cal = rng.uniform(lo, hi, (calib_n, *shape)).astype(np.float32)
    test = rng.uniform(lo, hi, (eval_n, *shape)).astype(np.float32)
    ref = FloatModel(fg).run([test])[0].reshape(eval_n, -1)
    off = run_tflm(opath.read_bytes(), [[quantize_array(x, oq_in)] for x in test])
    off_y = np.stack([dequantize_array(np.asarray(o[0]), oq_out) for o in off]).reshape(eval_n, -1)
    q = quantize(fg, [cal], cfg or QuantConfig())
    host = HostModel(compile_graph(q))
    qi, qo = q.tensor(q.inputs[0]).quant, q.tensor(q.outputs[0]).quant
    feeds = [[quantize_array(x, qi)] for x in test]
    ours = [host.run(f)[0] for f in feeds]
    tflm_ours = run_tflm(export_tflite(q), feeds)
    our_y = np.stack([dequantize_array(o, qo) for o in ours]).reshape(eval_n, -1)
    return {
        "ours": sqnr_db(ref, our_y),
        "official": sqnr_db(ref, off_y),
        "bit_exact": all(a.tobytes() == np.asarray(b[0], np.int8).tobytes()
                         for a, b in zip(ours, tflm_ours, strict=True)),
    }


@pytest.mark.mlperf
@pytest.mark.parametrize("key", ["ad", "kws", "vww", "ic"])
def test_mlperf_float_models_quantize_at_least_as_well_as_the_official_int8(key: str) -> None:
    r = mlperf_sqnr(key)
    print(f"\n{key}: SQNR ours {r['ours']:.2f} dB, official int8 {r['official']:.2f} dB")
    assert r["bit_exact"]
    assert r["ours"] >= r["official"] - 1.0
    assert r["ours"] > 15.0


@pytest.mark.mlperf
@pytest.mark.parametrize("name", ["kws_ref_model.tflite", "ad01_int8.tflite"])
def test_export_round_trips_official_int8_models(name: str) -> None:
    """Read by the TFLite frontend and written back, a converter's model runs identically."""
    path = MLPERF_DIR / name
    if not path.is_file():
        pytest.skip(f"MLPerf Tiny models not found in {MLPERF_DIR}")
    graph = load_tflite(path)
    inputs = random_inputs(graph, 10, seed=3)
    want = run_tflm(path.read_bytes(), inputs)
    got = run_tflm(export_tflite(graph), inputs)
    for a, b in zip(want, got, strict=True):
        np.testing.assert_array_equal(a[0], b[0])


def test_float_reference_matches_litert_on_a_float_tflite() -> None:
    """LiteRT runs in a child process: its bundled kernels must not share a process with TFLM."""
    path = MLPERF_DIR / "vww_96_float.tflite"
    if not path.is_file():
        pytest.skip(f"MLPerf Tiny models not found in {MLPERF_DIR}")
    g = load_tflite(path)
    x = np.random.default_rng(4).uniform(0, 1, (3, *g.tensor(g.inputs[0]).shape))
    x = x.astype(np.float32)
    script = textwrap.dedent("""
        import sys, numpy as np
        from ai_edge_litert.interpreter import Interpreter
        it = Interpreter(model_path=sys.argv[1]); it.allocate_tensors()
        i, o = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]
        xs = np.frombuffer(sys.stdin.buffer.read(), np.float32).reshape(-1, 1, 96, 96, 3)
        for s in xs:
            it.set_tensor(i, s); it.invoke(); sys.stdout.buffer.write(it.get_tensor(o).tobytes())
    """)
    proc = subprocess.run([sys.executable, "-c", script, str(path)], input=x.tobytes(),
                          capture_output=True, check=True, timeout=120)
    ref = np.frombuffer(proc.stdout, np.float32).reshape(3, -1)
    ours = FloatModel(g).run([x])[0].reshape(3, -1)
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-5)


# --- PyTorch round trip -----------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the TorchScript exporter
def test_pytorch_exported_onnx_round_trip(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    nn = torch.nn

    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.MaxPool2d(3, stride=2, padding=1),
        nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.BatchNorm2d(8), nn.ReLU6(),
        nn.Conv2d(8, 16, 1), nn.ReLU(),
        nn.Flatten(), nn.Linear(16 * 8 * 8, 10), nn.Softmax(dim=1),
    )
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    net.eval()
    x = torch.randn(8, 3, 32, 32)
    path = tmp_path / "net.onnx"
    torch.onnx.export(net, (x[:1],), str(path), opset_version=17, input_names=["x"],
                      dynamo=False)
    graph = read_onnx(path.read_bytes(), str(path), "net")
    # PyTorch's padding=1 at stride 2 is not TFLite's SAME: an explicit pad in front
    assert [op.kind for op in graph.ops][:2] == ["pad", "conv2d"]
    with torch.no_grad():
        want = net(x).numpy()
    got = FloatModel(graph).run([x.numpy().transpose(0, 2, 3, 1)[:, None]])[0].reshape(8, -1)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    q = quantize(graph, [np.random.default_rng(0).normal(size=(32, 3, 32, 32))], QuantConfig())
    _assert_export_bit_exact(q, samples=10)
    assert _sqnr_of(q, graph, x.numpy()) > 25.0
