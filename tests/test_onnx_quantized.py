"""Already-quantized ONNX models (QDQ and QOperator, as onnxruntime's quantize_static writes them).

For each form: the imported int8 IR keeps the model's own scales, zero points and int8 weights;
the generated C is bit-exact with our golden model (TFLite Micro running the IR's export); and
onnxruntime with ORT_DISABLE_ALL, which evaluates the QDQ graph in float, lands within the
bound docs/onnx.md states (1 LSB per op; 2 LSB at this CNN's output).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
quantization = pytest.importorskip("onnxruntime.quantization")

import onnx  # noqa: E402
from onnx import numpy_helper  # noqa: E402

from edgekit.cli import main  # noqa: E402
from edgekit.errors import EdgekitError  # noqa: E402
from edgekit.export.tflite import export_tflite  # noqa: E402
from edgekit.frontends.onnx import read_onnx  # noqa: E402
from edgekit.pipeline import compile_graph  # noqa: E402
from edgekit.quantize import quantize_array  # noqa: E402
from edgekit.reference.tflm import run_tflm  # noqa: E402
from edgekit.runners.host import HostModel  # noqa: E402
from tests.test_onnx_frontend import OnnxBuilder, X  # noqa: E402
from tests.test_quantizer import cnn_model  # noqa: E402

OUTPUT_BOUND_LSB = 2  # docs/onnx.md


class _Reader(quantization.CalibrationDataReader):
    def __init__(self, xs: np.ndarray) -> None:
        self.items = iter([{X: x[None]} for x in xs])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self.items, None)


def _ort_quantized(tmp: Path, fmt: str, act: str) -> Any:
    src, dst = tmp / "cnn.onnx", tmp / f"cnn_{fmt}_{act}.onnx"
    onnx.save(cnn_model(), str(src))
    calib = np.random.default_rng(30).normal(size=(24, 3, 32, 32)).astype(np.float32)
    q = quantization
    q.quantize_static(
        str(src), str(dst), _Reader(calib),
        quant_format=q.QuantFormat.QDQ if fmt == "qdq" else q.QuantFormat.QOperator,
        per_channel=True, weight_type=q.QuantType.QInt8,
        activation_type=q.QuantType.QInt8 if act == "int8" else q.QuantType.QUInt8)
    return onnx.load(str(dst))


def _session(model: Any) -> Any:
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("fmt,act", [("qdq", "int8"), ("qoperator", "uint8")])
def test_quantized_onnx_imports_bit_exact_and_within_the_bound(tmp_path: Path, fmt: str,
                                                              act: str) -> None:
    model = _ort_quantized(tmp_path, fmt, act)
    kinds = {n.op_type for n in model.graph.node}
    assert ("QLinearConv" in kinds) == (fmt == "qoperator")
    g = read_onnx(model.SerializeToString(), "cnn_q.onnx", "cnn")
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    # the model's own input format (uint8 zero points move by -128: the same real values)
    in_q = g.tensor(g.inputs[0]).quant
    assert in_q.scalar_scale() == pytest.approx(float(inits["x_scale"]), rel=1e-7)
    zp = int(inits["x_zero_point"]) - (128 if act == "uint8" else 0)
    assert in_q.scalar_zero_point() == zp
    # the first convolution's int8 weights are the model's, only transposed OIHW -> OHWI
    first = next(op for op in g.ops if op.kind == "conv2d")
    theirs = next(v for k, v in inits.items() if v.dtype == np.int8 and v.ndim == 4
                  and v.shape[1] == 3)
    np.testing.assert_array_equal(g.tensor(first.inputs[1]).data, theirs.transpose(0, 2, 3, 1))

    xs = np.random.default_rng(31).normal(size=(8, 3, 32, 32)).astype(np.float32)
    feeds = [[quantize_array(x.transpose(1, 2, 0)[None], in_q)] for x in xs]
    host = HostModel(compile_graph(g))
    ours = [host.run(f)[0] for f in feeds]
    golden = run_tflm(export_tflite(g), feeds)
    assert all(a.tobytes() == np.asarray(b[0], np.int8).tobytes()
               for a, b in zip(ours, golden, strict=True))
    out = g.tensor(g.outputs[0]).quant
    sess = _session(model)
    for x, mine in zip(xs, ours, strict=True):
        theirs_f = sess.run(None, {X: x[None]})[0].astype(np.float64).reshape(-1)
        lsb = np.rint(theirs_f / out.scalar_scale())
        gap = np.abs(lsb - (mine.astype(np.float64).reshape(-1) - out.scalar_zero_point()))
        assert gap.max() <= OUTPUT_BOUND_LSB


@pytest.mark.filterwarnings("ignore")
def test_commands_take_a_qdq_model_as_an_int8_model(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    model = _ort_quantized(tmp_path, "qdq", "int8")
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    assert main(["generate", str(path), "-o", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "m.c").is_file()
    capsys.readouterr()
    np.savez(tmp_path / "c.npz", x=np.zeros((2, 3, 32, 32), np.float32))
    assert main(["quantize", str(path), "--calib", str(tmp_path / "c.npz"),
                 "-o", str(tmp_path / "q.ekir")]) == 2
    assert "already quantized" in capsys.readouterr().err


def test_ops_without_an_int8_kernel_are_one_error() -> None:
    b = OnnxBuilder(1)
    s, z = b.const(np.float32(0.05)), b.const(np.int8(0))
    q = b.node("QuantizeLinear", [X, s, z])
    y = b.node("QLinearLeakyRelu", [q, s, z, s, z], alpha=0.1)
    b.nodes[-1].domain = "com.microsoft"
    m = b.model({X: [1, 4]}, [y])
    m.opset_import.append(onnx.helper.make_opsetid("com.microsoft", 1))
    with pytest.raises(EdgekitError) as exc:
        read_onnx(m.SerializeToString(), "leaky.onnx", "leaky")
    text = str(exc.value)
    assert "QLinearLeakyRelu" in text and "leaky.onnx" in text


@pytest.mark.parametrize("which", ["cnn", "ad"])
def test_our_qdq_export_reads_back_as_the_same_int8_model(which: str) -> None:
    """export --format onnx-qdq, then import: the same ops, weights, scales and outputs."""
    from edgekit.export.onnx_qdq import export_onnx_qdq
    from edgekit.frontends.tflite import load_tflite
    from edgekit.quantize import QuantConfig, quantize
    from tests.conftest import MLPERF_DIR

    if which == "cnn":
        g = read_onnx(cnn_model().SerializeToString(), "cnn.onnx", "cnn")
    else:
        path = MLPERF_DIR / "ad01_fp32.tflite"
        if not path.is_file():
            pytest.skip(f"MLPerf Tiny models not found in {MLPERF_DIR}")
        g = load_tflite(path)
    rng = np.random.default_rng(32)
    shape = g.tensor(g.inputs[0]).shape
    q = quantize(g, [rng.uniform(-1, 1, (32, *shape)).astype(np.float32)],
                 QuantConfig(per_channel="all"), progress=False)
    back = read_onnx(export_onnx_qdq(q), "back.onnx", "back")
    assert [op.kind for op in back.ops] == [op.kind for op in q.ops]
    for a, b in zip(q.ops, back.ops, strict=True):
        for i in range(1, len(a.inputs)):
            ta, tb = q.tensor(a.inputs[i]), back.tensor(b.inputs[i])
            if ta.is_const and ta.dtype in ("int8", "int32"):
                np.testing.assert_array_equal(ta.data, tb.data)
                np.testing.assert_allclose(ta.quant.scale, tb.quant.scale, rtol=1e-6)
        ya, yb = q.tensor(a.outputs[0]).quant, back.tensor(b.outputs[0]).quant
        assert (ya.scalar_scale(), ya.scalar_zero_point()) == \
            (pytest.approx(yb.scalar_scale(), rel=1e-7), yb.scalar_zero_point())
    xs = rng.uniform(-1, 1, (4, *shape)).astype(np.float32)
    run = [run_tflm(export_tflite(m), [[quantize_array(x, m.tensor(m.inputs[0]).quant)]
                                       for x in xs]) for m in (q, back)]
    assert all(np.array_equal(np.asarray(u[0]), np.asarray(v[0]))
               for u, v in zip(*run, strict=True))


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("options", [
    {"per_channel": False},
    {"per_channel": True, "extra_options": {"ActivationSymmetric": True}},
])
def test_a_pytorch_model_quantized_by_onnxruntime(tmp_path: Path, options: dict[str, Any]
                                                  ) -> None:
    """PyTorch export -> onnxruntime's pre-processing (BatchNorm folded) -> QDQ, per-tensor
    weights or symmetric activations: still bit-exact with TFLM and within the bound."""
    torch = pytest.importorskip("torch")
    nn = torch.nn
    torch.manual_seed(1)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.MaxPool2d(3, stride=2, padding=1),
        nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.BatchNorm2d(8), nn.ReLU6(),
        nn.Conv2d(8, 16, 1), nn.ReLU(), nn.Flatten(), nn.Linear(16 * 8 * 8, 10),
    ).eval()
    src, pre, dst = tmp_path / "t.onnx", tmp_path / "tp.onnx", tmp_path / "tq.onnx"
    torch.onnx.export(net, (torch.randn(1, 3, 32, 32),), str(src), opset_version=17,
                      input_names=[X], dynamo=False)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    quant_pre_process(str(src), str(pre))
    rng = np.random.default_rng(33)
    q = quantization
    q.quantize_static(str(pre), str(dst), _Reader(rng.normal(size=(24, 3, 32, 32))
                                                  .astype(np.float32)),
                      quant_format=q.QuantFormat.QDQ, weight_type=q.QuantType.QInt8,
                      activation_type=q.QuantType.QInt8, **options)
    model = onnx.load(str(dst))
    g = read_onnx(model.SerializeToString(), str(dst), "t")
    xs = rng.normal(size=(6, 3, 32, 32)).astype(np.float32)
    in_q, out = g.tensor(g.inputs[0]).quant, g.tensor(g.outputs[0]).quant
    feeds = [[quantize_array(x.transpose(1, 2, 0)[None], in_q)] for x in xs]
    host = HostModel(compile_graph(g))
    ours = [host.run(f)[0] for f in feeds]
    golden = run_tflm(export_tflite(g), feeds)
    assert all(a.tobytes() == np.asarray(b[0], np.int8).tobytes()
               for a, b in zip(ours, golden, strict=True))
    sess = _session(model)
    for x, mine in zip(xs, ours, strict=True):
        theirs = np.rint(sess.run(None, {X: x[None]})[0].astype(np.float64).reshape(-1)
                         / out.scalar_scale())
        gap = np.abs(theirs - (mine.astype(np.float64).reshape(-1) - out.scalar_zero_point()))
        assert gap.max() <= OUTPUT_BOUND_LSB
