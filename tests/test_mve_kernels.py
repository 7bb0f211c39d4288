"""Helium (MVE) kernels on an emulated Cortex-M55: every output byte equals TFLite Micro.

Building firmware and starting QEMU costs a second or two, so each test puts many random
layers into one model: every layer is an independent op with its own input and output, the
model is compiled for cortex-m55 once and run once, and TFLM runs the same model. Shapes are
drawn from a seeded generator so every run checks the same cases; they are chosen to reach every
code path of the kernels (channel counts that are not multiples of 4 or 16, reductions with and
without a partial 16-byte tail, padding, strides, dilations, depth multipliers, both depthwise
orientations and the fallbacks). Packing many layers into one arena also catches stray stores:
a write past a tensor lands on a neighbour that is compared later.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from codegen import kernels
from edgekit.frontends.tflite import read_tflite
from edgekit.frontends.tflite_writer import TFLiteBuilder
from edgekit.ir import fixedpoint as fp
from edgekit.pipeline import Compiled, compile_file, compile_graph
from edgekit.reference.tflm import run_tflm
from edgekit.resources import resource_dir
from edgekit.targets import load_target
from tests.conftest import mlperf_model

pytestmark = pytest.mark.emulated

TARGET = "cortex-m55"
SAMPLES = 2
ACTIVATIONS = ["NONE", "RELU", "RELU6", "RELU_N1_TO_1"]


def _require_toolchain() -> None:
    t = load_target(TARGET)
    for tool in (t.compiler.command, t.emulator.command):
        if tool and not shutil.which(tool):
            pytest.skip(f"{tool} is not installed (needed for {TARGET})")
    probe = subprocess.run(
        [t.compiler.command, "--specs=picolibc.specs", "-E", "-x", "c", "/dev/null"],
        capture_output=True,
    )
    if probe.returncode != 0:
        pytest.skip("picolibc for arm-none-eabi-gcc is not installed")


# --- building one model out of many independent layers ----------------------------------------


def _f32(x: float) -> float:
    return float(np.float32(x))


def _out_size(size: int, k: int, s: int, d: int, padding: str) -> int:
    if padding == "SAME":
        return (size + s - 1) // s
    return (size - ((k - 1) * d + 1) + s) // s


class _Layers:
    """Independent single-op layers in one TFLiteBuilder model.

    Each layer draws its weights and quantization from its own generator, seeded by the model
    seed and its position, so a failing layer can be rebuilt on its own with the same numbers.
    """

    def __init__(self, seed: int) -> None:
        self.b = TFLiteBuilder()
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.ins: list[int] = []
        self.outs: list[int] = []
        self.cases: list[dict[str, Any]] = []

    def zero_point(self) -> int:
        return int(self.rng.choice([0, -128, int(self.rng.integers(-128, 128))]))

    def scale(self, lo: float, hi: float) -> float:
        return _f32(10.0 ** self.rng.uniform(lo, hi))

    def weight_scales(self, channels: int, per_channel: bool) -> np.ndarray:
        if per_channel:
            return (10.0 ** self.rng.uniform(-4.0, -1.0, channels)).astype(np.float32)
        return np.full(1, 10.0 ** self.rng.uniform(-3.5, -1.5), dtype=np.float32)

    def out_scale(self, in_scale: float, w_scales: np.ndarray, fan_in: int, case: dict) -> float:
        if case.get("gain"):
            # a requantisation multiplier near one: some channels shift left, some not at all
            return _f32(in_scale * float(np.median(w_scales)) * self.scale(-0.5, 0.2))
        # about the spread of an int8 dot product, so outputs use the whole int8 range
        spread = np.sqrt(max(fan_in, 1)) * 74.0
        return _f32(in_scale * float(np.median(w_scales)) * spread * self.scale(-0.7, 0.7))

    def weights(self, shape: Any, case: dict) -> np.ndarray:
        # small weights with gain cases, so that some accumulators stay inside the int8 range
        hi = 3 if case.get("gain") else 128
        return self.rng.integers(1 - hi, hi, shape).astype(np.int8)

    def bias(self, n: int, case: dict) -> np.ndarray:
        return self.rng.normal(0.0, 20.0 if case.get("gain") else 3000.0, n).astype(np.int32)

    def start(self, case: dict[str, Any]) -> str:
        """Seed this layer's generator; returns the prefix of its tensor names."""
        case.setdefault("seed", self.seed * 1000 + len(self.cases))
        self.rng = np.random.default_rng(case["seed"])
        return f"L{len(self.cases)}"

    def add(self, case: dict[str, Any], x: int | list[int], y: int) -> None:
        self.cases.append(case)
        self.ins.extend(x if isinstance(x, list) else [x])
        self.outs.append(y)

    def conv(self, case: dict[str, Any], depthwise: bool) -> None:
        n, h, w, cin = case["input"]
        kh, kw = case["kernel"]
        (sh, sw), (dh, dw) = case["stride"], case["dilation"]
        mult = case.get("multiplier", 1)
        cout = cin * mult if depthwise else case["cout"]
        oh = _out_size(h, kh, sh, dh, case["padding"])
        ow = _out_size(w, kw, sw, dw, case["padding"])
        tag = self.start(case)
        per_channel = bool(self.rng.integers(0, 2))
        w_scales = self.weight_scales(cout, per_channel)
        in_scale, in_zp = self.scale(-3.0, 0.0), self.zero_point()
        b = self.b
        x = b.tensor(f"{tag}_x", [n, h, w, cin], np.int8, in_scale, in_zp)
        shape = (1, kh, kw, cout) if depthwise else (cout, kh, kw, cin)
        weights = self.weights(shape, case)
        wt = b.const(f"{tag}_w", weights, w_scales, 0, quantized_dimension=3 if depthwise else 0)
        bias_scale = (in_scale * w_scales.astype(np.float64)).astype(np.float32)
        bias = self.bias(cout, case)
        bt = b.const(f"{tag}_b", bias, bias_scale, 0)
        fan_in = kh * kw * (1 if depthwise else cin)
        y = b.tensor(
            f"{tag}_y",
            [n, oh, ow, cout],
            np.int8,
            self.out_scale(in_scale, w_scales, fan_in, case),
            self.zero_point(),
        )
        b.op(
            "DEPTHWISE_CONV_2D" if depthwise else "CONV_2D",
            [x, wt, bt],
            [y],
            stride=case["stride"],
            dilation=case["dilation"],
            padding=case["padding"],
            activation=case.get("activation", "NONE"),
        )
        self.add(case, x, y)

    def fully_connected(self, case: dict[str, Any]) -> None:
        rows, depth, units = case["rows"], case["depth"], case["units"]
        tag = self.start(case)
        in_scale, in_zp = self.scale(-3.0, 0.0), self.zero_point()
        w_scales = self.weight_scales(units, case["per_channel"])
        w_zp = 0 if case["per_channel"] else int(self.rng.choice([0, 5, -128, 127]))
        b = self.b
        x = b.tensor(f"{tag}_x", [rows, depth], np.int8, in_scale, in_zp)
        weights = self.weights((units, depth), case)
        wt = b.const(f"{tag}_w", weights, w_scales, w_zp)
        bias = b.const(
            f"{tag}_b",
            self.bias(units, case),
            (in_scale * w_scales.astype(np.float64)).astype(np.float32),
            0,
        )
        y = b.tensor(
            f"{tag}_y",
            [rows, units],
            np.int8,
            self.out_scale(in_scale, w_scales, depth, case),
            self.zero_point(),
        )
        b.op("FULLY_CONNECTED", [x, wt, bias], [y], activation=case.get("activation", "NONE"))
        self.add(case, x, y)

    def pool(self, case: dict[str, Any]) -> None:
        n, h, w, c = case["input"]
        (fh, fw), (sh, sw) = case["filter"], case["stride"]
        oh = _out_size(h, fh, sh, 1, case["padding"])
        ow = _out_size(w, fw, sw, 1, case["padding"])
        tag = self.start(case)
        scale, zp = self.scale(-3.0, -0.5), self.zero_point()
        x = self.b.tensor(f"{tag}_x", [n, h, w, c], np.int8, scale, zp)
        y = self.b.tensor(f"{tag}_y", [n, oh, ow, c], np.int8, scale, zp)
        self.b.op(
            case["op"],
            [x],
            [y],
            filter=case["filter"],
            stride=case["stride"],
            padding=case["padding"],
            activation=case.get("activation", "NONE"),
        )
        self.add(case, x, y)

    def elementwise(self, case: dict[str, Any]) -> None:
        tag = self.start(case)
        s1, s2 = self.scale(-3.0, 0.0), self.scale(-3.0, 0.0)
        shape1, shape2 = case["shape"], case.get("shape2", case["shape"])
        x1 = self.b.tensor(f"{tag}_a", shape1, np.int8, s1, self.zero_point())
        x2 = self.b.tensor(f"{tag}_b", shape2, np.int8, s2, self.zero_point())
        # an output scale the reference accepts: above twice the larger input scale / 2^20
        y = self.b.tensor(
            f"{tag}_y",
            case["shape"],
            np.int8,
            _f32(max(s1, s2) * self.scale(-0.3, 0.7)),
            self.zero_point(),
        )
        self.b.op(case["op"], [x1, x2], [y], activation=case.get("activation", "NONE"))
        self.add(case, [x1, x2], y)

    def model(self) -> bytes:
        self.b.inputs(self.ins)
        self.b.outputs(self.outs)
        return self.b.finish()


