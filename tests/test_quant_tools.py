"""The quantizer's side commands: QDQ ONNX export against onnxruntime, `report --quant`,
`quantize --precision fp16`, and the refusals.

The QDQ bound (docs/quantize.md): onnxruntime with ORT_DISABLE_ALL evaluates each op in float and
rounds once at its QuantizeLinear, while the int8 kernels requantize in fixed point. Given the
same int8 inputs, each op's int8 output is within 1 LSB of ours. Ours is taken from TFLite Micro
running the exported .tflite, which the quantizer tests prove bit-exact with the generated C.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import onnx  # noqa: E402

from edgekit.cli import main  # noqa: E402
from edgekit.export.onnx_qdq import export_onnx_qdq  # noqa: E402
from edgekit.export.tflite import export_tflite  # noqa: E402
from edgekit.frontends.onnx import read_onnx  # noqa: E402
from edgekit.ir import serialize  # noqa: E402
from edgekit.ir.graph import Graph  # noqa: E402
from edgekit.quantize import (  # noqa: E402
    QuantConfig,
    dequantize_array,
    quantize,
    quantize_array,
    sqnr_db,
)
from edgekit.reference.float_ref import FloatModel  # noqa: E402
from edgekit.reference.tflm import run_tflm, tflm_all_tensors  # noqa: E402
from tests.test_onnx_frontend import OnnxBuilder, X  # noqa: E402
from tests.test_quantizer import cnn_model  # noqa: E402


def _session(model: bytes) -> object:
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def cnn() -> Graph:
    return read_onnx(cnn_model().SerializeToString(), "cnn.onnx", "cnn")


@pytest.fixture(scope="module")
def qcnn(cnn: Graph) -> Graph:
    calib = np.random.default_rng(20).normal(size=(64, 3, 32, 32)).astype(np.float32)
    return quantize(cnn, [calib], QuantConfig())


def _lsb_gap(ort_out: np.ndarray, ours: np.ndarray, t: object) -> float:
    q = t.quant  # type: ignore[attr-defined]
    # ORT's dequantized output is (q - z)·s in float32: dividing back lands next to an integer
    theirs = np.rint(ort_out.astype(np.float64).reshape(-1) / q.scalar_scale())
    return float(np.abs(theirs - (ours.astype(np.float64).reshape(-1) - q.scalar_zero_point()))
                 .max())


def test_qdq_export_each_op_within_one_lsb_of_ours(qcnn: Graph) -> None:
    """Every op of the CNN alone, fed the int8 values our model computed before it."""
    q = qcnn
    names = q.meta["tflite_tensor_names"]
    x = np.random.default_rng(21).normal(size=(1, 32, 32, 3)).astype(np.float32)
    raw = tflm_all_tensors(export_tflite(q), [quantize_array(x, q.tensor(q.inputs[0]).quant)])
    ours = {names[i]: v for i, v in raw.items() if i < len(names)}
    seen = set()
    for op in q.ops:
        ins = [n for n in op.inputs if n and not q.tensor(n).is_const]
        used = set(op.inputs) | set(op.outputs)
        one = Graph(op.name, {n: copy.deepcopy(t) for n, t in q.tensors.items() if n in used},
                    [copy.deepcopy(op)], ins, list(op.outputs))
        feed = {n: dequantize_array(ours[n].reshape(q.tensor(n).shape), q.tensor(n).quant)
                for n in ins}
        got = _session(export_onnx_qdq(one)).run(None, feed)[0]
        out = q.tensor(op.outputs[0])
        assert _lsb_gap(got, ours[out.name], out) <= 1.0, op.name
        seen.add(op.kind)
    # the CNN reaches every kind the exporter maps, except the ones it has no use for
    assert {"conv2d", "depthwise_conv2d", "max_pool2d", "avg_pool2d", "add", "mul", "logistic",
            "tanh", "concat", "strided_slice", "pad", "reshape", "fully_connected",
            "softmax"} <= seen


def test_qdq_export_takes_the_onnx_layout_and_tracks_our_int8_model(cnn: Graph,
                                                                    qcnn: Graph) -> None:
    """The exported model takes NCHW like the float ONNX model did. Per-op differences of one
    LSB propagate, so end to end the outputs differ by a few LSB, and both are equally close
    to the float model."""
    q = qcnn
    xs = np.random.default_rng(22).normal(size=(8, 3, 32, 32)).astype(np.float32)
    model = onnx.load_from_string(export_onnx_qdq(q))
    assert [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim] == [1, 3, 32, 32]
    kinds = {n.op_type for n in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv", "Gemm"} <= kinds
    sess = _session(model.SerializeToString())
    out = q.tensor(q.outputs[0])
    nhwc = xs.transpose(0, 2, 3, 1)[:, None]
    ours = run_tflm(export_tflite(q),
                    [[quantize_array(x, q.tensor(q.inputs[0]).quant)] for x in nhwc])
    theirs = np.stack([sess.run(None, {q.inputs[0]: x[None]})[0] for x in xs])
    worst = max(_lsb_gap(t, np.asarray(o[0]), out) for t, o in zip(theirs, ours, strict=True))
    assert worst <= 8.0
    ref = FloatModel(cnn).run([nhwc])[0]
    ours_f = np.stack([dequantize_array(np.asarray(o[0]), out.quant) for o in ours])
    assert abs(sqnr_db(ref, theirs.reshape(ref.shape)) - sqnr_db(ref, ours_f.reshape(ref.shape))) \
        < 1.0


def _cli_model(tmp_path: Path) -> tuple[Path, Path]:
    model = tmp_path / "cnn.onnx"
    onnx.save(cnn_model(), str(model))
    calib = np.random.default_rng(23).normal(size=(24, 3, 32, 32)).astype(np.float32)
    np.savez(tmp_path / "calib.npz", x=calib)
    return model, tmp_path / "calib.npz"


def test_report_quant_lists_every_layer_with_its_sqnr(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    model, calib = _cli_model(tmp_path)
    ekir = tmp_path / "cnn.ekir"
    assert main(["quantize", str(model), "--calib", str(calib), "--method", "mse",
                 "--per-channel", "--act", "int8", "--check", "6", "-o", str(ekir)]) == 0
    assert "report" in capsys.readouterr().out
    q = serialize.loads(ekir.read_bytes(), str(ekir))
    layers = q.meta["quantization"]["layers"]
    int8_tensors = [q.inputs[0]] + [op.outputs[0] for op in q.ops]
    assert [r["tensor"] for r in layers] == int8_tensors
    # the output row, recomputed here from TFLM's outputs and the float model
    fg = read_onnx(model.read_bytes(), str(model), "cnn")
    xs = np.load(calib)["x"][:6].transpose(0, 2, 3, 1)[:, None]
    ref = FloatModel(fg).run([xs])[0].reshape(6, -1)
    out = q.tensor(q.outputs[0])
    got = run_tflm(export_tflite(q), [[quantize_array(x, q.tensor(q.inputs[0]).quant)]
                                      for x in xs])
    deq = np.stack([dequantize_array(np.asarray(g[0]), out.quant) for g in got]).reshape(6, -1)
    assert layers[-1]["sqnr_db"] == pytest.approx(sqnr_db(ref, deq), abs=0.01)
    # quantizing the input loses something, so the input row is finite; the float range
    # observed lies inside what minmax-calibrated input int8 covers
    assert layers[0]["sqnr_db"] is not None and math.isfinite(layers[0]["sqnr_db"])
    assert layers[0]["int8_min"] <= layers[0]["float_min"] and layers[0]["clipped"] == 0.0
    assert main(["report", str(ekir), "--quant"]) == 0
    text = capsys.readouterr().out
    assert "SQNR dB" in text and "lowest SQNR" in text
    assert len([ln for ln in text.splitlines() if " conv2d " in ln]) == \
        sum(op.kind == "conv2d" for op in q.ops)
    assert main(["quantize", str(model), "--calib", str(calib), "--check", "0",
                 "-o", str(tmp_path / "nocheck.ekir")]) == 0
    capsys.readouterr()
    assert main(["report", str(tmp_path / "nocheck.ekir"), "--quant"]) == 0
    assert "no per-layer SQNR recorded" in capsys.readouterr().out
    assert main(["report", str(model), "--quant"]) == 2
    assert "not quantized" in capsys.readouterr().err


def test_issue_spellings_of_export_write_next_to_the_model(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model, calib = _cli_model(tmp_path)
    ekir = tmp_path / "model.ekir"
    assert main(["quantize", str(model), "--calib", str(calib), "--check", "0",
                 "-o", str(ekir)]) == 0
    assert main(["export", str(ekir), "--format", "tflite"]) == 0
    assert main(["export", str(ekir), "--format", "onnx-qdq"]) == 0
    assert (tmp_path / "model.tflite").is_file()
    onnx.checker.check_model(onnx.load(str(tmp_path / "model.qdq.onnx")))
    assert main(["export", str(ekir), "--as", "cmake"]) == 2
    assert "needs -o" in capsys.readouterr().err


def test_precision_fp16_writes_a_float_contract_model(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    _, calib = _cli_model(tmp_path)
    # the ops the FP16 kernels cover (docs/numerics-fp16.md)
    b = OnnxBuilder(5)
    c = b.node("Relu", [b.bn(b.node("Conv", [X, b.w(8, 3, 3, 3), b.w(8)], pads=[1, 1, 1, 1]), 8)])
    p = b.node("Flatten", [b.node("GlobalAveragePool", [b.node("MaxPool", [c], kernel_shape=[2, 2],
                                                                  strides=[2, 2])])])
    y = b.node("Softmax", [b.node("Gemm", [p, b.w(10, 8), b.w(10)], transB=1)])
    model = tmp_path / "small.onnx"
    onnx.save(b.model({X: [1, 3, 32, 32]}, [y]), str(model))
    out = tmp_path / "model16.ekir"
    assert main(["quantize", str(model), "--precision", "fp16", "-o", str(out)]) == 0
    g = serialize.loads(out.read_bytes(), str(out))
    assert g.meta["precision"] == "fp16"
    assert {t.dtype for t in g.activations()} == {"float16"}
    # the generated C against the numpy golden model of the FP16 contract
    assert main(["verify", str(out), "--precision", "fp16", "--samples", "3"]) == 0
    assert "bit-exact" in capsys.readouterr().out
    assert main(["quantize", str(model), "--precision", "fp16", "--calib", str(calib),
                 "-o", str(tmp_path / "x.ekir")]) == 2
    assert "cannot be combined" in capsys.readouterr().err
    assert not (tmp_path / "x.ekir").exists()


def test_int16_activations_from_the_command_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model, calib = _cli_model(tmp_path)
    out = tmp_path / "m16.ekir"
    assert main(["quantize", str(model), "--calib", str(calib), "--act", "int16",
                 "--check", "2", "-o", str(out)]) == 0
    assert "int16 activations (16x8) in" in capsys.readouterr().out
    q = serialize.loads(out.read_bytes(), str(out))
    assert q.tensor(q.inputs[0]).dtype == "int16" and q.meta["quantization"]["int16_layers"]
    # the per-layer check covers the int16 tensors (run in TFLM with int16 inputs)
    rows = {r["tensor"]: r for r in q.meta["quantization"]["layers"]}
    assert q.inputs[0] in rows
    db = rows[q.inputs[0]]["sqnr_db"]
    assert db is None or db > 60  # int16 input rounding alone: far above any int8 tensor
    ref = tmp_path / "m16.tflite"
    assert main(["export", str(out), "--format", "tflite", "-o", str(ref)]) == 0
    assert main(["verify", str(out), "--reference", str(ref), "--samples", "3"]) == 0
    assert "bit-exact" in capsys.readouterr().out
    # a layer name that does not exist: one message, no file
    bad = tmp_path / "bad.ekir"
    assert main(["quantize", str(model), "--calib", str(calib), "--int16-layers", "nope",
                 "-o", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "nope" in err and "Traceback" not in err and not bad.exists()


def test_search_reports_its_choices_and_keeps_the_budget(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from edgekit.pipeline import compile_graph

    model, calib = _cli_model(tmp_path)
    out = tmp_path / "s.ekir"
    assert main(["quantize", str(model), "--calib", str(calib), "--search", "--flash-budget",
                 "64k", "--check", "0", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "baseline" in text and "result:" in text and "not searched" in text
    q = serialize.loads(out.read_bytes(), str(out))
    s = q.meta["quantization"]["search"]
    assert s["result"]["sqnr_db"] >= s["baseline"]["sqnr_db"]
    kept = [st for st in s["steps"] if st["kept"]]
    assert all(st["gain_db"] >= 0.05 for st in kept)
    # one kept step at least per recorded choice (a layer may improve twice: percentile, then mse)
    assert len(kept) >= len(s["methods"]) + len(s["dense_per_channel"]) + \
        (s["default_method"] != "minmax") + s["bias_correction"]
    # the result's figures, recomputed here: the compiled size, and the SQNR on the first 16
    # calibration samples with TFLM running the exported model
    c = compile_graph(q)
    flash = sum(t.nbytes for t in c.graph.tensors.values() if t.is_const)
    assert flash == s["result"]["flash"] <= 64 * 1024
    fg = read_onnx(model.read_bytes(), str(model), "cnn")
    xs = np.load(calib)["x"][:16].transpose(0, 2, 3, 1)[:, None]
    ref = FloatModel(fg).run([xs])[0].reshape(16, -1)
    o = q.tensor(q.outputs[0])
    ti = q.tensor(q.inputs[0])  # int16 when the search chose 16x8 for the first layers
    got = run_tflm(export_tflite(q), [[quantize_array(x, ti.quant, ti.dtype)] for x in xs])
    deq = np.stack([dequantize_array(np.asarray(g[0]), o.quant) for g in got]).reshape(16, -1)
    assert s["result"]["sqnr_db"] == pytest.approx(sqnr_db(ref, deq), abs=0.01)
    # a budget the smallest int8 model does not fit is one error, and nothing is written
    assert main(["quantize", str(model), "--calib", str(calib), "--search", "--flash-budget",
                 "1k", "-o", str(tmp_path / "tiny.ekir")]) == 2
    assert "over the budget" in capsys.readouterr().err
    assert not (tmp_path / "tiny.ekir").exists()


def _imbalanced_model() -> object:
    """conv -> ReLU -> conv where conv 1's output channels are scaled by factors from 1/30 to
    30 and conv 2's inputs by the inverse: the float function of a balanced network, with an
    activation between them that one per-tensor int8 scale cannot cover. What cross-layer
    equalisation is for."""
    b = OnnxBuilder(7)
    rng = np.random.default_rng(7)
    d = np.array([1, 30, 1 / 30, 5, 0.2, 12, 1 / 12, 2], np.float32)
    w1 = rng.normal(size=(8, 3, 3, 3)).astype(np.float32) / 5 * d[:, None, None, None]
    b1 = rng.normal(0, 0.1, 8).astype(np.float32) * d
    w2 = rng.normal(size=(8, 8, 3, 3)).astype(np.float32) / 8 / d[None, :, None, None]
    c1 = b.node("Relu", [b.node("Conv", [X, b.const(w1), b.const(b1)], pads=[1, 1, 1, 1])])
    c2 = b.node("Relu", [b.node("Conv", [c1, b.const(w2), b.w(8)], pads=[1, 1, 1, 1])])
    f = b.node("Flatten", [b.node("GlobalAveragePool", [c2])])
    y = b.node("Gemm", [f, b.w(10, 8), b.w(10)], transB=1)
    return b.model({X: [1, 3, 16, 16]}, [y])


def _imbalanced() -> Graph:
    return read_onnx(_imbalanced_model().SerializeToString(), "imb.onnx", "imb")  # type: ignore


def test_equalisation_keeps_the_float_model_and_helps_int8() -> None:
    from edgekit.quantize.equalize import equalize
    from edgekit.quantize.quantizer import prepare

    g = prepare(_imbalanced())
    eq = copy.deepcopy(g)
    pairs = equalize(eq)
    assert [p["pair"] for p in pairs] == [["op0_conv2d", "op2_conv2d"]]
    assert max(pairs[0]["channel_range_spread_after"]) < 3 < \
        max(pairs[0]["channel_range_spread_before"])
    x = [np.random.default_rng(8).uniform(-1, 1, (16, 1, 16, 16, 3)).astype(np.float32)]
    np.testing.assert_allclose(FloatModel(eq).run(x)[0], FloatModel(g).run(x)[0],
                               rtol=1e-4, atol=1e-5)

    def held_out_db(mode: str) -> tuple[float, Graph]:
        q = quantize(g, None, QuantConfig(equalize=mode), data_free=True, progress=False)
        ref = FloatModel(g).run(x)[0].reshape(16, -1)
        o = q.tensor(q.outputs[0])
        got = run_tflm(export_tflite(q), [[quantize_array(v, q.tensor(q.inputs[0]).quant)]
                                          for v in x[0]])
        deq = np.stack([dequantize_array(np.asarray(r[0]), o.quant) for r in got])
        return sqnr_db(ref, deq.reshape(16, -1)), q

    off, _ = held_out_db("off")
    on, _ = held_out_db("on")
    assert on > off + 3.0
    auto_db, auto = held_out_db("auto")
    info = auto.meta["quantization"]["equalization"]
    assert info["applied"] == (info["sqnr_db_with"] > info["sqnr_db_without"])
    assert auto_db == pytest.approx(on if info["applied"] else off, abs=1e-6)


def test_per_layer_report_of_an_equalised_model_compares_like_with_like(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Between equalised layers the int8 tensors are scaled per channel: the report compares
    them with the equalised float graph, not the original one."""
    path = tmp_path / "imb.onnx"
    onnx.save(_imbalanced_model(), str(path))
    out = tmp_path / "imb.ekir"
    assert main(["quantize", str(path), "--data-free", "-o", str(out)]) == 0
    assert "equalisation of 1 layer pair(s): applied" in capsys.readouterr().out
    layers = serialize.loads(out.read_bytes(), str(out)).meta["quantization"]["layers"]
    assert min(r["sqnr_db"] for r in layers if r["sqnr_db"] is not None) > 30.0
