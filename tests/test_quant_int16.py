"""int16 activations with int8 weights (TFLite 16x8), all layers or chosen ones.

The oracle is TFLite Micro running our exported .tflite (its 16x8 conv, depthwise, fully
connected, add, pooling, pad, reshape and QUANTIZE kernels); the generated C must match it bit for
bit, and the 16x8 model must be markedly closer to the float model than the int8 one.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest

pytest.importorskip("onnx")

from edgekit.errors import EdgekitError  # noqa: E402
from edgekit.frontends.onnx import read_onnx  # noqa: E402
from edgekit.ir.graph import Graph  # noqa: E402
from edgekit.pipeline import compile_graph  # noqa: E402
from edgekit.quantize import QuantConfig, quantize  # noqa: E402
from edgekit.quantize.metrics import dequantize_array, quantize_array, sqnr_db  # noqa: E402
from edgekit.quantize.weights import dequantize_weights, quantize_weights  # noqa: E402
from edgekit.reference.float_ref import FloatModel  # noqa: E402
from edgekit.runners.host import HostModel  # noqa: E402
from tests.test_onnx_frontend import OnnxBuilder, X  # noqa: E402
from tests.test_quantizer import _assert_export_bit_exact  # noqa: E402


def small_model(seed: int = 3) -> Any:
    """conv+relu, max pool, depthwise+relu6, residual add, 1x1 conv, global pool, dense: every
    op kind with a 16x8 kernel, and no fixed-format output (softmax) to mask int16 precision."""
    b = OnnxBuilder(seed)
    c1 = b.node("Relu", [b.node("Conv", [X, b.w(8, 3, 3, 3), b.w(8)], pads=[1, 1, 1, 1])])
    p1 = b.node("MaxPool", [c1], kernel_shape=[2, 2], strides=[2, 2])
    dw = b.node("Clip", [b.node("Conv", [p1, b.w(8, 1, 3, 3), b.w(8)], group=8,
                                pads=[1, 1, 1, 1]), b.f32(0), b.f32(6)])
    s = b.node("Add", [dw, b.node("Conv", [p1, b.w(8, 8, 1, 1), b.w(8)])])
    c3 = b.node("Conv", [s, b.w(12, 8, 1, 1), b.w(12)])
    f = b.node("Flatten", [b.node("GlobalAveragePool", [c3])])
    y = b.node("Gemm", [f, b.w(5, 12), b.w(5)], transB=1)
    return b.model({X: [1, 3, 12, 12]}, [y])


@pytest.fixture(scope="module")
def fg() -> Graph:
    return read_onnx(small_model().SerializeToString(), "small.onnx", "small")


@pytest.fixture(scope="module")
def calib() -> np.ndarray:
    return np.random.default_rng(20).normal(size=(48, 3, 12, 12)).astype(np.float32)


@pytest.fixture(scope="module")
def q16(fg: Graph, calib: np.ndarray) -> Graph:
    return quantize(fg, [calib], QuantConfig(act="int16"))


def _sqnr(q: Graph, f: Graph, x_nchw: np.ndarray) -> float:
    model = HostModel(compile_graph(q))
    ti, to = q.tensor(q.inputs[0]), q.tensor(q.outputs[0])
    x = x_nchw.transpose(0, 2, 3, 1)[:, None]
    ref = FloatModel(f).run([x])[0]
    got = np.stack([dequantize_array(model.run([quantize_array(s, ti.quant, ti.dtype)])[0],
                                     to.quant) for s in x])
    return sqnr_db(ref.reshape(len(x), -1), got.reshape(len(x), -1))


def test_every_layer_int16_follows_tflite_16x8_conventions(q16: Graph) -> None:
    acts = [q16.tensor(n) for op in q16.ops for n in op.outputs]
    assert {t.dtype for t in acts} == {"int16"}
    assert q16.tensor(q16.inputs[0]).dtype == "int16"
    assert not any(op.kind == "quantize" for op in q16.ops)
    for t in acts:
        assert t.quant is not None and not t.quant.zero_point.any()
    for op in q16.ops:
        if op.kind in ("conv2d", "depthwise_conv2d", "fully_connected"):
            assert q16.tensor(op.inputs[1]).dtype == "int8"
            assert q16.tensor(op.inputs[2]).dtype == "int64"
    assert set(q16.meta["quantization"]["int16_layers"]) >= {
        op.name for op in q16.ops if op.kind in ("conv2d", "add", "fully_connected")}


def test_int16_generated_c_is_bit_exact_with_tflm(q16: Graph) -> None:
    # the int16 output is compared directly, so every 16x8 kernel's rounding is visible
    _assert_export_bit_exact(q16, samples=24)


def _int8_weights(fg: Graph) -> Graph:
    """The float graph with its weights already on the int8 grid the quantizer uses, so that the
    SQNR against it measures activation rounding alone."""
    g = copy.deepcopy(fg)
    axes = {"conv2d": 0, "depthwise_conv2d": 3, "fully_connected": None}
    for op in g.ops:
        if op.kind in axes:
            w = g.tensor(op.inputs[1])
            assert w.data is not None
            w.data = dequantize_weights(*quantize_weights(w.data, axes[op.kind]))
    return g


def test_int16_is_much_closer_to_float_than_int8(fg: Graph, calib: np.ndarray) -> None:
    # calibration samples themselves: no clipping, so only rounding separates the two
    held = calib[:12]
    fw = _int8_weights(fg)
    q8, q16 = (quantize(fw, [calib], QuantConfig(act=a)) for a in ("int8", "int16"))
    s8, s16 = _sqnr(q8, fw, held), _sqnr(q16, fw, held)
    # 8 more bits per activation, about +48 dB in theory; a wrong 16x8 path loses it all
    assert s16 > s8 + 30.0, (s8, s16)
    # against the real float model int8 weight rounding dominates, but int16 still gains
    assert _sqnr(q16, fg, held) > _sqnr(q8, fg, held)


def test_chosen_layers_get_int16_with_quantize_boundaries(fg: Graph, calib: np.ndarray) -> None:
    convs = [op.name for op in fg.ops if op.kind == "conv2d"]
    q = quantize(fg, [calib], QuantConfig(int16_layers=(convs[-1],)))
    by_name = {op.name: op for op in q.ops}
    assert q.tensor(by_name[convs[-1]].outputs[0]).dtype == "int16"
    assert q.tensor(q.inputs[0]).dtype == "int8"
    kinds = [(op.kind, q.tensor(op.outputs[0]).dtype) for op in q.ops]
    # int8 -> int16 before the layer; the global pool after it follows (int16) until the
    # int8 dense layer, which gets an int16 -> int8 requantize
    assert kinds.count(("quantize", "int16")) == 1 and kinds.count(("quantize", "int8")) == 1
    assert q.tensor(q.outputs[0]).dtype == "int8"
    _assert_export_bit_exact(q, samples=16)


def test_unknown_or_unsupported_int16_layer_is_one_clear_error(fg: Graph,
                                                               calib: np.ndarray) -> None:
    with pytest.raises(EdgekitError, match="names no layer"):
        quantize(fg, [calib], QuantConfig(int16_layers=("no_such_layer",)))
    with pytest.raises(EdgekitError, match="unknown activation type"):
        quantize(fg, [calib], QuantConfig(act="int4"))


def test_int16_ops_never_get_an_int8_only_optimised_kernel(q16: Graph, fg: Graph,
                                                           calib: np.ndarray) -> None:
    q8 = quantize(fg, [calib], QuantConfig())
    for target in ("cortex-m4", "cortex-m55", "rv32imc-zve32x"):
        fam8 = {op.kind: op.attrs["kernel"]["family"] for op in compile_graph(q8, target).graph.ops}
        fam16 = {op.kind: op.attrs["kernel"]["family"]
                 for op in compile_graph(q16, target).graph.ops}
        assert set(fam16.values()) == {"portable"}, (target, fam16)
        if target == "cortex-m4":
            # the same layers in int8 do take the optimised kernels, so the fallback is real
            assert "dsp" in fam8.values(), fam8


def test_search_picks_int16_only_within_the_ram_budget(fg: Graph, calib: np.ndarray) -> None:
    from edgekit.quantize.search import Budget, cost, search

    free = search(fg, [calib[:16]], QuantConfig())
    info = free.meta["quantization"]["search"]
    kept = [st["decision"] for st in info["steps"] if st["kept"]]
    assert "every layer: int16 activations (16x8)" in kept, info["steps"]
    assert info["int16_layers"] and free.tensor(free.inputs[0]).dtype == "int16"
    # a RAM budget the int8 arena fits but the int16 one does not: int16 is refused for it
    int8_ram = cost(quantize(fg, [calib[:16]], QuantConfig()))["ram"]
    tight = search(fg, [calib[:16]], QuantConfig(), Budget(ram=int8_ram))
    t = tight.meta["quantization"]["search"]
    assert any(not st["kept"] and "int16" in st["decision"] and st["why"] == "over the budget"
               for st in t["steps"]), t["steps"]
    assert t["result"]["ram"] <= int8_ram


def test_int16_mul_and_sub_are_bit_exact_with_tflm() -> None:
    b = OnnxBuilder(5)
    c1 = b.node("Conv", [X, b.w(6, 3, 3, 3), b.w(6)], pads=[1, 1, 1, 1])
    m = b.node("Mul", [c1, b.node("Conv", [X, b.w(6, 3, 1, 1), b.w(6)])])
    s = b.node("Sub", [m, b.node("Conv", [X, b.w(6, 3, 1, 1), b.w(6)])])
    y = b.node("Gemm", [b.node("Flatten", [b.node("GlobalAveragePool", [s])]), b.w(4, 6),
                        b.w(4)], transB=1)
    g = read_onnx(b.model({X: [1, 3, 8, 8]}, [y]).SerializeToString(), "ms.onnx", "ms")
    cal = np.random.default_rng(2).normal(size=(16, 3, 8, 8)).astype(np.float32)
    q = quantize(g, [cal], QuantConfig(act="int16"))
    assert {q.tensor(op.outputs[0]).dtype for op in q.ops if op.kind in ("mul", "sub")} == \
        {"int16"}
    _assert_export_bit_exact(q, samples=16)