def _compile(model: bytes) -> Compiled:
    return compile_graph(read_tflite(model, "<test_mve_kernels>", "mve_layers"), TARGET)


def _templates(compiled: Compiled) -> list[str]:
    return [layer.variant.template for layer in compiled.generated.layers if not layer.noop]


def _assert_bit_exact(model: bytes, compiled: Compiled, cases: list[dict[str, Any]]) -> None:
    from edgekit.runners.emulated_model import EmulatedModel

    rng = np.random.default_rng(1234)
    graph = compiled.graph
    inputs = [
        [rng.integers(-128, 128, graph.tensor(t).shape).astype(np.int8) for t in graph.inputs]
        for _ in range(SAMPLES)
    ]
    ours = EmulatedModel(compiled).run(inputs).outputs
    reference = run_tflm(model, inputs)
    templates = _templates(compiled)
    for s, (got, want) in enumerate(zip(ours, reference, strict=True)):
        for k, (a, r) in enumerate(zip(got, want, strict=True)):
            a = np.asarray(a).reshape(-1)
            r = np.asarray(r, dtype=a.dtype).reshape(-1)
            bad = np.nonzero(a != r)[0]
            if bad.size:
                idx = bad[:8].tolist()
                pytest.fail(
                    f"sample {s} layer {k} ({templates[k]}, {cases[k]}): {bad.size} of {a.size} "
                    f"outputs differ at {idx}: MVE {a[idx].tolist()} vs TFLM {r[idx].tolist()}"
                )


