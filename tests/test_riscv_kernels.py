"""RISC-V kernel families (rv32 scalar, rvv vector) equal TFLite Micro byte for byte under QEMU.

Each firmware holds many random, independent single-op layers (one model input and output per
layer), so one build and one QEMU run cover a whole suite of shapes: odd channel counts, several
channel blocks plus a partial one, SAME/VALID, stride 2, dilation, depth multipliers, per-tensor
and per-channel quantization (left shifts, zero right shifts), activations, asymmetric dense
weights and batched rows. The four MLPerf Tiny int8 models run bit-exact on both ISAs too.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgekit.frontends.tflite import read_tflite
from edgekit.frontends.tflite_writer import TFLiteBuilder
from edgekit.ir import serialize
from edgekit.pipeline import Compiled, compile_file, compile_graph
from edgekit.reference.tflm import run_tflm
from edgekit.targets import Target, load_target
from edgekit.verify import compare, random_inputs
from tests.conftest import mlperf_model

pytestmark = pytest.mark.emulated

SCALAR = "rv32imc"
VECTOR = "rv32imc-zve32x"
SAMPLES = 3
ACTIVATIONS = ["NONE", "RELU", "RELU6", "NONE", "NONE"]


def _require(name: str) -> Target:
    t = load_target(name)
    tools = [t.compiler.command, t.compiler.linker, t.emulator.command]
    for tool in filter(None, tools):
        if tool == "ziglang":
            if importlib.util.find_spec("ziglang") is None:
                pytest.skip(f"the ziglang wheel is not installed (needed for {name})")
        elif not shutil.which(tool):
            pytest.skip(f"{tool} is not installed (needed for {name})")
    return t


# --- random layers ---------------------------------------------------------------------------


def _f32(v: float) -> float:
    return float(np.float32(v))


def _out_size(size: int, k: int, s: int, d: int, padding: str) -> int:
    if padding == "SAME":
        return (size + s - 1) // s
    return (size - ((k - 1) * d + 1) + s) // s


def _weight_scales(rng: np.random.Generator, per_channel: bool, channels: int) -> np.ndarray:
    if per_channel:
        return (10.0 ** rng.uniform(-3.5, -1.0, channels)).astype(np.float32)
    return np.full(1, 10.0 ** rng.uniform(-3.0, -1.5), dtype=np.float32)


def _out_scale(
    rng: np.random.Generator, in_scale: float, w_scales: np.ndarray, fan_in: int
) -> float:
    """An output scale that keeps most outputs in range; sometimes small enough that the
    effective multiplier exceeds 1 (a left shift) or lies in [0.5, 1) (no right shift)."""
    typical = in_scale * float(np.median(w_scales)) * np.sqrt(fan_in) * 74.0
    gain = rng.choice([1.0, 1.0, 0.3, 3.0, 1e-3])
    return _f32(typical * gain)


def _zero_point(rng: np.random.Generator) -> int:
    return int(rng.choice([0, -128, 127, int(rng.integers(-128, 128))]))


def _conv_layer(
    b: TFLiteBuilder, rng: np.random.Generator, i: int, kind: str
) -> tuple[list[int], int]:
    """One CONV_2D or DEPTHWISE_CONV_2D on its own input; returns its inputs and output."""
    depthwise = kind in ("depthwise", "bigdepthwise")
    padding = str(rng.choice(["SAME", "VALID"]))
    h = int(rng.integers(2, 10))
    # some wide rows: the row-vector variants take 32 pixels per vector, and more in two strips
    w = int(rng.choice([2, 3, 5, 8, 9, 21, 40]))
    if kind == "pointwise":
        kh = kw = 1
        dh = dw = 1
        padding = "VALID"
    elif kind == "bigdepthwise":
        # more taps than the depthwise kernels unroll
        kh, kw, dh, dw, padding = 6, 5, 1, 1, "SAME"
    else:
        kh, kw = int(rng.integers(1, 5)), int(rng.integers(1, 5))
        dh, dw = (
            (int(rng.integers(1, 3)), int(rng.integers(1, 3))) if rng.random() < 0.3 else (1, 1)
        )
    if padding == "VALID":
        if (kh - 1) * dh + 1 > h:
            dh, kh = 1, min(kh, h)
        if (kw - 1) * dw + 1 > w:
            dw, kw = 1, min(kw, w)
    sh, sw = (2, 2) if rng.random() < 0.35 else (int(rng.integers(1, 3)), 1)
    cin = int(rng.choice([1, 3, 5, 8, 16, 19, 33]))
    mult = int(rng.choice([1, 1, 2, 3])) if depthwise else 1
    cout = cin * mult if depthwise else int(rng.choice([1, 3, 7, 8, 16, 17, 32, 40, 67]))
    batch = int(rng.choice([1, 1, 1, 2]))
    per_channel = bool(rng.random() < 0.6)
    w_scales = _weight_scales(rng, per_channel, cout)
    in_scale = _f32(10.0 ** rng.uniform(-2.5, -0.5))
    fan_in = kh * kw * (1 if depthwise else cin)
    oh, ow = _out_size(h, kh, sh, dh, padding), _out_size(w, kw, sw, dw, padding)
    x = b.tensor(f"x{i}", [batch, h, w, cin], np.int8, in_scale, _zero_point(rng))
    shape = (1, kh, kw, cout) if depthwise else (cout, kh, kw, cin)
    wt = b.const(
        f"w{i}",
        rng.integers(-127, 128, shape).astype(np.int8),
        w_scales,
        0,
        quantized_dimension=3 if depthwise else 0,
    )
    bias_scale = (in_scale * w_scales.astype(np.float64)).astype(np.float32)
    bias = b.const(f"b{i}", rng.normal(0.0, 4000.0, cout).astype(np.int32), bias_scale, 0)
    y = b.tensor(
        f"y{i}", [batch, oh, ow, cout], np.int8, _out_scale(rng, in_scale, w_scales, fan_in),
        _zero_point(rng),
    )  # fmt: skip
    b.op(
        "DEPTHWISE_CONV_2D" if depthwise else "CONV_2D",
        [x, wt, bias],
        [y],
        stride=(sh, sw),
        dilation=(dh, dw),
        padding=padding,
        activation=str(rng.choice(ACTIVATIONS)),
        **({"depth_multiplier": mult} if depthwise else {}),
    )
    return [x], y


def _fc_layer(
    b: TFLiteBuilder, rng: np.random.Generator, i: int, kind: str
) -> tuple[list[int], int]:
    depth = int(rng.choice([1, 5, 16, 31, 64, 100]))
    units = int(rng.choice([1, 3, 8, 12, 33, 70]))
    rows = int(rng.choice([1, 1, 2, 3]))
    per_channel = bool(rng.random() < 0.4)
    w_scales = _weight_scales(rng, per_channel, units)
    w_zp: Any = 0 if per_channel else int(rng.choice([0, 0, 3, -128, 127]))
    in_scale = _f32(10.0 ** rng.uniform(-2.5, -0.5))
    x = b.tensor(f"x{i}", [rows, depth], np.int8, in_scale, _zero_point(rng))
    wt = b.const(f"w{i}", rng.integers(-127, 128, (units, depth)).astype(np.int8), w_scales, w_zp)
    bias_scale = (in_scale * w_scales.astype(np.float64)).astype(np.float32)
    bias = b.const(f"b{i}", rng.normal(0.0, 4000.0, units).astype(np.int32), bias_scale, 0)
    y = b.tensor(
        f"y{i}", [rows, units], np.int8, _out_scale(rng, in_scale, w_scales, depth),
        _zero_point(rng),
    )  # fmt: skip
    b.op("FULLY_CONNECTED", [x, wt, bias], [y], activation=str(rng.choice(ACTIVATIONS)))
    return [x], y


def _add_layer(
    b: TFLiteBuilder, rng: np.random.Generator, i: int, kind: str
) -> tuple[list[int], int]:
    """ADD or SUB of two same-shape inputs."""
    shape = [1, int(rng.integers(1, 6)), int(rng.choice([3, 9, 40])), int(rng.choice([1, 5, 16]))]
    scales = [_f32(10.0 ** rng.uniform(-2.5, -0.5)) for _ in range(3)]
    x1 = b.tensor(f"x{i}", shape, np.int8, scales[0], _zero_point(rng))
    x2 = b.tensor(f"x{i}b", shape, np.int8, scales[1], _zero_point(rng))
    y = b.tensor(f"y{i}", shape, np.int8, scales[2], _zero_point(rng))
    b.op(kind.upper(), [x1, x2], [y], activation=str(rng.choice(ACTIVATIONS)))
    return [x1, x2], y


def _pool_layer(
    b: TFLiteBuilder, rng: np.random.Generator, i: int, kind: str
) -> tuple[list[int], int]:
    """AVERAGE_POOL_2D or MAX_POOL_2D, SAME or VALID, sometimes global."""
    shape = [int(rng.integers(1, 3)), int(rng.integers(2, 8)), int(rng.choice([3, 5, 9])), 0]
    shape[3] = int(rng.choice([1, 7, 16, 40]))
    padding = str(rng.choice(["SAME", "VALID"]))
    if rng.random() < 0.3:
        fh, fw, sh, sw, padding = shape[1], shape[2], 1, 1, "VALID"
    else:
        fh, fw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        sh, sw = int(rng.integers(1, 3)), int(rng.integers(1, 3))
        if padding == "VALID":
            fh, fw = min(fh, shape[1]), min(fw, shape[2])
    oh, ow = _out_size(shape[1], fh, sh, 1, padding), _out_size(shape[2], fw, sw, 1, padding)
    scale, zp = _f32(10.0 ** rng.uniform(-2.5, -0.5)), _zero_point(rng)
    x = b.tensor(f"x{i}", shape, np.int8, scale, zp)
    y = b.tensor(f"y{i}", [shape[0], oh, ow, shape[3]], np.int8, scale, zp)
    name = "AVERAGE_POOL_2D" if kind == "avgpool" else "MAX_POOL_2D"
    b.op(
        name,
        [x],
        [y],
        filter=(fh, fw),
        stride=(sh, sw),
        padding=padding,
        activation=str(rng.choice(ACTIVATIONS)),
    )
    return [x], y


Layer = Callable[[TFLiteBuilder, np.random.Generator, int, str], tuple[list[int], int]]
LAYERS: dict[str, Layer] = {
    "conv": _conv_layer,
    "pointwise": _conv_layer,
    "depthwise": _conv_layer,
    "bigdepthwise": _conv_layer,
    "fc": _fc_layer,
    "add": _add_layer,
    "sub": _add_layer,
    "avgpool": _pool_layer,
    "maxpool": _pool_layer,
}
KERNEL_KINDS = ("conv2d", "depthwise_conv2d", "fully_connected")


def _suite(seed: int, counts: dict[str, int]) -> bytes:
    """A model of independent random layers, `counts[kind]` of each kind."""
    rng = np.random.default_rng(seed)
    b = TFLiteBuilder()
    ins: list[int] = []
    outs: list[int] = []
    i = 0
    for kind, n in counts.items():
        for _ in range(n):
            xs, y = LAYERS[kind](b, rng, i, kind)
            ins += xs
            outs.append(y)
            i += 1
    b.inputs(ins)
    b.outputs(outs)
    return b.finish()


def _run_against_tflm(model: bytes, target: str, family: str, seed: int) -> Compiled:
    from edgekit.runners.emulated_model import EmulatedModel

    graph = read_tflite(model, "<suite>", f"suite{seed}")
    compiled = compile_graph(graph, target)
    for op in compiled.graph.ops:
        # the scalar family's only elementwise kernel is the table ADD/SUB it shares with dsp
        tabled = op.kind in ("add", "sub")
        expected = family if op.kind in KERNEL_KINDS or family == "rvv" or tabled else "portable"
        assert op.attrs["kernel"]["family"] == expected, (op.name, op.attrs["kernel"])
    inputs = random_inputs(compiled.graph, SAMPLES, seed=seed)
    ours = EmulatedModel(compiled).run(inputs).outputs
    result = compare(compiled, ours, run_tflm(model, inputs))
    assert result.ok, result.to_json()
    return compiled


SUITES = {
    # seed: layers per kind; every kind of every variant, several times with different shapes
    11: {"conv": 7, "pointwise": 5, "depthwise": 7, "fc": 6, "add": 2, "sub": 1, "avgpool": 3},
    12: {
        "conv": 7,
        "pointwise": 5,
        "depthwise": 7,
        "fc": 6,
        "add": 1,
        "sub": 2,
        "maxpool": 3,
        "bigdepthwise": 2,
    },
}
VARIANTS = {
    "rv32": ["conv2d", "conv2d_1x1", "depthwise_conv2d", "fully_connected"],
    "rvv": [
        "conv2d",
        "conv2d_1x1",
        "conv2d_rows",
        "depthwise_conv2d",
        "depthwise_conv2d_rows",
        "fully_connected",
        "add_sub",
        "pool2d",
    ],
}


RUNS = [(SCALAR, "rv32", seed) for seed in SUITES] + [(VECTOR, "rvv", seed) for seed in SUITES]
# the same kernels built by clang for the other RISC-V targets (full V with ELEN 64; RV32IMAFC)
RUNS += [("rv32-zfh-v", "rvv", 11), ("rv32imafc-zfh", "rv32", 12)]


@pytest.mark.parametrize(("target", "family", "seed"), RUNS)
def test_random_layers_bit_exact(target: str, family: str, seed: int) -> None:
    _require(target)
    _run_against_tflm(_suite(seed, SUITES[seed]), target, family, seed)


@pytest.mark.parametrize(("target", "family"), [(SCALAR, "rv32"), (VECTOR, "rvv")])
def test_suites_cover_every_variant(target: str, family: str) -> None:
    """Every variant of the family is chosen somewhere in the suites, so all of them are run."""
    used = set()
    wide = set()
    for seed, counts in SUITES.items():
        graph = read_tflite(_suite(seed, counts), "<suite>", "suite")
        ops = compile_graph(graph, target).graph.ops
        used |= {op.attrs["kernel"]["template"] for op in ops}
        wide |= {op.attrs["q"]["rvv_wide"] for op in ops if "rvv_wide" in op.attrs["q"]}
    assert {f"{family}/{v}.c.j2" for v in VARIANTS[family]} <= used
    if family == "rvv":
        assert wide == {True, False}  # int16 and int8 weight storage both run


@pytest.mark.parametrize("target", [SCALAR, VECTOR])
def test_ekir_round_trip_generates_the_same_files(target: str) -> None:
    """A compiled model saved as .ekir (kernel choices and prepared constants included) and
    generated again gives the same sources byte for byte."""
    graph = read_tflite(_suite(11, SUITES[11]), "<suite>", "suite")
    first = compile_graph(graph, target)
    again = compile_graph(serialize.loads(serialize.dumps(first.graph)), target)
    assert again.generated.files == first.generated.files


@pytest.mark.parametrize("target", [SCALAR, VECTOR, "rv32imafc-zfh"])
def test_generated_c_is_warning_free(target: str, tmp_path: Path) -> None:
    """C99 with -pedantic -Wall -Wextra -Werror for the target, on every variant. GCC builds at
    the target's -O2 (some of its warnings need the optimiser); clang's come from its front end,
    so -O0 is enough and much faster."""
    t = _require(target)
    clang = t.compiler.command == "ziglang"
    cc = [sys.executable, "-m", "ziglang", "cc"] if clang else [t.compiler.command]
    for seed, counts in SUITES.items():
        compiled = compile_graph(read_tflite(_suite(seed, counts), "<suite>", "suite"), target)
        src = tmp_path / str(seed)
        src.mkdir()
        for name, text in compiled.generated.files.items():
            (src / name).write_text(text)
        argv = [*cc, *t.compiler.cflags, "-std=c99", "-pedantic", "-Wall", "-Wextra", "-Werror"]
        argv += ["-O0"] if clang else []
        argv += ["-c", str(src / f"{compiled.generated.name}.c"), "-o", str(src / "model.o")]
        proc = subprocess.run(argv, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr


@pytest.mark.mlperf
@pytest.mark.parametrize("target", [SCALAR, VECTOR])
@pytest.mark.parametrize("key", ["ad", "kws", "ic", "vww"])
def test_mlperf_bit_exact(target: str, key: str) -> None:
    from edgekit.runners.emulated_model import EmulatedModel

    _require(target)
    path = mlperf_model(key)
    compiled = compile_file(path, target)
    family = "rvv" if target == VECTOR else "rv32"
    kinds = {op.attrs["kernel"]["family"] for op in compiled.graph.ops if op.kind in KERNEL_KINDS}
    assert kinds == {family}
    inputs = random_inputs(compiled.graph, SAMPLES, seed=5)
    ours = EmulatedModel(compiled).run(inputs).outputs
    result = compare(compiled, ours, run_tflm(path.read_bytes(), inputs))
    assert result.ok, result.to_json()
