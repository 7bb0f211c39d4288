"""The int32 overflow proof (edgekit/passes/overflow.py): sound, tight, and refusing exactly the
layers that can overflow.

Limits are derived here from first principles (127 * 255 * K against 2^31 - 1), not read from
the pass; tightness is shown exhaustively on small layers and, for a layer at the very limit, in C
under UBSan with the input the pass says reaches the bound. One tap more and UBSan fires.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from edgekit.errors import EdgekitError
from edgekit.frontends.tflite import read_tflite
from edgekit.frontends.tflite_writer import TFLiteBuilder
from edgekit.ir import fixedpoint as fp
from edgekit.ir import serialize
from edgekit.models.dscnn import build_dscnn_kws
from edgekit.passes import overflow
from edgekit.pipeline import compile_graph

REPO = Path(__file__).resolve().parents[1]
INT32_MAX = 2**31 - 1
# FC with int8 input at zero point -128 (offset +128) and weights all +127: each tap adds at most
# 127 * 255; with weights all -128 each tap subtracts at most 128 * 255.
K_POS = INT32_MAX // (127 * 255)
K_NEG = (2**31) // (128 * 255)


def _fuzz_module() -> ModuleType:
    if "fuzz_readers" in sys.modules:
        return sys.modules["fuzz_readers"]
    spec = importlib.util.spec_from_file_location("fuzz_readers", REPO / "bench/fuzz_readers.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


FUZZ = _fuzz_module()


def _adversarial_model() -> tuple[bytes, dict[str, bool]]:
    """Independent layers side by side; returns the model and, per op name, whether it overflows
    (for softmax: whether its exp sum can reach 2^28, past which the output shift exceeds 31)."""
    b = TFLiteBuilder()
    expect: dict[str, bool] = {}
    ins, outs = [], []

    def add(kind: str, overflows: bool, build: Any) -> None:
        x, y = build()
        ins.append(x)
        outs.append(y)
        expect[f"op{len(expect)}_{kind}"] = overflows

    def fc(k: int, weight: int) -> tuple[int, int]:
        x = b.tensor(f"x{len(ins)}", [1, k], np.int8, 1.0, -128)
        w = b.const(f"w{len(ins)}", np.full((1, k), weight, np.int8), 1.0, 0)
        bias = b.const(f"b{len(ins)}", np.zeros(1, np.int32), 1.0, 0)
        y = b.tensor(f"y{len(ins)}", [1, 1], np.int8, 3e7, 0)
        b.op("FULLY_CONNECTED", [x, w, bias], [y])
        return x, y

    def depthwise(kh: int, kw: int) -> tuple[int, int]:
        x = b.tensor(f"x{len(ins)}", [1, kh, kw, 1], np.int8, 1.0, -128)
        w = b.const(f"w{len(ins)}", np.full((1, kh, kw, 1), 127, np.int8), [1.0], 0, 3)
        bias = b.const(f"b{len(ins)}", np.zeros(1, np.int32), [1.0], 0)
        y = b.tensor(f"y{len(ins)}", [1, 1, 1, 1], np.int8, 3e7, 0)
        b.op("DEPTHWISE_CONV_2D", [x, w, bias], [y])
        return x, y

    def softmax(depth: int) -> tuple[int, int]:
        x = b.tensor(f"x{len(ins)}", [1, depth], np.int8, 0.1, 0)
        y = b.tensor(f"y{len(ins)}", [1, depth], np.int8, 1.0 / 256, -128)
        b.op("SOFTMAX", [x], [y], beta=1.0)
        return x, y

    add("fully_connected", False, lambda: fc(K_POS, 127))
    add("fully_connected", True, lambda: fc(K_POS + 1, 127))
    add("fully_connected", False, lambda: fc(K_NEG, -128))
    add("fully_connected", True, lambda: fc(K_NEG + 1, -128))
    taps_ok = max(h * w for h in range(250, 262) for w in range(250, 262) if h * w <= K_POS)
    h_ok = next(h for h in range(250, 262) if taps_ok % h == 0 and taps_ok // h < 262)
    add("depthwise_conv2d", False, lambda: depthwise(h_ok, taps_ok // h_ok))
    add("depthwise_conv2d", True, lambda: depthwise(258, 258))  # 66564 taps
    # each exp term is at most 1.0 in Q12 = 2^19: 511 of them stay below 2^28, 512 do not;
    # 4096 would not even fit int32
    add("softmax", False, lambda: softmax(511))
    add("softmax", True, lambda: softmax(512))
    add("softmax", True, lambda: softmax(4096))
    b.inputs(ins)
    b.outputs(outs)
    return b.finish(), expect


def test_overflowing_layers_are_widened_or_split() -> None:
    model, expect = _adversarial_model()
    assert K_POS < 258 * 258
    graph = compile_graph(read_tflite(model, "adv", "adv")).graph
    how = {op.name: op.attrs["overflow"].get("widened") for op in graph.ops}
    # fully connected and depthwise sums get an int64 accumulator; a softmax sum is capped
    assert how == {
        name: (None if not bad else "capped_sum" if "softmax" in name else "int64")
        for name, bad in expect.items()
    }
    for op in graph.ops:
        assert op.attrs["overflow"]["headroom_bits"] >= 0, op.name
        assert bool(op.attrs["q"].get("sum_cap")) == (how[op.name] == "capped_sum")


def test_a_layer_even_int64_cannot_save_is_refused_with_every_layer_listed() -> None:
    """A requantizing QUANTIZE (not widened) whose rescale shifts 255 left by 24 bits."""
    b = TFLiteBuilder()
    ins, outs = [], []
    for i in range(2):
        x = b.tensor(f"x{i}", [1, 4], np.int8, 1.0, -128)
        y = b.tensor(f"y{i}", [1, 4], np.int8, 2.0**-24, 0)
        b.op("QUANTIZE", [x], [y])
        ins.append(x)
        outs.append(y)
    b.inputs(ins)
    b.outputs(outs)
    with pytest.raises(EdgekitError) as info:
        compile_graph(read_tflite(b.finish(), "q", "q"))
    flagged = re.findall(r"#(\d+) (op\d+_\w+): the int32 requant_input", info.value.what)
    assert flagged == [("0", "op0_quantize"), ("1", "op1_quantize")]
    assert "2 layer(s)" in info.value.what
    assert "int64" in (info.value.hint or "")  # says what edgekit widens, and what to do


def test_a_sum_whose_rescale_is_beyond_the_64_bit_requantization_is_refused_not_widened() -> None:
    """TFLite's int64 requantization takes shifts up to 7 (15 - shift is its right shift): an
    overflowing sum rescaled by 2^20 cannot be widened and must be one clean error (fuzz cases
    such as ekir:73394 crashed the pass with a negative shift count at shifts above 15)."""
    b = TFLiteBuilder()
    x = b.tensor("x", [1, K_POS + 1], np.int8, 1.0, -128)
    w = b.const("w", np.full((1, K_POS + 1), 127, np.int8), 1.0, 0)
    bias = b.const("b", np.zeros(1, np.int32), 1.0, 0)
    y = b.tensor("y", [1, 1], np.int8, 2.0**-20, 0)  # real multiplier 2^20: shift 21
    b.op("FULLY_CONNECTED", [x, w, bias], [y])
    b.inputs([x])
    b.outputs([y])
    with pytest.raises(EdgekitError) as info:
        compile_graph(read_tflite(b.finish(), "fc", "fc"))
    assert "#0 op0_fully_connected: the int32 accumulator" in info.value.what, info.value.what
    assert "not widened to int64: requantization shift 21 (channel 0)" in info.value.what


def test_widened_layers_compute_the_exact_sum_on_an_optimised_target(tmp_path: Path) -> None:
    model, expect = _adversarial_model()
    compiled = compile_graph(read_tflite(model, "adv", "adv"), target="cortex-m4")
    ops = compiled.graph.ops
    widened = {op.name for op in ops if op.attrs["overflow"].get("widened") == "int64"}
    assert widened == {name for name, bad in expect.items() if bad and "softmax" not in name}
    for layer in compiled.generated.layers:
        if layer.op.name in widened:  # the DSP kernels accumulate in int32: portable runs these
            assert layer.variant.family == "portable", layer.op.name

    # on the host, with sanitizers: the worst-case input reaches the int64 bound exactly
    fc = read_tflite(_single_fc(K_POS + 1), "fc", "fc")
    host = compile_graph(fc)
    op = host.graph.ops[0]
    assert op.attrs["overflow"]["widened"] == "int64" and op.attrs["q"]["acc64"]
    bound = overflow.layer_bound(host.graph, op)
    assert bound is not None and bound.hi == 127 * 255 * (K_POS + 1) > INT32_MAX
    x = overflow.worst_case_input(host.graph, op, 0).reshape(1, K_POS + 1)
    exe = FUZZ.build_sanitized(host.generated.files, host.generated.name, tmp_path / "wide")
    (out,) = FUZZ.run_sanitized(exe, host.graph, [[x]])[0]
    q = op.attrs["q"]
    expected = fp.multiply_by_quantized_multiplier_64(bound.hi, q["multiplier"], q["shift"])
    assert int(out.reshape(-1)[0]) == max(-128, min(127, expected + q["output_offset"]))


def test_accepted_layers_record_their_bound() -> None:
    model, expect = _adversarial_model()
    graph = read_tflite(model, "adv", "adv")
    keep = [op for op in graph.ops if not expect[op.name]]
    graph.ops = keep
    graph.outputs = [op.outputs[0] for op in keep]
    graph.inputs = [op.inputs[0] for op in keep]
    compiled = compile_graph(graph)
    records = {op.name: op.attrs["overflow"] for op in compiled.graph.ops}
    json.dumps(records)  # JSON-serialisable, and travels in the .ekir file
    assert b'"overflow"' in serialize.dumps(compiled.graph)
    fc_ok = records["op0_fully_connected"]
    assert fc_ok["max_abs"] == 127 * 255 * K_POS and fc_ok["headroom_bits"] == 0
    assert records["op2_fully_connected"]["max_abs"] == 128 * 255 * K_NEG
    assert records["op6_softmax"]["max_abs"] == 511 << 19
    assert records["op6_softmax"]["headroom_bits"] == 0  # against 2^28, not 2^31


def _layer_acc(w: np.ndarray, bias: int, offset: int, x: np.ndarray) -> int:
    """The accumulator of one output, computed directly in Python integers."""
    return int(bias) + sum(int(a) * (int(b) + offset) for a, b in zip(w, x, strict=True))


@pytest.mark.parametrize("seed", range(6))
def test_bound_is_exact_on_small_layers_exhaustively(seed: int) -> None:
    """Over every possible int8 input of a 2-tap layer, the largest |acc| is the proven bound."""
    rng = np.random.default_rng(seed)
    b = TFLiteBuilder()
    zp = int(rng.integers(-128, 128))
    x = b.tensor("x", [1, 1, 2, 1], np.int8, 0.05, zp)
    weights = rng.integers(-128, 128, (1, 1, 2, 1)).astype(np.int8)
    w = b.const("w", weights, [0.01], 0, 3)
    bias_v = int(rng.integers(-(1 << 20), 1 << 20))
    bias = b.const("b", np.array([bias_v], np.int32), [0.0005], 0)
    y = b.tensor("y", [1, 1, 1, 1], np.int8, 0.5, 0)
    b.op("DEPTHWISE_CONV_2D", [x, w, bias], [y], padding="VALID")
    b.inputs([x])
    b.outputs([y])
    graph = compile_graph(read_tflite(b.finish(), "m", "m")).graph
    op = graph.ops[0]
    bound = overflow.layer_bound(graph, op)
    assert bound is not None
    taps = weights.reshape(-1)
    inputs = itertools.product(range(-128, 128), repeat=2)
    accs = [_layer_acc(taps, bias_v, -zp, np.array(v)) for v in inputs]
    (acc_bound,) = [b for b in overflow.layer_bounds(graph, op) if b.stage == "accumulator"]
    assert (min(accs), max(accs)) == (acc_bound.lo, acc_bound.hi)
    assert bound.max_abs >= max(abs(min(accs)), abs(max(accs)))


def _mlperf_or_demo() -> list[tuple[str, bytes]]:
    models = [("dscnn", build_dscnn_kws(0))]
    models += [(f, (FUZZ.MLPERF_DIR / f).read_bytes()) for f in FUZZ.MLPERF
               if (FUZZ.MLPERF_DIR / f).is_file()]  # fmt: skip
    return models


REFERENCE_MODELS = _mlperf_or_demo()


@pytest.mark.parametrize("name, data", REFERENCE_MODELS, ids=[n for n, _ in REFERENCE_MODELS])
def test_reference_models_are_proven_safe(name: str, data: bytes) -> None:
    compiled = compile_graph(read_tflite(data, name, "m"))
    graph = compiled.graph
    checked = 0
    rng = np.random.default_rng(0)
    for op in graph.ops:
        rec = op.attrs.get("overflow")
        if op.kind in ("conv2d", "depthwise_conv2d", "fully_connected", "add", "softmax", "mean"):
            assert rec is not None and rec["headroom_bits"] >= 0, op.name
        if op.kind not in ("conv2d", "depthwise_conv2d", "fully_connected"):
            continue
        # soundness on random windows, and tightness with the window the pass says is worst
        bounds = [b for b in overflow.layer_bounds(graph, op) if b.stage == "accumulator"]
        worst = max(bounds, key=lambda b: b.max_abs)
        assert worst.channel is not None
        w, bias, offset = _taps(graph, op, worst.channel)
        for maximise, target in ((True, worst.hi), (False, worst.lo)):
            x = overflow.worst_case_input(graph, op, worst.channel, maximise).reshape(-1)
            assert _layer_acc(w, bias, offset, x) == target
        for _ in range(5):
            x = rng.integers(-128, 128, w.size)
            assert worst.lo <= _layer_acc(w, bias, offset, x) <= worst.hi
        checked += 1
    assert checked > 0


def _taps(graph: Any, op: Any, channel: int) -> tuple[np.ndarray, int, int]:
    """Weights, bias and input offset of one output channel, read from the lowered graph."""
    q = op.attrs["q"]
    w = graph.tensor(op.inputs[1]).data
    bias = int(graph.tensor(q["bias"]).data.reshape(-1)[channel])
    if op.kind == "conv2d":
        return w[channel].reshape(-1), bias, int(q["input_offset"])
    if op.kind == "depthwise_conv2d":
        return w[0, :, :, channel].reshape(-1), bias, int(q["input_offset"])
    return w[channel].astype(np.int64) + int(q["filter_offset"]), bias, 0


def _single_fc(k: int) -> bytes:
    b = TFLiteBuilder()
    x = b.tensor("x", [1, k], np.int8, 1.0, -128)
    w = b.const("w", np.full((1, k), 127, np.int8), 1.0, 0)
    bias = b.const("b", np.zeros(1, np.int32), 1.0, 0)
    y = b.tensor("y", [1, 1], np.int8, 3e7, 0)
    b.op("FULLY_CONNECTED", [x, w, bias], [y])
    b.inputs([x])
    b.outputs([y])
    return b.finish()


def test_bound_is_reached_in_c_without_undefined_behaviour(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At the limit the worst-case input drives the accumulator to 2^31 - 1 - small, cleanly under
    UBSan; one tap more (a layer the pass refuses) is signed overflow."""
    compiled = compile_graph(read_tflite(_single_fc(K_POS), "fc", "fc"))
    op = compiled.graph.ops[0]
    bound = overflow.layer_bound(compiled.graph, op)
    assert bound is not None and bound.fits and bound.max_abs == 127 * 255 * K_POS
    x = overflow.worst_case_input(compiled.graph, op, 0).reshape(1, K_POS)
    gen = compiled.generated
    exe = FUZZ.build_sanitized(gen.files, gen.name, tmp_path / "ok")
    (out,) = FUZZ.run_sanitized(exe, compiled.graph, [[x]])[0]
    q = op.attrs["q"]
    expected = fp.multiply_by_quantized_multiplier(bound.hi, q["multiplier"], q["shift"])
    assert int(out.reshape(-1)[0]) == min(127, expected + q["output_offset"])

    # the pass is what stops the next layer: without it, the same C overflows
    monkeypatch.setattr("edgekit.pipeline.check_overflow", lambda g, where="": g)
    over = compile_graph(read_tflite(_single_fc(K_POS + 1), "fc", "fc"))
    exe = FUZZ.build_sanitized(over.generated.files, over.generated.name, tmp_path / "over")
    x = np.full((1, K_POS + 1), 127, np.int8)
    with pytest.raises(RuntimeError, match="signed integer overflow"):
        FUZZ.run_sanitized(exe, over.graph, [[x]])