# --- cases ---------------------------------------------------------------------------------


def _conv_cases(rng: np.random.Generator) -> list[dict[str, Any]]:
    """Pointwise convolutions with every kind of reduction tail, then general ones."""
    cases: list[dict[str, Any]] = []
    for cin in (1, 3, 8, 15, 16, 17, 31, 40, 64, 70):
        n, h, w = int(rng.integers(1, 3)), int(rng.integers(1, 6)), int(rng.integers(1, 7))
        cases.append(
            {
                "input": [n, h, w, cin],
                "kernel": (1, 1),
                "stride": (1, 1) if cin % 2 else (2, int(rng.integers(1, 3))),
                "dilation": (1, 1),
                "padding": str(rng.choice(["SAME", "VALID"])),
                "cout": int(rng.integers(1, 14)),
                "activation": str(rng.choice(ACTIVATIONS)),
            }
        )
    # multipliers near one: left shifts and shifts of zero, in both GEMM kernels
    for cin, kernel in ((1, (1, 1)), (5, (1, 1)), (18, (1, 1)), (2, (3, 3)), (3, (2, 1))):
        cases.append(
            {
                "input": [1, 4, 5, cin],
                "kernel": kernel,
                "stride": (1, 1),
                "dilation": (1, 1),
                "padding": "SAME",
                "cout": 7,
                "gain": True,
            }
        )
    for _ in range(24):
        padding = str(rng.choice(["SAME", "VALID"]))
        h, w = int(rng.integers(1, 10)), int(rng.integers(1, 10))
        kh, kw = int(rng.integers(1, 5)), int(rng.integers(1, 5))
        dh, dw = int(rng.integers(1, 3)), int(rng.integers(1, 3))
        if padding == "VALID":
            if (kh - 1) * dh + 1 > h:
                dh, kh = 1, min(kh, h)
            if (kw - 1) * dw + 1 > w:
                dw, kw = 1, min(kw, w)
        cases.append(
            {
                "input": [int(rng.integers(1, 3)), h, w, int(rng.integers(1, 12))],
                "kernel": (kh, kw),
                "stride": (int(rng.integers(1, 4)), int(rng.integers(1, 4))),
                "dilation": (dh, dw),
                "padding": padding,
                "cout": int(rng.integers(1, 11)),
                "activation": str(rng.choice(ACTIVATIONS)),
            }
        )
    return cases


