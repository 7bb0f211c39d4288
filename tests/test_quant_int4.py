"""Packed int4 weights (two per byte, per-channel symmetric) for conv, depthwise and dense layers.

The oracle is TFLite Micro running our exported .tflite, whose INT4 filters it unpacks itself
(conv, depthwise, fully connected); the generated C unpacks them in the portable kernels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnx")

from edgekit.errors import EdgekitError  # noqa: E402
from edgekit.frontends.onnx import read_onnx  # noqa: E402
from edgekit.ir import int4, serialize  # noqa: E402
from edgekit.ir.graph import Graph  # noqa: E402
from edgekit.pipeline import compile_graph  # noqa: E402
from edgekit.quantize import QuantConfig, quantize  # noqa: E402
from tests.test_quant_int16 import small_model  # noqa: E402
from tests.test_quantizer import _assert_export_bit_exact  # noqa: E402

LINEAR = ("conv2d", "depthwise_conv2d", "fully_connected")


@pytest.fixture(scope="module")
def fg() -> Graph:
    return read_onnx(small_model().SerializeToString(), "small.onnx", "small")


@pytest.fixture(scope="module")
def calib() -> np.ndarray:
    return np.random.default_rng(20).normal(size=(32, 3, 12, 12)).astype(np.float32)


@pytest.fixture(scope="module")
def q4(fg: Graph, calib: np.ndarray) -> Graph:
    return quantize(fg, [calib], QuantConfig(weights="int4"))


def test_packing_is_tflites_layout() -> None:
    # element 2k in the low nibble of byte k, sign in the nibble's top bit; odd counts pad
    packed = int4.pack(np.array([1, -2, 7, -8, -1], np.int8))
    assert packed.view(np.uint8).tolist() == [0xE1, 0x87, 0x0F]
    v = np.random.default_rng(0).integers(-8, 8, size=101).astype(np.int8)
    assert np.array_equal(int4.unpack(int4.pack(v), v.size), v)
    with pytest.raises(ValueError):
        int4.pack(np.array([8], np.int8))


def test_int4_weights_are_symmetric_per_channel_and_halve_flash(q4: Graph, fg: Graph,
                                                                calib: np.ndarray) -> None:
    q8 = quantize(fg, [calib], QuantConfig())
    for op in q4.ops:
        if op.kind in LINEAR:
            w = q4.tensor(op.inputs[1])
            assert w.dtype == "int4" and w.data is not None
            assert w.data.min() >= -7 and w.data.max() <= 7 and not w.quant.zero_point.any()
            assert w.nbytes == (w.size + 1) // 2
    w8 = sum(q8.tensor(op.inputs[1]).nbytes for op in q8.ops if op.kind in LINEAR)
    w4 = sum(q4.tensor(op.inputs[1]).nbytes for op in q4.ops if op.kind in LINEAR)
    assert w4 <= w8 // 2 + len([op for op in q4.ops if op.kind in LINEAR])
    # the compiled model's constants shrink by the same bytes (what `report` shows as flash)
    flash = [sum(t.nbytes for t in compile_graph(q).graph.tensors.values() if t.is_const)
             for q in (q8, q4)]
    assert flash[0] - flash[1] == w8 - w4
    assert set(q4.meta["quantization"]["int4_layers"]) == {
        op.name for op in q4.ops if op.kind in LINEAR}


def test_int4_generated_c_is_bit_exact_with_tflm_int4(q4: Graph) -> None:
    from ai_edge_litert import schema_py_generated as schema

    from edgekit.export.tflite import export_tflite

    # the file really carries INT4 filters (TFLM unpacks them), not int8 copies
    data = export_tflite(q4)
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(data, 0))
    types = [t.type for t in model.subgraphs[0].tensors]
    assert types.count(schema.TensorType.INT4) == sum(op.kind in LINEAR for op in q4.ops)
    _assert_export_bit_exact(q4, samples=16)


def test_int4_with_int16_activations(fg: Graph, calib: np.ndarray) -> None:
    # TFLM refuses int4 filters under int16 activations, so the export writes those weights as
    # int8 of the same values: the oracle is then TFLM's 16x8 kernel on the unpacked weights
    q = quantize(fg, [calib], QuantConfig(act="int16", weights="int4"))
    assert q.tensor(q.inputs[0]).dtype == "int16"
    _assert_export_bit_exact(q, samples=8)


def test_ekir_stores_int4_packed_and_reads_it_back(q4: Graph) -> None:
    data = serialize.dumps(q4)
    back = serialize.loads(data, "<mem>")
    for name, t in q4.tensors.items():
        if t.dtype == "int4":
            assert back.tensor(name).dtype == "int4"
            assert np.array_equal(back.tensor(name).data, t.data)
    q8 = {**q4.tensors}
    assert len(data) < len(serialize.dumps(Graph(q4.name, {
        n: (t if t.dtype != "int4" else type(t)(t.name, t.shape, "int8", t.quant, t.data))
        for n, t in q8.items()}, q4.ops, q4.inputs, q4.outputs, q4.meta)))


def test_chosen_int4_layers_and_errors(fg: Graph, calib: np.ndarray) -> None:
    dense = next(op.name for op in fg.ops if op.kind == "fully_connected")
    q = quantize(fg, [calib], QuantConfig(int4_layers=(dense,)))
    kinds = {op.name: q.tensor(op.inputs[1]).dtype for op in q.ops if op.kind in LINEAR}
    assert kinds[dense] == "int4" and set(kinds.values()) == {"int4", "int8"}
    _assert_export_bit_exact(q, samples=8)
    with pytest.raises(EdgekitError, match="int4-layers"):
        quantize(fg, [calib], QuantConfig(int4_layers=("nope",)))
    with pytest.raises(EdgekitError, match="unknown weight type"):
        quantize(fg, [calib], QuantConfig(weights="int2"))


def test_int4_layers_never_get_an_int8_only_optimised_kernel(q4: Graph) -> None:
    for target in ("cortex-m4", "cortex-m55"):
        fams = {op.attrs["kernel"]["family"] for op in compile_graph(q4, target).graph.ops
                if op.kind in LINEAR}
        assert fams == {"portable"}, (target, fams)


def test_cli_weights_int4(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from edgekit.cli import main
    from tests.test_quant_tools import _cli_model

    model, calib = _cli_model(tmp_path)
    out8, out4 = tmp_path / "m8.ekir", tmp_path / "m4.ekir"
    for out, extra in ((out8, []), (out4, ["--weights", "int4"])):
        assert main(["quantize", str(model), "--calib", str(calib), "--check", "0", *extra,
                     "-o", str(out)]) == 0
    q8, q4 = (serialize.loads(p.read_bytes(), str(p)) for p in (out8, out4))
    w8 = sum(t.nbytes for t in q8.tensors.values() if t.is_const and t.dtype == "int8")
    w4 = sum(t.nbytes for t in q4.tensors.values() if t.is_const and t.dtype == "int4")
    assert 0 < w4 <= w8 // 2 + 8 and q4.meta["quantization"]["int4_layers"]
    capsys.readouterr()
    assert main(["quantize", str(model), "--calib", str(calib), "--int4-layers", "nope",
                 "-o", str(tmp_path / "bad.ekir")]) == 2
    assert "nope" in capsys.readouterr().err and not (tmp_path / "bad.ekir").exists()


@pytest.mark.emulated
@pytest.mark.parametrize("target", ["cortex-m4", "rv32imc-zve32x"])
def test_int16_and_int4_bit_exact_under_qemu(target: str, fg: Graph, calib: np.ndarray,
                                             tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """Both extensions at once, cross-compiled for targets whose int8 layers would take the
    DSP / vector kernels, run under QEMU and compared with TFLM."""
    import shutil

    from edgekit.cli import main
    from edgekit.export.tflite import export_tflite
    from edgekit.targets import load_target

    qemu = load_target(target).emulator.command or ""
    if shutil.which(qemu) is None:
        pytest.skip(f"{qemu} is not installed")
    q = quantize(fg, [calib], QuantConfig(act="int16", weights="int4"))
    ekir, ref = tmp_path / "m.ekir", tmp_path / "m.tflite"
    ekir.write_bytes(serialize.dumps(q))
    ref.write_bytes(export_tflite(q))
    assert main(["verify", str(ekir), "--reference", str(ref), "--target", target,
                 "--emulate", "--samples", "6"]) == 0
    assert "bit-exact" in capsys.readouterr().out


def test_tflite_with_int4_filters_reads_back(q4: Graph) -> None:
    from edgekit.export.tflite import export_tflite
    from edgekit.frontends.tflite import read_tflite

    back = read_tflite(export_tflite(q4), "<export>", q4.name)
    for op in q4.ops:
        if op.kind in LINEAR:
            w = q4.tensor(op.inputs[1])
            wb = back.tensor(op.inputs[1])
            assert wb.dtype == "int4" and np.array_equal(wb.data, w.data)
    _assert_export_bit_exact(back, samples=4)


def test_search_uses_int4_only_to_fit_a_flash_budget(fg: Graph, calib: np.ndarray) -> None:
    from edgekit.quantize.search import Budget, cost, search

    full = cost(quantize(fg, [calib[:16]], QuantConfig()))["flash"]
    free = search(fg, [calib[:16]], QuantConfig())
    assert not free.meta["quantization"]["search"]["int4_layers"]
    tight = search(fg, [calib[:16]], QuantConfig(), Budget(flash=full - 60))
    info = tight.meta["quantization"]["search"]
    chosen = info["int4_layers"]
    # some layers, not all: enough to save 60 bytes, in order of least SQNR lost per byte
    linear = [op.name for op in fg.ops if op.kind in LINEAR]
    assert 0 < len(chosen) < len(linear), chosen
    assert info["result"]["flash"] <= full - 60
    assert {op.name for op in tight.ops if op.kind in LINEAR and
            tight.tensor(op.inputs[1]).dtype == "int4"} == set(chosen)
    with pytest.raises(EdgekitError, match="even with int4"):
        search(fg, [calib[:16]], QuantConfig(), Budget(flash=100))


def test_odd_depths_unpack_nibble_by_nibble() -> None:
    """Odd input channels / dense depth: rows do not start on a byte, the other kernel path."""
    from tests.test_onnx_frontend import OnnxBuilder, X

    b = OnnxBuilder(9)
    c = b.node("Conv", [X, b.w(5, 3, 3, 3), b.w(5)], pads=[1, 1, 1, 1])
    c = b.node("Conv", [c, b.w(5, 5, 1, 1), b.w(5)])
    y = b.node("Gemm", [b.node("Flatten", [b.node("GlobalAveragePool", [c])]), b.w(3, 5),
                        b.w(3)], transB=1)
    g = read_onnx(b.model({X: [1, 3, 6, 6]}, [y]).SerializeToString(), "odd.onnx", "odd")
    cal = np.random.default_rng(3).normal(size=(16, 3, 6, 6)).astype(np.float32)
    _assert_export_bit_exact(quantize(g, [cal], QuantConfig(weights="int4")), samples=16)


def test_hls_refuses_int16_and_int4_layers(q4: Graph, fg: Graph, calib: np.ndarray) -> None:
    """The HLS kernels are int8: the other types are one error naming each layer, never int8
    code that silently differs."""
    import copy

    from codegen.hls.design import build_design
    from edgekit.passes.lower import lower

    mixed = quantize(fg, [calib], QuantConfig(int16_layers=(
        next(op.name for op in fg.ops if op.kind == "depthwise_conv2d"),)))
    for q, kind in ((q4, "int4"), (mixed, "int16")):
        g = copy.deepcopy(q)
        lower(g)
        with pytest.raises(EdgekitError, match=f"{kind} tensor .*HLS designs are int8 only"):
            build_design(g, "m")
