"""Arm DSP kernels: bit-identical to TFLite Micro, on the host through the shim and under QEMU.

The DSP templates compile anywhere: without __ARM_FEATURE_DSP, csrc/edgekit_dsp.h supplies
portable twins of each instruction. So most examples build the cortex-m4 code for the host and
compare it with TFLM there; a few run on the emulated Cortex-M4 itself, where the intrinsics,
the LDRD/SMMULR/PKH asm and unaligned accesses are real. Draws are derandomized.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codegen.families import dsp
from edgekit.frontends.tflite import read_tflite
from edgekit.frontends.tflite_writer import TFLiteBuilder
from edgekit.ir import fixedpoint as fp
from edgekit.pipeline import Compiled, compile_file, compile_graph
from edgekit.reference.tflm import run_tflm
from edgekit.runners.host import HostModel
from edgekit.verify import random_inputs
from tests.conftest import mlperf_model

TARGET = "cortex-m4"
SAMPLES = 4
ACTIVATIONS = ["NONE", "RELU", "RELU6"]
KERNEL_KINDS = (
    "conv2d", "depthwise_conv2d", "fully_connected", "add", "sub", "avg_pool2d", "max_pool2d",
)  # fmt: skip


def _examples(n: int) -> settings:
    return settings(
        max_examples=n,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


def _f32(x: float) -> float:
    return float(np.float32(x))


def _out_size(size: int, k: int, s: int, d: int, padding: str) -> int:
    if padding == "SAME":
        return (size + s - 1) // s
    return (size - ((k - 1) * d + 1) + s) // s


def _compile(model: bytes) -> Compiled:
    compiled = compile_graph(read_tflite(model, "<dsp test>", "op"), TARGET)
    for op in compiled.graph.ops:
        if op.kind in KERNEL_KINDS:
            assert op.attrs["kernel"]["family"] == "dsp", f"{op.kind} did not get a DSP kernel"
    return compiled


def _inputs(compiled: Compiled, seed: int, n: int = SAMPLES) -> list[list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    g = compiled.graph
    return [
        [rng.integers(-128, 128, g.tensor(t).shape).astype(np.int8) for t in g.inputs]
        for _ in range(n)
    ]


def _assert_equal(ours: list[list[np.ndarray]], ref: list[list[np.ndarray]]) -> None:
    for n, (got, want) in enumerate(zip(ours, ref, strict=True)):
        for a, r in zip(got, want, strict=True):
            r = np.asarray(r).reshape(a.shape)
            bad = np.argwhere(a != r)
            assert bad.size == 0, f"sample {n}: {len(bad)} differ, first at {bad[:4].tolist()}"


def _host_check(model: bytes, seed: int) -> None:
    compiled = _compile(model)
    inputs = _inputs(compiled, seed)
    host = HostModel(compiled)
    _assert_equal([host.run(s) for s in inputs], run_tflm(model, inputs))


# --- single-op models -----------------------------------------------------------------------


def _conv_model(case: dict[str, Any], depthwise: bool) -> bytes:
    rng = np.random.default_rng(case["seed"])
    (h, w), (kh, kw) = case["hw"], case["kernel"]
    (sh, sw), (dh, dw) = case["stride"], case["dilation"]
    cin, cout = case["cin"], case["cout"]
    oh = _out_size(h, kh, sh, dh, case["padding"])
    ow = _out_size(w, kw, sw, dw, case["padding"])
    w_scales = (10.0 ** rng.uniform(-3.0, -1.5, cout)).astype(np.float32)
    fan_in = kh * kw * (1 if depthwise else cin)
    in_scale = case["in_scale"]
    out_scale = _f32(in_scale * float(np.median(w_scales)) * np.sqrt(fan_in) * 74.0 * case["gain"])
    b = TFLiteBuilder()
    x = b.tensor("x", [case["batch"], h, w, cin], np.int8, in_scale, case["in_zp"])
    shape = (1, kh, kw, cout) if depthwise else (cout, kh, kw, cin)
    weights = rng.integers(-127, 128, shape).astype(np.int8)
    if case["dead_channel"]:
        # output channel 0 all zeros with a huge bias, as converters leave pruned channels
        if depthwise:
            weights[..., 0] = 0
        else:
            weights[0] = 0
    wt = b.const("w", weights, w_scales, 0, quantized_dimension=3 if depthwise else 0)
    bias = rng.normal(0.0, 3000.0, cout).astype(np.int32)
    if case["dead_channel"]:
        bias[0] = (1 << 30) - 64
    bias_t = b.const("b", bias, (in_scale * w_scales.astype(np.float64)).astype(np.float32), 0)
    y = b.tensor("y", [case["batch"], oh, ow, cout], np.int8, out_scale, case["out_zp"])
    b.op(
        "DEPTHWISE_CONV_2D" if depthwise else "CONV_2D",
        [x, wt, bias_t],
        [y],
        stride=case["stride"],
        dilation=case["dilation"],
        padding=case["padding"],
        activation=case["activation"],
    )
    b.inputs([x])
    b.outputs([y])
    return b.finish()


@st.composite
def _conv_cases(draw: Any, depthwise: bool) -> dict[str, Any]:
    padding = draw(st.sampled_from(["SAME", "VALID"]))
    h, w = draw(st.integers(1, 10)), draw(st.integers(1, 10))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    dh = draw(st.sampled_from([1, 1, 2]))
    # depthwise DSP kernels pair horizontally adjacent taps; other dilations stay portable
    dw = 1 if depthwise else draw(st.sampled_from([1, 1, 2]))
    if padding == "VALID":
        if (kh - 1) * dh + 1 > h:
            dh, kh = 1, min(kh, h)
        if (kw - 1) * dw + 1 > w:
            dw, kw = 1, min(kw, w)
    cin = draw(st.sampled_from([1, 2, 3, 4, 5, 8, 12, 16]))
    mult = draw(st.sampled_from([1, 1, 2])) if depthwise else 1
    cout = cin * mult if depthwise else draw(st.integers(1, 9))
    return {
        "batch": draw(st.integers(1, 2)),
        "hw": (h, w),
        "kernel": (kh, kw),
        "stride": (draw(st.integers(1, 2)), draw(st.integers(1, 3))),
        "dilation": (dh, dw),
        "padding": padding,
        "cin": cin,
        "cout": cout,
        "activation": draw(st.sampled_from(ACTIVATIONS)),
        "in_scale": _f32(10.0 ** draw(st.floats(-3.0, 0.0))),
        "in_zp": draw(st.sampled_from([0, -128, 127, 5])),
        "out_zp": draw(st.sampled_from([0, -128, 127, -3])),
        "gain": _f32(10.0 ** draw(st.floats(-1.5, 0.5))),
        "dead_channel": draw(st.booleans()),
        "seed": draw(st.integers(0, 2**32 - 1)),
    }


def _fc_model(case: dict[str, Any]) -> bytes:
    rng = np.random.default_rng(case["seed"])
    depth, units, rows = case["depth"], case["units"], case["rows"]
    in_scale = case["in_scale"]
    if case["per_channel"]:
        w_scales = (10.0 ** rng.uniform(-3.0, -1.5, units)).astype(np.float32)
    else:
        w_scales = np.full(1, 10.0 ** rng.uniform(-3.0, -1.5), dtype=np.float32)
    out_scale = _f32(in_scale * float(np.median(w_scales)) * np.sqrt(depth) * 74.0 * case["gain"])
    b = TFLiteBuilder()
    x = b.tensor("x", [rows, depth], np.int8, in_scale, case["in_zp"])
    wt = b.const("w", rng.integers(-127, 128, (units, depth)).astype(np.int8), w_scales, 0)
    bias = b.const(
        "b",
        rng.normal(0.0, 3000.0, units).astype(np.int32),
        (in_scale * w_scales.astype(np.float64)).astype(np.float32),
        0,
    )
    y = b.tensor("y", [rows, units], np.int8, out_scale, case["out_zp"])
    b.op("FULLY_CONNECTED", [x, wt, bias], [y], activation=case["activation"])
    b.inputs([x])
    b.outputs([y])
    return b.finish()


_fc_cases = st.fixed_dictionaries(
    {
        "depth": st.integers(1, 70),
        "units": st.integers(1, 11),
        "rows": st.integers(1, 3),
        "per_channel": st.booleans(),
        "activation": st.sampled_from(ACTIVATIONS),
        "in_scale": st.floats(-3.0, 0.0).map(lambda e: _f32(10.0**e)),
        "in_zp": st.sampled_from([0, -128, 127, 9]),
        "out_zp": st.sampled_from([0, -128, 127, -7]),
        "gain": st.floats(-1.5, 0.5).map(lambda e: _f32(10.0**e)),
        "seed": st.integers(0, 2**32 - 1),
    }
)


def _add_model(case: dict[str, Any]) -> bytes:
    s1, s2 = case["scales"]
    b = TFLiteBuilder()
    shape = case["shape"]
    x1 = b.tensor("a", shape, np.int8, s1, case["zps"][0])
    x2 = b.tensor("b", shape, np.int8, s2, case["zps"][1])
    # TFLM needs the output scale above twice the larger input scale / 2^20
    y = b.tensor("y", shape, np.int8, _f32(max(s1, s2) * case["gain"]), case["zps"][2])
    b.op(case["op"], [x1, x2], [y], activation=case["activation"])
    b.inputs([x1, x2])
    b.outputs([y])
    return b.finish()


_add_cases = st.fixed_dictionaries(
    {
        "op": st.sampled_from(["ADD", "SUB"]),
        # element counts below, at and above the unroll by 4, odd channel counts
        "shape": st.sampled_from([[1, 1, 1, 3], [1, 2, 3, 5], [2, 4, 4, 8], [1, 5, 7, 13], [9]]),
        "scales": st.tuples(st.floats(-3.0, 0.0), st.floats(-3.0, 0.0)).map(
            lambda e: (_f32(10.0 ** e[0]), _f32(10.0 ** e[1]))
        ),
        "zps": st.tuples(*[st.sampled_from([0, -128, 127, 5, -17])] * 3),
        "gain": st.floats(-0.3, 0.9).map(lambda e: _f32(10.0**e)),
        "activation": st.sampled_from(ACTIVATIONS),
        "seed": st.integers(0, 2**32 - 1),
    }
)


def _pool_model(case: dict[str, Any]) -> bytes:
    n, h, w, c = case["input"]
    (fh, fw), (sh, sw) = case["filter"], case["stride"]
    oh = _out_size(h, fh, sh, 1, case["padding"])
    ow = _out_size(w, fw, sw, 1, case["padding"])
    b = TFLiteBuilder()
    # TFLM pools keep the input's quantisation
    x = b.tensor("x", [n, h, w, c], np.int8, case["scale"], case["zp"])
    y = b.tensor("y", [n, oh, ow, c], np.int8, case["scale"], case["zp"])
    b.op(
        case["op"],
        [x],
        [y],
        filter=case["filter"],
        stride=case["stride"],
        padding=case["padding"],
        activation=case["activation"],
    )
    b.inputs([x])
    b.outputs([y])
    return b.finish()


@st.composite
def _pool_cases(draw: Any) -> dict[str, Any]:
    padding = draw(st.sampled_from(["SAME", "VALID"]))
    h, w = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    fh, fw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    if padding == "VALID":
        fh, fw = min(fh, h), min(fw, w)
    return {
        "op": draw(st.sampled_from(["AVERAGE_POOL_2D", "MAX_POOL_2D"])),
        "input": [draw(st.integers(1, 2)), h, w, draw(st.sampled_from(POOL_CHANNELS))],
        "filter": (fh, fw),
        "stride": (draw(st.integers(1, 3)), draw(st.integers(1, 3))),
        "padding": padding,
        "activation": draw(st.sampled_from(ACTIVATIONS)),
        # scales where RELU6 clamps inside the int8 range, and where it does not
        "scale": draw(st.sampled_from([0.01, 0.03, 0.2])),
        "zp": draw(st.sampled_from([0, -128, 127, -7])),
        "seed": draw(st.integers(0, 2**32 - 1)),
    }


# tails of 1, 2 and 3 channels, 1 to 9 words: blocks of 4 words, remainders and tails
POOL_CHANNELS = [1, 2, 3, 4, 5, 7, 8, 13, 16, 17, 22, 36]


# --- host: the DSP templates through the portable shim -----------------------------------------


@_examples(24)
@given(_conv_cases(depthwise=False))
def test_conv2d_matches_tflm(case: dict[str, Any]) -> None:
    _host_check(_conv_model(case, depthwise=False), case["seed"])


@_examples(24)
@given(_conv_cases(depthwise=True))
def test_depthwise_conv2d_matches_tflm(case: dict[str, Any]) -> None:
    _host_check(_conv_model(case, depthwise=True), case["seed"])


@_examples(16)
@given(_fc_cases)
def test_fully_connected_matches_tflm(case: dict[str, Any]) -> None:
    _host_check(_fc_model(case), case["seed"])


@_examples(12)
@given(_add_cases)
def test_add_sub_match_tflm(case: dict[str, Any]) -> None:
    model = _add_model(case)
    op = _compile(model).graph.ops[0]
    assert op.attrs["kernel"]["template"] == "dsp/add_sub.c.j2"
    _host_check(model, case["seed"])


@_examples(30)
@given(_pool_cases())
def test_pooling_matches_tflm(case: dict[str, Any]) -> None:
    model = _pool_model(case)
    op = _compile(model).graph.ops[0]
    assert op.attrs["kernel"]["template"] == "dsp/pool2d.c.j2"
    _host_check(model, case["seed"])


def _pool_spec(op: str, shape: list[int], k: tuple[int, int], **kw: Any) -> dict[str, Any]:
    base = {"op": op, "input": shape, "filter": k, "stride": k, "padding": "VALID",
            "activation": "NONE", "scale": 0.02, "zp": -3, "seed": 5}  # fmt: skip
    return {**base, **kw}


POOL_PATHS = [
    # global pooling as at the end of KWS: one output column spanning whole rows (one tap loop)
    _pool_spec("AVERAGE_POOL_2D", [1, 25, 5, 64], (25, 5)),
    _pool_spec("MAX_POOL_2D", [1, 25, 5, 64], (25, 5)),
    # one output column with SAME padding: still whole rows, but windows clipped at the top
    _pool_spec("AVERAGE_POOL_2D", [1, 7, 3, 9], (4, 3), stride=(2, 3), padding="SAME"),
    # 256 taps, the most the int16 lanes hold; odd channels
    _pool_spec("AVERAGE_POOL_2D", [1, 16, 16, 7], (16, 16)),
    # max with both clamps (RELU6 at this scale) and a tail, stride 2 with padding
    _pool_spec("MAX_POOL_2D", [2, 9, 8, 19], (3, 3), stride=(2, 2), padding="SAME",
               activation="RELU6", scale=0.03, zp=-100),
]  # fmt: skip


@pytest.mark.parametrize("case", POOL_PATHS)
def test_pooling_paths_at_extreme_inputs(case: dict[str, Any]) -> None:
    """Random draws plus all -128 and all 127, where int16 lane sums are largest."""
    model = _pool_model(case)
    compiled = _compile(model)
    assert compiled.graph.ops[0].attrs["kernel"]["template"] == "dsp/pool2d.c.j2"
    shape = compiled.graph.tensor(compiled.graph.inputs[0]).shape
    inputs = _inputs(compiled, 31, 2) + [[np.full(shape, v, np.int8)] for v in (-128, 127)]
    host = HostModel(compiled)
    _assert_equal([host.run(s) for s in inputs], run_tflm(model, inputs))


POOL_SHIFTS = [
    # every window 2 x 2: a rounding shift by 2
    (_pool_spec("AVERAGE_POOL_2D", [2, 8, 6, 11], (2, 2)), 2),
    # 1 x 1 windows: the sum itself
    (_pool_spec("AVERAGE_POOL_2D", [1, 3, 4, 6], (1, 1)), 0),
    # 9 taps: a division
    (_pool_spec("AVERAGE_POOL_2D", [1, 6, 6, 5], (3, 3)), None),
    # 2 x 2 with SAME padding on an odd size: clipped windows hold 1 or 2 taps, a division
    (_pool_spec("AVERAGE_POOL_2D", [1, 5, 5, 8], (2, 2), padding="SAME"), None),
]  # fmt: skip


@pytest.mark.parametrize("case,shift", POOL_SHIFTS)
def test_average_pool_rounding_shift(case: dict[str, Any], shift: int | None) -> None:
    """Equal power-of-two windows round by a shift; all others divide. Both at the extremes."""
    model = _pool_model(case)
    compiled = _compile(model)
    assert compiled.graph.ops[0].attrs["q"]["dsp_pool_shift"] == shift
    shape = compiled.graph.tensor(compiled.graph.inputs[0]).shape
    inputs = _inputs(compiled, 37, 2) + [[np.full(shape, v, np.int8)] for v in (-128, 127)]
    # half-way sums of both signs: -2, -1, 1, 2 per 2 x 2 window (ties must round away from 0)
    inputs.append([np.resize(np.array([-1, -1, 0, 0, 1, 1, -2, 0], np.int8), shape)])
    host = HostModel(compiled)
    _assert_equal([host.run(s) for s in inputs], run_tflm(model, inputs))


def test_average_pool_beyond_256_taps_stays_portable() -> None:
    model = _pool_model(_pool_spec("AVERAGE_POOL_2D", [1, 17, 16, 4], (17, 16)))
    compiled = compile_graph(read_tflite(model, "<dsp test>", "op"), TARGET)
    assert compiled.graph.ops[0].attrs["kernel"]["family"] == "portable"
    inputs = [[np.full((1, 17, 16, 4), -128, np.int8)]] + _inputs(compiled, 3, 1)
    _assert_equal([HostModel(compiled).run(s) for s in inputs], run_tflm(model, inputs))


def test_add_sub_without_the_requant_shortcut(monkeypatch: pytest.MonkeyPatch) -> None:
    """The rescale tables undoubled and ek_mbqm on the sum."""
    monkeypatch.setattr(dsp, "requant_rows", lambda *args: None)
    for op in ("ADD", "SUB"):
        case = {"op": op, "shape": [1, 3, 3, 7], "scales": (0.02, 0.05), "zps": (-3, 9, 4),
                "gain": 1.7, "activation": "RELU6", "seed": 3}  # fmt: skip
        model = _add_model(case)
        assert not _compile(model).graph.ops[0].attrs["q"]["dsp_fast_requant"]
        _host_check(model, 3)


def test_dilated_depthwise_falls_back_to_portable() -> None:
    case = {
        "batch": 1, "hw": (7, 7), "kernel": (3, 3), "stride": (1, 1), "dilation": (1, 2),
        "padding": "SAME", "cin": 4, "cout": 4, "activation": "NONE", "in_scale": 0.05,
        "in_zp": 3, "out_zp": -2, "gain": 1.0, "dead_channel": False, "seed": 7,
    }  # fmt: skip
    model = _conv_model(case, depthwise=True)
    compiled = compile_graph(read_tflite(model, "<dsp test>", "op"), TARGET)
    assert compiled.graph.ops[0].attrs["kernel"]["family"] == "portable"
    inputs = _inputs(compiled, 7)
    _assert_equal([HostModel(compiled).run(s) for s in inputs], run_tflm(model, inputs))


# --- specialised paths: each case asserts that it reaches the path it is there for ----------

DW_QUADS = [
    # stride 1, OW = 9: two quads and a single output, padding on both sides, odd channels
    dict(hw=(6, 9), kernel=(3, 3), stride=(1, 1), padding="SAME", cin=3, cout=3),
    # stride 2, OW = 6: a quad and a pair; IC % 4 == 0 (word widening), odd input width
    dict(hw=(7, 11), kernel=(3, 3), stride=(2, 2), padding="SAME", cin=8, cout=8),
    # even kernel width, VALID, OW = 5 (quad and single), depth multiplier 2
    dict(hw=(5, 8), kernel=(2, 4), stride=(1, 1), padding="VALID", cin=3, cout=6),
    # KW = 1 (SMLAD and SMLATB only), OW = 7 (quad, pair and single)
    dict(hw=(4, 7), kernel=(3, 1), stride=(1, 1), padding="SAME", cin=5, cout=5),
    # stride 2 with KW = 2, OW = 4 exactly, batch 2
    dict(hw=(6, 8), kernel=(2, 2), stride=(2, 2), padding="VALID", cin=4, cout=4, batch=2),
]


def _spec(**kw: Any) -> dict[str, Any]:
    return _case(**{"dilation": (1, 1), **kw})


@pytest.mark.parametrize("spec", DW_QUADS)
def test_depthwise_four_outputs_per_pass(spec: dict[str, Any]) -> None:
    case = _spec(**spec)
    model = _conv_model(case, depthwise=True)
    op = _compile(model).graph.ops[0]
    assert op.attrs["q"]["dsp_layout"]["quads"]
    _host_check(model, 21)


CONV_BLOCKS = [
    # 1 x 1, K = 240: the longest completely unrolled block (60 steps, LDRD offsets near 1020)
    (dict(hw=(3, 3), kernel=(1, 1), stride=(1, 1), padding="VALID", cin=240, cout=3), 60, True),
    # 3 x 3 x 30: 68 steps, a loop by 16 and a tail of 4; odd channels and pixels, stride 2
    (dict(hw=(5, 7), kernel=(3, 3), stride=(2, 2), padding="SAME", cin=30, cout=5), 68, False),
    # small K completely unrolled: 1 x 1 with IC = 8, odd channel count, batch 2
    (dict(hw=(3, 5), kernel=(1, 1), stride=(1, 1), padding="VALID", cin=8, cout=7, batch=2), 2,
     True),
    # first-layer shape: 3 x 3 x 3 stride 2 with padding (rows layout, 8 steps)
    (dict(hw=(9, 8), kernel=(3, 3), stride=(2, 2), padding="SAME", cin=3, cout=8), 8, True),
]  # fmt: skip


@pytest.mark.parametrize("spec,steps,full", CONV_BLOCKS)
def test_conv2d_block_unrolling(spec: dict[str, Any], steps: int, full: bool) -> None:
    case = _spec(**spec)
    model = _conv_model(case, depthwise=False)
    layout = _compile(model).graph.ops[0].attrs["q"]["dsp_layout"]
    assert layout["kp"] // 4 == steps
    assert (steps <= layout["unroll_full"]) == full
    _host_check(model, 23)


def test_kernels_without_the_requant_shortcut(monkeypatch: pytest.MonkeyPatch) -> None:
    """The weight streams without (m, c, e) rows: ek_mbqm on plain accumulators."""
    monkeypatch.setattr(dsp, "requant_rows", lambda *args: None)
    specs = [(DW_QUADS[1], True), (DW_QUADS[2], True), (CONV_BLOCKS[1][0], False)]
    specs.append((CONV_BLOCKS[2][0], False))
    for spec, depthwise in specs:
        model = _conv_model(_spec(**spec), depthwise=depthwise)
        assert not _compile(model).graph.ops[0].attrs["q"]["dsp_fast_requant"]
        _host_check(model, 29)


# --- the build-time pieces -----------------------------------------------------------------


@_examples(300)
@given(
    st.integers(-(1 << 29), 1 << 29),
    st.integers(1 << 30, (1 << 31) - 1) | st.just(0),
    st.integers(-31, -1),
    st.integers(-128, 127),
)
def test_requant_shortcut_equals_tflite_rounding(acc: int, m: int, shift: int, off: int) -> None:
    bound = abs(acc) + 1000
    rows = dsp.requant_rows(np.array([m]), np.array([shift]), np.array([off]), np.array([bound]))
    assert rows is not None
    want = fp.multiply_by_quantized_multiplier(acc, m, shift) + off
    for a in (acc, -acc, acc + 1, 0, bound, -bound):
        want = fp.multiply_by_quantized_multiplier(a, m, shift) + off
        assert dsp.requant_reference(a, rows[0].tolist()) == want, (a, m, shift, off)


def test_requant_sign_correction_where_the_product_rounds_to_zero() -> None:
    # acc < 0 with x = round(acc * m / 2^31) = 0: the kernels subtract [acc < 0] where TFLM's
    # rounding subtracts [x < 0]; both must give the output offset
    for m, shift in [(1 << 30, -1), ((1 << 31) - 1, -5), (1 << 30, -12), (1 << 30, -31)]:
        for off in (-128, -1, 0, 5, 127):
            rows = dsp.requant_rows(
                np.array([m]), np.array([shift]), np.array([off]), np.array([4096])
            )
            assert rows is not None
            for acc in range(-64, 2):
                want = fp.multiply_by_quantized_multiplier(acc, m, shift) + off
                assert dsp.requant_reference(acc, rows[0].tolist()) == want, (acc, m, shift)


def test_requant_shortcut_refuses_what_it_cannot_do_exactly() -> None:
    one = np.array([1])
    assert dsp.requant_rows(np.array([1 << 30]), np.array([1]), one, one) is None  # left shift
    assert dsp.requant_rows(np.array([1 << 30]), np.array([0]), one, one) is None  # no shift
    assert dsp.requant_rows(np.array([1 << 30]), np.array([-3]), one, np.array([1 << 30])) is None


def test_column_layout_permutation_covers_every_weight_once() -> None:
    for kh, kw, ic, dw in [(3, 3, 3, 1), (10, 4, 1, 1), (1, 1, 64, 1), (3, 3, 5, 2), (2, 2, 1, 2)]:
        layout = dsp.column_layout(kh, kw, ic, dw, 8)
        perm = layout.positions()
        assert layout.kp % 4 == 0 and len(perm) == layout.kp
        assert sorted(perm[perm >= 0].tolist()) == list(range(kh * kw * ic))


def test_depthwise_row_words_reproduce_both_outputs() -> None:
    rng = np.random.default_rng(3)
    for kw in range(2, 7):
        w = rng.integers(-127, 128, kw)
        words = dsp.depthwise_row_words(w, 1)
        assert len(words) == kw - 1

        def lanes(v: int) -> tuple[int, int]:
            u = v & 0xFFFFFFFF
            lo, hi = u & 0xFFFF, u >> 16
            return (lo - (lo >> 15 << 16), hi - (hi >> 15 << 16))

        n = kw // 2
        x = rng.integers(-255, 256, kw + 3)
        a = [(int(x[2 * j]), int(x[2 * j + 1])) for j in range(n + 1)]
        u = [lanes(v) for v in words[:n]]
        v = {j: lanes(words[n + j - 1]) for j in range(1, n + kw % 2)}
        out0 = sum(a[j][0] * u[j][0] + a[j][1] * u[j][1] for j in range(n))
        out1 = a[0][1] * u[0][0] + sum(a[j][0] * v[j][0] + a[j][1] * v[j][1] for j in v)
        if kw % 2:
            out0 += a[n][0] * v[n][1]
        else:
            out1 += a[n][0] * u[n - 1][1]
        assert out0 == int(np.dot(w, x[:kw]))
        assert out1 == int(np.dot(w, x[1 : kw + 1]))


# --- emulated Cortex-M4 -------------------------------------------------------------------


def _emulator_missing() -> str | None:
    for tool in ("arm-none-eabi-gcc", "qemu-system-arm"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    probe = subprocess.run(
        ["arm-none-eabi-gcc", "--specs=picolibc.specs", "-E", "-x", "c", "/dev/null"],
        capture_output=True,
    )
    return "picolibc for arm-none-eabi-gcc is not installed" if probe.returncode else None


def _run_emulated(
    compiled: Compiled, inputs: list[list[np.ndarray]], tmp: Path, count: bool = False
) -> Any:
    from edgekit.runners.emulated import build_firmware, run_firmware

    reason = _emulator_missing()
    if reason:
        pytest.skip(reason)
    src = tmp / "src"
    src.mkdir()
    for fname, text in compiled.generated.files.items():
        (src / fname).write_text(text)
    elf = build_firmware(TARGET, [src / f"{compiled.generated.name}.c"], [src], tmp / "fw")
    g = compiled.graph
    specs = [(g.tensor(t).shape, np.dtype(g.tensor(t).dtype)) for t in g.outputs]
    return run_firmware(
        TARGET, elf, inputs, specs, timeout_s=120, count_instructions=count, per_layer=False
    )


EMULATED_CONV = [
    # IC % 4 == 0, SAME padding, stride 2 (word expansion, edge columns)
    dict(hw=(9, 7), kernel=(3, 3), stride=(2, 2), dilation=(1, 1), padding="SAME", cin=8, cout=7),
    # IC = 3, odd pixel count (segment tails, single-pixel block, odd channel)
    dict(hw=(5, 5), kernel=(3, 2), stride=(1, 1), dilation=(2, 1), padding="SAME", cin=3, cout=5),
]
EMULATED_CONV.append(
    # 68 steps: looped block with a tail, weight stream offsets past 256 bytes
    dict(hw=(5, 7), kernel=(3, 3), stride=(2, 2), dilation=(1, 1), padding="SAME", cin=30, cout=5)
)
EMULATED_DW = [
    # quads (two pairs per pass) and a single output, stride 1
    dict(hw=(8, 9), kernel=(3, 3), stride=(1, 1), dilation=(1, 1), padding="SAME", cin=8, cout=8),
    dict(hw=(9, 8), kernel=(3, 4), stride=(2, 2), dilation=(1, 1), padding="SAME", cin=3, cout=6),
    # quad and pair with stride 2 (the barrier between kernel rows), odd channel count
    dict(hw=(7, 11), kernel=(3, 3), stride=(2, 2), dilation=(1, 1), padding="SAME", cin=5, cout=5),
]

EMULATED_POOL = [
    _pool_spec("MAX_POOL_2D", [1, 7, 9, 13], (3, 3), stride=(2, 2), padding="SAME",
               activation="RELU6", scale=0.03, zp=-100),
    _pool_spec("AVERAGE_POOL_2D", [1, 6, 7, 21], (3, 2), stride=(2, 2), padding="SAME",
               zp=11),
    _pool_spec("AVERAGE_POOL_2D", [1, 25, 5, 64], (25, 5)),
]  # fmt: skip


def _case(**kw: Any) -> dict[str, Any]:
    base = {
        "batch": 1, "activation": "RELU", "in_scale": 0.02, "in_zp": -5, "out_zp": 3,
        "gain": 0.5, "dead_channel": True, "seed": 11,
    }  # fmt: skip
    return {**base, **kw}


@pytest.mark.emulated
def test_single_ops_bit_exact_on_cortex_m4(tmp_path: Path) -> None:
    models = [_conv_model(_case(**c), depthwise=False) for c in EMULATED_CONV]
    models += [_conv_model(_case(**c), depthwise=True) for c in EMULATED_DW]
    models.append(
        _fc_model(
            {"depth": 37, "units": 7, "rows": 2, "per_channel": True, "activation": "NONE",
             "in_scale": 0.03, "in_zp": 4, "out_zp": -9, "gain": 0.7, "seed": 5}
        )
    )  # fmt: skip
    for op in ("ADD", "SUB"):
        models.append(
            _add_model({"op": op, "shape": [1, 3, 5, 7], "scales": (0.03, 0.011),
                        "zps": (-7, 12, -2), "gain": 1.3, "activation": "NONE", "seed": 1})
        )  # fmt: skip
    # pooling: SSUB8/SEL and SXTAB16 on the core, word loads at odd channel offsets
    models += [_pool_model(c) for c in EMULATED_POOL]
    for i, model in enumerate(models):
        compiled = _compile(model)
        inputs = _inputs(compiled, i, 3)
        (tmp_path / str(i)).mkdir()
        result = _run_emulated(compiled, inputs, tmp_path / str(i))
        _assert_equal(result.outputs, run_tflm(model, inputs))


# Floors just under the measured MACs per executed instruction (docs/kernels-dsp.md), so a
# change that makes the kernels slower fails here rather than only in the benchmark.
MLPERF_FLOORS = {"ad": 0.95, "kws": 0.80, "ic": 0.95, "vww": 0.78}


@pytest.mark.emulated
@pytest.mark.mlperf
@pytest.mark.parametrize("key", ["ad", "kws", "ic", "vww"])
def test_mlperf_bit_exact_on_cortex_m4(key: str, tmp_path: Path) -> None:
    path = mlperf_model(key)
    compiled = compile_file(path, TARGET)
    for op in compiled.graph.ops:
        if op.kind in KERNEL_KINDS:
            assert op.attrs["kernel"]["family"] == "dsp", f"{op.name} is not on a DSP kernel"
    inputs = random_inputs(compiled.graph, 2, seed=77)
    result = _run_emulated(compiled, inputs, tmp_path, count=True)
    _assert_equal(result.outputs, run_tflm(path.read_bytes(), inputs))
    macs = sum(layer.macs for layer in compiled.generated.layers)
    assert macs / result.instructions[0] >= MLPERF_FLOORS[key]