def _dw_cases(rng: np.random.Generator) -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = []
    # 3x3 in the shapes real networks use: stride 1 (3 outputs per gather) and 2 (2 per gather),
    # rows and columns as the long axis, runs with and without a partial last vector
    for h, w, c, s in (
        (25, 5, 19, 1),
        (5, 25, 8, 1),
        (14, 14, 12, 1),
        (12, 13, 5, 2),
        (7, 6, 33, 1),
        (6, 6, 9, 2),
        (3, 3, 17, 1),
        (2, 9, 3, 2),
        (1, 1, 4, 1),
    ):
        cases.append(
            {
                "input": [1, h, w, c],
                "kernel": (3, 3),
                "stride": (s, s),
                "dilation": (1, 1),
                "padding": str(rng.choice(["SAME", "VALID"])) if min(h, w) >= 3 else "SAME",
                "activation": str(rng.choice(ACTIVATIONS)),
            }
        )
    # images large enough for a ring of lines instead of the whole image, with every number of
    # outputs per gather (m = 3, 2, 1) and a depth multiplier
    for h, w, c, kernel, stride, dilation, mult in (
        (24, 24, 16, (3, 3), (2, 2), (1, 1), 1),
        (16, 12, 20, (3, 3), (1, 1), (2, 2), 1),
        (12, 20, 17, (2, 3), (1, 1), (1, 1), 1),
        (21, 9, 24, (3, 2), (2, 1), (1, 1), 1),
        (14, 18, 9, (3, 3), (1, 2), (1, 1), 2),
    ):
        cases.append(
            {
                "input": [1, h, w, c],
                "kernel": kernel,
                "stride": stride,
                "dilation": dilation,
                "padding": str(rng.choice(["SAME", "VALID"])),
                "multiplier": mult,
                "activation": str(rng.choice(ACTIVATIONS)),
            }
        )
    for _ in range(22):
        padding = str(rng.choice(["SAME", "VALID"]))
        h, w = int(rng.integers(1, 11)), int(rng.integers(1, 11))
        kh, kw = int(rng.integers(1, 5)), int(rng.integers(1, 5))
        dh, dw = int(rng.integers(1, 3)), int(rng.integers(1, 3))
        if padding == "VALID":
            if (kh - 1) * dh + 1 > h:
                dh, kh = 1, min(kh, h)
            if (kw - 1) * dw + 1 > w:
                dw, kw = 1, min(kw, w)
        cases.append(
            {
                "input": [int(rng.integers(1, 3)), h, w, int(rng.integers(1, 10))],
                "kernel": (kh, kw),
                "stride": (int(rng.integers(1, 4)), int(rng.integers(1, 4))),
                "dilation": (dh, dw),
                "padding": padding,
                "multiplier": int(rng.choice([1, 1, 2, 3])),
                "activation": str(rng.choice(ACTIVATIONS)),
            }
        )
    # multipliers near one, in the gather kernel (line and tail code) and the fallback
    for h, w, kernel in ((6, 14, (3, 3)), (9, 3, (3, 3)), (4, 4, (5, 4))):
        cases.append(
            {
                "input": [1, h, w, 6],
                "kernel": kernel,
                "stride": (1, 1),
                "dilation": (1, 1),
                "padding": "SAME",
                "gain": True,
            }
        )
    # fallbacks of the gather kernel: more than 16 taps, and a row too wide for 8-bit offsets
    cases.append(
        {
            "input": [1, 7, 6, 6],
            "kernel": (5, 5),
            "stride": (1, 1),
            "dilation": (1, 1),
            "padding": "SAME",
            "multiplier": 2,
        }
    )
    cases.append(
        {
            "input": [1, 4, 130, 5],
            "kernel": (3, 3),
            "stride": (1, 2),
            "dilation": (1, 1),
            "padding": "SAME",
        }
    )
    return cases


def _fc_cases(rng: np.random.Generator) -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = [
        {"rows": 2, "depth": depth, "units": 6, "per_channel": True, "gain": True}
        for depth in (1, 20)
    ]
    for depth in (1, 7, 16, 17, 33, 64, 100, 129):
        for per_channel in (False, True):
            cases.append(
                {
                    "rows": int(rng.integers(1, 4)),
                    "depth": depth,
                    "units": int(rng.integers(1, 14)),
                    "per_channel": per_channel,
                    "activation": str(rng.choice(ACTIVATIONS)),
                }
            )
    return cases


def _pool_cases(rng: np.random.Generator) -> list[dict[str, Any]]:
    cases = []
    for op in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
        for _ in range(10):
            padding = str(rng.choice(["SAME", "VALID"]))
            h, w = int(rng.integers(1, 10)), int(rng.integers(1, 10))
            fh, fw = int(rng.integers(1, 5)), int(rng.integers(1, 5))
            if padding == "VALID":
                fh, fw = min(fh, h), min(fw, w)
            c = int(rng.choice([1, 3, 4, 16, 21, 35]))
            cases.append(
                {
                    "op": op,
                    "input": [int(rng.integers(1, 3)), h, w, c],
                    "filter": (fh, fw),
                    "stride": (int(rng.integers(1, 4)), int(rng.integers(1, 4))),
                    "padding": padding,
                    "activation": str(rng.choice(ACTIVATIONS)),
                }
            )
        # global pooling, as at the end of KWS and VWW
        cases.append(
            {
                "op": op,
                "input": [1, 25, 5, 64],
                "filter": (25, 5),
                "stride": (25, 5),
                "padding": "VALID",
            }
        )
    # beyond 256 taps int16 lanes could overflow: the average sums in int32 lanes instead
    cases.append(
        {
            "op": "AVERAGE_POOL_2D",
            "input": [1, 17, 16, 5],
            "filter": (17, 16),
            "stride": (17, 16),
            "padding": "VALID",
        }
    )
    return cases


def _elementwise_cases(rng: np.random.Generator) -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = []
    for op in ("ADD", "SUB"):
        for shape in ([1, 5, 7, 3], [2, 4, 4, 16], [1, 33], [7], [1, 8, 8, 13]):
            cases.append({"op": op, "shape": shape, "activation": str(rng.choice(ACTIVATIONS))})
    # broadcasting stays with the portable kernel
    cases.append({"op": "ADD", "shape": [1, 4, 4, 8], "shape2": [1, 1, 1, 8]})
    return cases


def _check_layers(
    build: Callable[[_Layers, np.random.Generator], None], seed: int, expect: set[str]
) -> None:
    _require_toolchain()
    layers = _Layers(seed)
    build(layers, np.random.default_rng(seed))
    model = layers.model()
    compiled = _compile(model)
    used = set(_templates(compiled))
    # the cases are meant to exercise these variants; a silent portable fallback would not
    assert expect <= used, f"variants not exercised: {sorted(expect - used)}"
    _assert_bit_exact(model, compiled, layers.cases)


# --- tests ---------------------------------------------------------------------------------


def test_conv2d_matches_tflm() -> None:
    def build(layers: _Layers, rng: np.random.Generator) -> None:
        for case in _conv_cases(rng):
            layers.conv(case, depthwise=False)

    _check_layers(build, 11, {"mve/conv2d_1x1.c.j2", "mve/conv2d.c.j2"})


def test_depthwise_conv2d_matches_tflm() -> None:
    def build(layers: _Layers, rng: np.random.Generator) -> None:
        for case in _dw_cases(rng):
            layers.conv(case, depthwise=True)

    _check_layers(build, 12, {"mve/depthwise_conv2d.c.j2", "mve/depthwise_conv2d_lanes.c.j2"})


def test_fully_connected_pooling_and_add_match_tflm() -> None:
    def build(layers: _Layers, rng: np.random.Generator) -> None:
        for case in _fc_cases(rng):
            layers.fully_connected(case)
        for case in _pool_cases(rng):
            layers.pool(case)
        for case in _elementwise_cases(rng):
            layers.elementwise(case)

    _check_layers(
        build,
        13,
        {
            "mve/fully_connected.c.j2",
            "mve/avg_pool2d.c.j2",
            "mve/max_pool2d.c.j2",
            "mve/add_sub.c.j2",
            "portable/add_sub.c.j2",
        },
    )


@pytest.mark.mlperf
@pytest.mark.parametrize("key", ["kws", "vww", "ic", "ad"])
def test_mlperf_models_bit_exact_on_m55(key: str) -> None:
    from edgekit.runners.emulated_model import EmulatedModel
    from edgekit.verify import compare, random_inputs

    _require_toolchain()
    path = mlperf_model(key)
    compiled = compile_file(path, TARGET)
    families = {layer.variant.family for layer in compiled.generated.layers if layer.macs}
    assert families == {"mve"}, families
    inputs = random_inputs(compiled.graph, 3, seed=21)
    ours = EmulatedModel(compiled).run(inputs).outputs
    result = compare(compiled, ours, run_tflm(path.read_bytes(), inputs))
    assert result.ok, result.to_json()


# --- the vector requantisation against the scalar one, on edge values -----------------------

_REQUANT_MAIN = r"""
#include <stdint.h>
#include <string.h>
#include "edgekit_mve.h"
#include "harness_model.h"

#define RESULTS 4
static int32_t ek_args[HARNESS_ROWS * 3];
static int32_t ek_results[HARNESS_ROWS * RESULTS];

void requant_load(const void *const *inputs) { memcpy(ek_args, inputs[0], sizeof ek_args); }

/* Each row (x, multiplier, shift) through ek_mbqm and through every vector variant the kernels
   use: four rows at a time in the per-lane forms, so lanes are checked against their
   neighbours, and one row broadcast in the scalar-constant form. A variant that does not apply
   to a row's shift repeats the scalar result. */
void requant_run(void)
{
    int i, k;
    for (i = 0; i < HARNESS_ROWS; i += 4) {
        int32_t x[4], m[4], l[4], r[4], out[4], one[4];
        int right_only = 1;
        for (k = 0; k < 4; ++k) {
            const int32_t shift = ek_args[3 * (i + k) + 2];
            x[k] = ek_args[3 * (i + k)];
            m[k] = ek_args[3 * (i + k) + 1];
            l[k] = shift > 0 ? shift : 0;
            r[k] = shift > 0 ? 0 : shift;
            right_only = right_only && shift < 0;
            ek_results[RESULTS * (i + k)] = ek_mbqm(x[k], m[k], shift);
        }
        vst1q_s32(out, ek_mve_mbqm_left(vld1q_s32(x), vld1q_s32(m), vld1q_s32(l), vld1q_s32(r)));
        for (k = 0; k < 4; ++k) {
            ek_results[RESULTS * (i + k) + 1] = out[k];
        }
        if (right_only) {
            vst1q_s32(out, ek_mve_mbqm_rshift(vld1q_s32(x), vld1q_s32(m), vld1q_s32(r)));
        }
        for (k = 0; k < 4; ++k) {
            ek_results[RESULTS * (i + k) + 2] = right_only ? out[k] : ek_results[RESULTS * (i + k)];
            if (r[k] < 0) {
                vst1q_s32(one, ek_mve_mbqm_n_rshift(vdupq_n_s32(x[k]), m[k], r[k]));
                ek_results[RESULTS * (i + k) + 3] = one[k];
            } else {
                ek_results[RESULTS * (i + k) + 3] = ek_results[RESULTS * (i + k)];
            }
        }
    }
}

void requant_store(void *const *outputs) { memcpy(outputs[0], ek_results, sizeof ek_results); }
"""

_REQUANT_HARNESS = r"""
#ifndef HARNESS_MODEL_H
#define HARNESS_MODEL_H
#include <stddef.h>
#include <stdint.h>
#define HARNESS_ROWS {rows}
#define HARNESS_N_INPUTS 1
#define HARNESS_N_OUTPUTS 1
#define HARNESS_N_LAYERS 1
void requant_load(const void *const *inputs);
void requant_run(void);
void requant_store(void *const *outputs);
static const size_t harness_input_bytes[1] = {{HARNESS_ROWS * 12}};
static const size_t harness_output_bytes[1] = {{HARNESS_ROWS * 16}};
static inline void harness_load_inputs(const void *const *inputs) {{ requant_load(inputs); }}
static inline void harness_run_layer(int i) {{ (void)i; requant_run(); }}
static inline void harness_store_outputs(void *const *outputs) {{ requant_store(outputs); }}
static inline int harness_run(const void *const *inputs, void *const *outputs)
{{
    requant_load(inputs);
    requant_run();
    requant_store(outputs);
    return 0;
}}
#endif
"""


def _requant_rows(rng: np.random.Generator) -> np.ndarray:
    """(x, multiplier, shift) rows on the edges of both roundings and of the int32 range."""
    i32 = np.iinfo(np.int32)
    rows = []
    edges_x = [
        i32.min,
        i32.min + 1,
        -(1 << 30),
        -3,
        -2,
        -1,
        0,
        1,
        2,
        3,
        1 << 30,
        i32.max - 1,
        i32.max,
    ]
    mults = [0, 1 << 30, (1 << 30) + 1, 1518500250, i32.max - 1, i32.max]
    for shift in range(-31, 31):
        for m in mults:
            for x in edges_x:
                rows.append((x, m, shift))
        # ties of the right shift: with m = 2^30 the high product is exactly x / 2
        if shift < 0:
            n = -shift
            for k in (-3, -2, -1, 0, 1, 2):
                h = k * (1 << n) + (1 << (n - 1))
                for x in (2 * h, 2 * h - 1, 2 * h + 1, -2 * h):
                    if i32.min <= x <= i32.max:
                        rows.append((x, 1 << 30, shift))
        for _ in range(24):
            rows.append(
                (
                    int(rng.integers(i32.min, i32.max, endpoint=True)),
                    int(rng.integers(1 << 30, i32.max, endpoint=True)),
                    shift,
                )
            )
    rows += [rows[-1]] * (-len(rows) % 4)
    return np.array(rows, dtype=np.int64)


def test_vector_requantisation_equals_scalar_on_edges(tmp_path: Path) -> None:
    """Every vector form of ek_mbqm the kernels use against the scalar one, on the device."""
    from edgekit.runners.emulated import build_firmware, run_firmware

    _require_toolchain()
    rows = _requant_rows(np.random.default_rng(5))
    src = tmp_path / "src"
    src.mkdir()
    (src / "requant.c").write_text(_REQUANT_MAIN)
    (src / "harness_model.h").write_text(_REQUANT_HARNESS.format(rows=len(rows)))
    for header in ("edgekit_fixedpoint.h", "edgekit_mve.h"):
        shutil.copy(resource_dir("csrc") / header, src / header)
    target = load_target(TARGET)
    elf = build_firmware(target, [src / "requant.c"], [src], tmp_path / "build")
    args = rows.astype(np.int32).reshape(-1)
    out = run_firmware(target, elf, [[args]], [((len(rows) * 4,), np.int32)]).outputs[0][0]
    out = out.reshape(-1, 4)
    scalar = out[:, 0]
    for variant in range(1, 4):
        bad = np.nonzero(out[:, variant] != scalar)[0]
        assert not bad.size, (variant, [(rows[i].tolist(), out[i].tolist()) for i in bad[:8]])
    # and both agree with the Python model of the reference's arithmetic where the reference's
    # left shift does not overflow (edgekit wraps there, as two's complement hardware does)
    for i in range(0, len(rows), 7):
        x, m, s = (int(v) for v in rows[i])
        if -(1 << 31) <= x * (1 << max(s, 0)) < 1 << 31:
            assert int(scalar[i]) == fp.multiply_by_quantized_multiplier(x, m, s), (x, m, s)


# --- selection -----------------------------------------------------------------------------


def test_mve_kernels_only_on_helium_targets() -> None:
    path = mlperf_model("kws")
    for target in ("cortex-m4", "host"):
        compiled = compile_file(path, target)
        assert all(layer.variant.family != "mve" for layer in compiled.generated.layers)
    for kind in ("conv2d", "depthwise_conv2d", "fully_connected"):
        variants = kernels._REGISTRY[("mve", kind)]
        assert all(v.requires == frozenset({"mve-i"}) for v in variants)


@pytest.mark.parametrize("target", ["cortex-m55", "cortex-m85"])
def test_generated_c_is_warning_free(target: str, tmp_path: Path) -> None:
    """The MVE kernels compile with -Wall -Wextra -Werror for both Helium targets."""
    t = load_target(target)
    if not shutil.which(t.compiler.command):
        pytest.skip(f"{t.compiler.command} is not installed")
    rng = np.random.default_rng(3)
    layers = _Layers(3)
    # one of each kind of tail is enough here: each layer costs compile time
    for case in _conv_cases(rng)[::4]:
        layers.conv(case, depthwise=False)
    for case in _dw_cases(rng)[::4]:
        layers.conv(case, depthwise=True)
    for case in _fc_cases(rng)[:4]:
        layers.fully_connected(case)
    for case in _pool_cases(rng)[::5]:
        layers.pool(case)
    for case in _elementwise_cases(rng)[::3]:
        layers.elementwise(case)
    graph = read_tflite(layers.model(), "<warnings>", "mve_layers")
    compiled = compile_graph(graph, target)
    for name, text in compiled.generated.files.items():
        (tmp_path / name).write_text(text)
    c_file = tmp_path / f"{compiled.generated.name}.c"
    cmd = [t.compiler.command, *t.compiler.cflags, "-std=c99", "-Wall", "-Wextra", "-Werror"]
    proc = subprocess.run(
        [*cmd, "-c", str(c_file), "-o", str(tmp_path / "m.o")], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
