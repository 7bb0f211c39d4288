"""The FP16 contract (docs/numerics-fp16.md): golden model, host C and emulated targets agree.

* the golden model's fused multiply-add is one correct rounding, and the double-precision
  emulation the portable C uses equals it;
* the host build of random single-op layers (every FP16 op, hypothesis-drawn shapes, values
  with zeros of both signs, subnormals, overflow and NaN) equals the golden model bit for bit;
* crafted data where a fused, an unfused, a double-rounded and a reordered accumulation all give
  different bits, so a backend that contracts differently or splits the reduction would fail;
* every FP16 target under QEMU equals the host on the float MLPerf Tiny models (AD, KWS) and on
  a zoo of layers that exercises every kernel variant, tails and padding included.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codegen.kernels import assign_kernels
from edgekit.errors import EdgekitError
from edgekit.ir import serialize
from edgekit.ir.graph import Graph, Op, Tensor
from edgekit.passes.fp16 import to_float
from edgekit.pipeline import Compiled, compile_file, compile_graph
from edgekit.reference import fp16_golden as golden
from edgekit.runners.host import HostModel
from edgekit.targets import load_target
from tests.conftest import MLPERF_DIR

FP16_TARGETS = ["rv32-zfh-v", "rv32imafc-zfh", "cortex-m55", "aarch64-neon-fp16"]
# all four MLPerf Tiny float models: each emulated FP16 target must equal the host on every one
FLOAT_MODELS = {
    "ad": "ad01_fp32.tflite",
    "kws": "kws_ref_model_float32.tflite",
    "vww": "vww_96_float.tflite",
    "ic": "pretrainedResnet.tflite",
}
Draw = Callable[[st.SearchStrategy[Any]], Any]


def _examples(n: int) -> settings:
    return settings(
        max_examples=n,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


def _require(name: str) -> None:
    t = load_target(name)
    for tool in filter(None, [t.compiler.command, t.compiler.linker, t.emulator.command]):
        if tool == "ziglang":
            if importlib.util.find_spec("ziglang") is None:
                pytest.skip(f"the ziglang wheel is not installed (needed for {name})")
        elif not shutil.which(tool):
            pytest.skip(f"{tool} is not installed (needed for {name})")


def _float_model(key: str) -> Path:
    path = MLPERF_DIR / FLOAT_MODELS[key]
    if not path.is_file():
        pytest.skip(f"MLPerf Tiny float model not found at {path} (../shared/models is absent)")
    return path


def _bits(a: np.ndarray) -> np.ndarray:
    return a.view(np.uint16 if a.dtype == np.float16 else np.uint32)


def _assert_same(got: np.ndarray, want: np.ndarray, what: str) -> None:
    got = np.asarray(got).reshape(want.shape)
    bad = np.nonzero(~golden.same_bits(got, want).reshape(-1))[0]
    if bad.size:
        idx = bad[:6].tolist()
        pytest.fail(
            f"{what}: {bad.size} elements differ, first at {idx}: got "
            f"{[hex(v) for v in _bits(got).reshape(-1)[idx]]}, golden "
            f"{[hex(v) for v in _bits(want).reshape(-1)[idx]]}"
        )


# --- one-op float32 graphs ----------------------------------------------------------------------

SPECIALS = np.array(
    [0.0, -0.0, 6e-8, -3e-5, 1e-7, 65000.0, -60000.0, np.inf, -np.inf, np.nan], dtype=np.float32
)


def _values(rng: np.random.Generator, shape: tuple[int, ...], scale: float, special: float):
    """Normal values plus, with probability `special`, zeros of both signs, subnormals,
    values near the binary16 limit, infinities and NaN."""
    v = (rng.standard_normal(shape) * scale).astype(np.float32)
    mask = rng.random(shape) < special
    v[mask] = rng.choice(SPECIALS, size=int(mask.sum()))
    return v


class _Builder:
    """A float32 graph of independent ops, each reading its own graph inputs."""

    def __init__(self, seed: int, special: float) -> None:
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.special = special
        self.tensors: dict[str, Tensor] = {}
        self.ops: list[Op] = []
        self.inputs: list[str] = []
        self.outputs: list[str] = []
        self.fixed: dict[str, np.ndarray] = {}  # inputs with given values (the crafted layer)

    def _t(self, name: str, shape: tuple[int, ...], data: np.ndarray | None = None) -> str:
        self.tensors[name] = Tensor(name, tuple(shape), "float32", None, data)
        return name

    def _in(self, shape: tuple[int, ...]) -> str:
        name = self._t(f"in{len(self.inputs)}", shape)
        self.inputs.append(name)
        return name

    def _op(self, kind: str, ins: list[str], out_shape: tuple[int, ...], attrs: dict) -> None:
        y = self._t(f"out{len(self.ops)}", out_shape)
        self.ops.append(Op(kind, f"op{len(self.ops)}_{kind}", ins, [y], attrs))
        self.outputs.append(y)

    def _const(self, shape: tuple[int, ...], scale: float) -> str:
        data = _values(self.rng, shape, scale, self.special / 4)
        data[~np.isfinite(data)] = 0.5  # weights stay finite; the inputs carry inf and NaN
        return self._t(f"c{len(self.tensors)}", shape, data)

    def conv(self, c: dict[str, Any], depthwise: bool = False) -> None:
        n, h, w, ic = c["input"]
        kh, kw, sh, sw, dh, dw = c["kh"], c["kw"], c["sh"], c["sw"], c["dh"], c["dw"]
        oh, pt = _same_or_valid(h, kh, sh, dh, c["same"])
        ow, pl = _same_or_valid(w, kw, sw, dw, c["same"])
        oc = ic * c["mult"] if depthwise else c["oc"]
        fan_in = kh * kw * (1 if depthwise else ic)
        wshape = (1, kh, kw, oc) if depthwise else (oc, kh, kw, ic)
        ins = [self._in((n, h, w, ic)), self._const(wshape, fan_in**-0.5)]
        if c["bias"]:
            ins.append(self._const((oc,), 0.5))
        attrs: dict[str, Any] = {
            "stride": [sh, sw],
            "dilation": [dh, dw],
            "pad": [pt, pl],
            "activation": c["act"],
        }
        if depthwise:
            attrs["depth_multiplier"] = c["mult"]
        kind = "depthwise_conv2d" if depthwise else "conv2d"
        self._op(kind, ins, (n, oh, ow, oc), attrs)

    def tconv(self, c: dict[str, Any]) -> None:
        """Transpose conv; c["trim"] is the trailing pad [bottom, right] that sets the output."""
        n, h, w, ic = c["input"]
        (kh, kw), (sh, sw), (pt, pl), (pb, pr) = c["k"], c["s"], c["pad"], c["trim"]
        oh, ow = (h - 1) * sh + kh - pt - pb, (w - 1) * sw + kw - pl - pr
        ins = [self._in((n, h, w, ic)), self._const((c["oc"], kh, kw, ic), (kh * kw * ic) ** -0.5)]
        if c["bias"]:
            ins.append(self._const((c["oc"],), 0.5))
        attrs = {"stride": [sh, sw], "pad": [pt, pl], "activation": c["act"]}
        self._op("transpose_conv", ins, (n, oh, ow, c["oc"]), attrs)

    def fc(self, batches: int, depth: int, units: int, act: str) -> None:
        ins = [self._in((batches, depth)), self._const((units, depth), depth**-0.5)]
        ins.append(self._const((units,), 0.5))
        self._op("fully_connected", ins, (batches, units), {"activation": act})

    def pool(self, kind: str, c: dict[str, Any]) -> None:
        n, h, w, ch = c["input"]
        oh, pt = _same_or_valid(h, c["kh"], c["sh"], 1, c["same"])
        ow, pl = _same_or_valid(w, c["kw"], c["sw"], 1, c["same"])
        attrs = {
            "filter": [c["kh"], c["kw"]],
            "stride": [c["sh"], c["sw"]],
            "pad": [pt, pl],
            "activation": c["act"],
        }
        self._op(kind, [self._in((n, h, w, ch))], (n, oh, ow, ch), attrs)

    def elementwise(
        self, kind: str, shape: tuple[int, ...], act: str = "none", alpha: float = 0.1
    ) -> None:
        ins = [self._in(shape)] + ([self._in(shape)] if kind == "add" else [])
        attrs = {"add": {"activation": act}, "leaky_relu": {"alpha": alpha}}.get(kind, {})
        self._op(kind, ins, shape, attrs)

    def softmax(self, rows: int, depth: int, beta: float) -> None:
        self._op("softmax", [self._in((rows, depth))], (rows, depth), {"beta": beta})

    def reshape(self, shape: tuple[int, ...]) -> None:
        size = int(np.prod(shape))
        spec = self._t(f"c{len(self.tensors)}", (1,), np.array([size], dtype=np.int32))
        self.tensors[spec].dtype = "int32"
        self._op("reshape", [self._in(shape), spec], (1, size), {"shape": [1, size]})

    def graph(self, name: str = "zoo") -> Graph:
        g = Graph(
            name, self.tensors, self.ops, self.inputs, self.outputs, {"source_format": "test"}
        )
        g.validate()
        return g

    def inputs_for(self, graph: Graph, samples: int, special: float) -> list[list[np.ndarray]]:
        rng = np.random.default_rng([self.seed, samples])  # the same inputs for every build
        return [
            [
                self.fixed[t].astype(graph.tensor(t).dtype)
                if t in self.fixed
                else _values(rng, graph.tensor(t).shape, 2.0, special).astype(graph.tensor(t).dtype)
                for t in graph.inputs
            ]
            for _ in range(samples)
        ]


def _same_or_valid(size: int, k: int, s: int, d: int, same: bool) -> tuple[int, int]:
    eff = (k - 1) * d + 1
    out = (size + s - 1) // s if same else (size - eff + s) // s
    return out, max(0, (out - 1) * s + eff - size) // 2


ACTS = ["none", "relu", "relu6", "relu_n1_to_1"]


@st.composite
def _conv_case(draw: Draw, depthwise: bool = False) -> dict[str, Any]:
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    sh, sw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    dh, dw = draw(st.sampled_from([1, 1, 2])), draw(st.sampled_from([1, 1, 2]))
    same = draw(st.booleans())
    h = draw(st.integers((kh - 1) * dh + 1, 7))
    w = draw(st.integers((kw - 1) * dw + 1, 7))
    return {
        "input": (draw(st.integers(1, 2)), h, w, draw(st.integers(1, 9))),
        "kh": kh, "kw": kw, "sh": sh, "sw": sw, "dh": dh, "dw": dw, "same": same,
        "oc": draw(st.integers(1, 19)),
        "mult": draw(st.sampled_from([1, 1, 2])) if depthwise else 1,
        "bias": draw(st.booleans()),
        "act": draw(st.sampled_from(ACTS)),
    }  # fmt: skip


@st.composite
def _tconv_case(draw: Draw) -> dict[str, Any]:
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    pt, pl = draw(st.integers(0, kh - 1)), draw(st.integers(0, kw - 1))
    return {
        "input": (draw(st.integers(1, 2)), draw(st.integers(1, 5)), draw(st.integers(1, 5)),
                  draw(st.integers(1, 7))),
        "k": (kh, kw), "s": (draw(st.integers(1, 3)), draw(st.integers(1, 3))),
        "pad": (pt, pl),  # at most k - 1 pixels trimmed in all, so every output is non-empty
        "trim": (draw(st.integers(0, kh - 1 - pt)), draw(st.integers(0, kw - 1 - pl))),
        "oc": draw(st.integers(1, 9)), "bias": draw(st.booleans()),
        "act": draw(st.sampled_from(ACTS)),
    }  # fmt: skip


@st.composite
def _pool_case(draw: Draw) -> dict[str, Any]:
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    return {
        "input": (1, draw(st.integers(kh, 6)), draw(st.integers(kw, 6)), draw(st.integers(1, 9))),
        "kh": kh, "kw": kw, "sh": draw(st.integers(1, 2)), "sw": draw(st.integers(1, 2)),
        "same": draw(st.booleans()), "act": draw(st.sampled_from(ACTS)),
    }  # fmt: skip


@st.composite
def _zoo(draw: Draw) -> _Builder:
    """One graph holding one random layer of every FP16 op."""
    b = _Builder(draw(st.integers(0, 2**31 - 1)), draw(st.sampled_from([0.0, 0.02, 0.1])))
    b.conv(draw(_conv_case()))
    b.conv(draw(_conv_case()) | {"kh": 1, "kw": 1, "dh": 1, "dw": 1})  # pointwise
    b.conv(draw(_conv_case(depthwise=True)), depthwise=True)
    b.tconv(draw(_tconv_case()))
    b.fc(draw(st.integers(1, 3)), draw(st.integers(1, 70)), draw(st.integers(1, 40)),
         draw(st.sampled_from(ACTS)))  # fmt: skip
    b.pool("avg_pool2d", draw(_pool_case()))
    b.pool("max_pool2d", draw(_pool_case()))
    shape = (1, draw(st.integers(1, 5)), draw(st.integers(1, 5)), draw(st.integers(1, 9)))
    b.elementwise("add", shape, draw(st.sampled_from(ACTS)))
    b.elementwise(draw(st.sampled_from(["relu", "relu6"])), shape)
    b.elementwise("leaky_relu", shape, alpha=draw(st.sampled_from([0.01, 0.2, -0.3, 1.7])))
    b.elementwise("hard_swish", shape)
    b.softmax(draw(st.integers(1, 3)), draw(st.integers(1, 20)), draw(st.sampled_from([1.0, 0.5])))
    b.reshape((1, 2, 3, draw(st.integers(1, 4))))
    return b


def _check_host(b: _Builder, precision: str, samples: int = 3) -> Compiled:
    compiled = compile_graph(b.graph(), "host", precision=precision)
    host = HostModel(compiled)
    for sample in b.inputs_for(compiled.graph, samples, b.special):
        want = golden.run_graph(compiled.graph, sample)
        got = host.run(sample)
        for op, g, w in zip(compiled.graph.ops, got, want, strict=True):
            _assert_same(g, w, f"{precision} {op.name} {op.attrs.get('activation', '')}")
    return compiled


# --- the golden model's roundings ---------------------------------------------------------------


def _f16(bits: list[int]) -> np.ndarray:
    return np.array(bits, dtype=np.uint16).view(np.float16)


def test_fma_in_double_is_the_single_rounding_for_binary16() -> None:
    """The portable C path's fma (double, then binary16) equals the round-to-odd golden fma on a
    million random triples over the whole binary16 range, and on crafted midpoint cases."""
    rng = np.random.default_rng(0)
    bits = rng.integers(0, 0x7C00, size=(3, 1_000_000), dtype=np.uint16)
    bits |= (rng.integers(0, 2, size=bits.shape, dtype=np.uint16) << 15).astype(np.uint16)
    a, b, c = (row.view(np.float16) for row in bits)
    # products that land exactly on a binary16 midpoint, nudged by the smallest subnormal
    a[:3] = _f16([0x3E00, 0x3E00, 0x7800])  # 1.5, 1.5, 32768
    b[:3] = _f16([0x3956, 0x3956, 0x3C01])  # 683/1024, 683/1024, 1 + 2^-10
    c[:3] = _f16([0x0001, 0x8001, 0x0001])
    ref = golden.fma(a, b, c, np.float16)
    emu = golden.fma16_via_double(a, b, c)
    finite = np.isfinite(ref)
    assert finite.mean() > 0.5
    np.testing.assert_array_equal(_bits(emu[finite]), _bits(ref[finite]))
    assert list(_bits(ref[:2])) == [0x3C01, 0x3C00]  # ties broken by the tiny addend


def test_fma_is_one_rounding_in_binary32() -> None:
    """Round-to-odd in double makes the binary32 fma exact: check against exact rationals."""
    from fractions import Fraction

    rng = np.random.default_rng(1)
    a, b, c = (rng.standard_normal(2000).astype(np.float32) * s for s in (1.0, 1.0, 1e-3))
    c[:1000] = -(a[:1000].astype(np.float64) * b[:1000]).astype(np.float32)  # cancellation
    got = golden.fma(a, b, c, np.float32)
    for x, y, z, r in zip(a, b, c, got, strict=True):
        exact = Fraction(float(x)) * Fraction(float(y)) + Fraction(float(z))
        lo = np.float32(float(exact))
        # the correct rounding is the nearer of float(exact)'s neighbours in binary32
        cands = [lo, np.nextafter(lo, np.float32(np.inf)), np.nextafter(lo, np.float32(-np.inf))]
        best = min(cands, key=lambda v: (abs(Fraction(float(v)) - exact), int(_bits(v) & 1)))
        assert _bits(np.float32(r)) == _bits(best), (x, y, z)


# --- host build against the golden model -------------------------------------------------------


@_examples(8)
@given(b=_zoo())
def test_host_fp16_ops_equal_golden(b: _Builder) -> None:
    _check_host(b, "fp16")


@_examples(3)
@given(b=_zoo())
def test_host_fp32_ops_equal_golden(b: _Builder) -> None:
    _check_host(b, "fp32")


def test_contract_is_recorded_and_survives_ekir(tmp_path: Path) -> None:
    b = _Builder(3, 0.0)
    b.conv({"input": (1, 5, 5, 3), "kh": 3, "kw": 3, "sh": 1, "sw": 1, "dh": 1, "dw": 1,
            "same": True, "oc": 4, "mult": 1, "bias": True, "act": "relu"})  # fmt: skip
    compiled = compile_graph(b.graph(), "host", precision="fp16")
    op = compiled.graph.ops[0]
    assert op.attrs["fp16"]["products"] == "fused"
    assert op.attrs["fp16"]["accumulator"] == "binary16"
    assert op.attrs["fp16"]["clamp"] == [0.0, None]
    assert compiled.graph.meta["precision"] == "fp16"
    assert {t.dtype for t in compiled.graph.tensors.values()} == {"float16"}
    again = compile_graph(serialize.loads(serialize.dumps(compiled.graph)), "host")
    assert again.generated.files == compiled.generated.files


def test_binary32_activations_on_every_binary16_input() -> None:
    """leaky_relu and hard_swish compute in binary32 and round once to binary16 (one LSB of
    binary32 rarely survives that, so the random zoo cannot tell two binary32 orders apart):
    all 65,536 binary16 inputs, the host build against the golden model, and the golden model
    within one binary16 step of the exact function."""
    b = _Builder(5, 0.0)
    everything = (1, 1 << 16)
    b.elementwise("leaky_relu", everything, alpha=0.01)
    b.elementwise("hard_swish", everything)
    compiled = compile_graph(b.graph(), "host", precision="fp16")
    x = np.arange(1 << 16, dtype=np.uint16).view(np.float16).reshape(everything)
    got = HostModel(compiled).run([x, x])
    want = golden.run_graph(compiled.graph, [x, x])
    for g, w, what in zip(got, want, ("leaky_relu", "hard_swish"), strict=True):
        _assert_same(g, w, f"fp16 {what} over every binary16 input")
    x64 = x.astype(np.float64)
    alpha = float(np.float32(0.01))
    with np.errstate(invalid="ignore"):
        exact = {
            "leaky_relu": np.where(x64 >= 0, x64, x64 * alpha),
            "hard_swish": x64 * np.clip(x64 + 3, 0, 6) / 6,
        }
    for w, (what, e) in zip(want, exact.items(), strict=True):
        finite = np.isfinite(e) & (np.abs(e) < 65504)
        step = np.spacing(np.abs(e[finite]).astype(np.float16)).astype(np.float64)
        err = np.abs(w[finite].astype(np.float64) - e[finite])
        assert np.all(err <= step), (what, int(np.argmax(err / step)))


def test_unsupported_ops_and_int8_models_are_refused() -> None:
    b = _Builder(4, 0.0)
    b.elementwise("add", (1, 4))
    b.ops[0].kind = "mul"
    with pytest.raises(EdgekitError, match="no fp16 kernel for 'mul'"):
        compile_graph(b.graph(), "host", precision="fp16")
    b.ops[0].kind = "add"
    b.tensors["in0"].dtype = "int8"
    with pytest.raises(EdgekitError, match="are not float .* compiles float32 models"):
        compile_graph(b.graph(), "host", precision="fp16")


def test_int8_default_is_unchanged() -> None:
    """An int8 model compiles as before: no float kernels, identical C with precision='int8'."""
    from edgekit.frontends.tflite import read_tflite
    from edgekit.models.dscnn import build_dscnn_kws

    graph = read_tflite(build_dscnn_kws(seed=0), "<demo>", "demo")
    for target in ("host", "cortex-m55"):
        default = compile_graph(graph, target)
        explicit = compile_graph(graph, target, precision="int8")
        assert default.generated.files == explicit.generated.files
        assert all(layer.variant.family != "fp16" for layer in default.generated.layers)


# --- the contract matters ----------------------------------------------------------------------


def _crafted() -> tuple[Graph, list[np.ndarray]]:
    """A dense layer whose outputs tell fused from unfused, single from double rounding, and
    sequential from reordered accumulation.

    row 0, unit 0: bias -(1 + 2^-9), x = w = 1 + 2^-10: fused 2^-20, unfused 0.
    row 0, unit 1: bias 2^-24, x = 1.5, w = 683/1024: x*w is the midpoint 1 + 2^-11; fused rounds
                   up (0x3C01), a float-evaluated x*w + b (x86 _Float16) rounds to even (0x3C00).
    row 1, unit 2: bias 0, x = 1, w = 2048, 1, 1: in order 2048 + 1 = 2048 (tie to even) twice,
                   so 2048; summed as (1 + 1) + 2048 it is 2050.
    """
    d = 3
    x = np.array([1 + 2**-10, 1.5, 1.0], dtype=np.float32)
    w = np.zeros((3, d), dtype=np.float32)
    w[0, 0] = 1 + 2**-10
    w[1, 1] = 683 / 1024
    w[2] = [2048.0, 1.0, 1.0]
    bias = np.array([-(1 + 2**-9), 2**-24, 0.0], dtype=np.float32)
    rows = np.stack([x, np.ones(d, dtype=np.float32)])
    tensors = {
        "x": Tensor("x", (2, d), "float32"),
        "w": Tensor("w", (3, d), "float32", None, w),
        "b": Tensor("b", (3,), "float32", None, bias),
        "y": Tensor("y", (2, 3), "float32"),
    }
    op = Op(
        "fully_connected", "op0_fully_connected", ["x", "w", "b"], ["y"], {"activation": "none"}
    )
    graph = Graph("crafted", tensors, [op], ["x"], ["y"], {"source_format": "test"})
    return graph, [rows.astype(np.float16)]


def _alternatives(rows: np.ndarray, w: np.ndarray, bias: np.ndarray) -> dict[str, np.ndarray]:
    """What backends that break the contract would compute."""
    f16, f32 = np.float16, np.float32
    unfused = np.broadcast_to(bias, (2, 3)).astype(f16)
    double_rounded = unfused.copy()
    for k in range(rows.shape[1]):
        p = (rows[:, k : k + 1].astype(f32) * w[:, k].astype(f32)).astype(f16)
        unfused = (unfused.astype(f32) + p.astype(f32)).astype(f16)
        s = rows[:, k : k + 1].astype(f32) * w[:, k].astype(f32) + double_rounded.astype(f32)
        double_rounded = s.astype(f32).astype(f16)
    # the reduction split and re-associated: (k1 + k2) + bias, then k0
    reordered = golden.fma(rows[:, 1:2], w[:, 1], np.zeros((2, 3), f16), f16)
    reordered = golden.fma(rows[:, 2:3], w[:, 2], reordered, f16)
    reordered = golden.add(reordered, np.broadcast_to(bias, (2, 3)).astype(f16), f16)
    reordered = golden.fma(rows[:, 0:1], w[:, 0], reordered, f16)
    return {"unfused": unfused, "double-rounded": double_rounded, "reordered": reordered}


def _crafted_check(got: np.ndarray, graph: Graph, sample: list[np.ndarray]) -> None:
    want = golden.run_graph(graph, sample)[0]
    _assert_same(got, want, "crafted dense layer")
    assert list(_bits(want[0])[:2]) == [0x0010, 0x3C01]
    assert _bits(want[1])[2] == 0x6800  # 2048
    w = graph.tensor(graph.ops[0].inputs[1]).data
    bias = graph.tensor(graph.ops[0].attrs["q"]["bias"]).data
    assert w is not None and bias is not None
    for name, alt in _alternatives(sample[0], w, bias).items():
        assert not golden.same_bits(alt, want).all(), f"a {name} backend would pass"


def test_contract_matters_on_the_host() -> None:
    graph, sample = _crafted()
    compiled = compile_graph(graph, "host", precision="fp16")
    _crafted_check(HostModel(compiled).run(sample)[0], compiled.graph, sample)


# --- emulated targets ----------------------------------------------------------------------------

ZOO_SEED = 11


def _zoo_fixed(seed: int = ZOO_SEED) -> _Builder:
    """Deterministic layers that reach every vector variant: pointwise in place (strides 1
    and 2), im2col with padding, dilation and channel tails, depthwise whole vectors (taken by
    the vector paths) and with a multiplier (scalar fallback), dense layers with one and several
    rows, channel counts from 3 to 130, and the crafted dense layer of `_crafted` last."""
    b = _Builder(seed, 0.01)

    def conv(inp: tuple[int, ...], k: int, s: int, oc: int, same: bool, act: str, d: int = 1):
        b.conv({"input": inp, "kh": k, "kw": k, "sh": s, "sw": s, "dh": d, "dw": d,
                "same": same, "oc": oc, "mult": 1, "bias": True, "act": act})  # fmt: skip

    conv((1, 6, 5, 16), 1, 1, 72, False, "relu")
    conv((2, 7, 7, 12), 1, 2, 8, False, "none")
    conv((1, 9, 7, 3), 3, 2, 19, True, "relu6")
    conv((1, 6, 6, 5), 3, 1, 64, True, "relu_n1_to_1", d=2)
    conv((1, 10, 4, 1), 4, 2, 33, True, "relu")
    # dilation along the height only, batch 2: the clipped gather's range of filter rows
    b.conv({"input": (2, 7, 5, 4), "kh": 3, "kw": 2, "sh": 1, "sw": 1, "dh": 2, "dw": 1,
            "same": True, "oc": 10, "mult": 1, "bias": True, "act": "none"})  # fmt: skip
    # channels in lanes reading windows from a zero-padded copy: batch 2, dilated rows, stride 2
    b.conv({"input": (2, 6, 5, 3), "kh": 3, "kw": 2, "sh": 1, "sw": 2, "dh": 2, "dw": 1,
            "same": True, "oc": 40, "mult": 1, "bias": True, "act": "relu6"})  # fmt: skip
    # wide output rows, pixels in lanes along each row over a padded band: batch 2 and stride 2;
    # dilated rows with a row longer than one FP16 vector (70 pixels); channel tails in both
    b.conv({"input": (2, 6, 66, 3), "kh": 3, "kw": 3, "sh": 2, "sw": 2, "dh": 1, "dw": 1,
            "same": True, "oc": 8, "mult": 1, "bias": True, "act": "relu"})  # fmt: skip
    b.conv({"input": (1, 7, 70, 2), "kh": 3, "kw": 2, "sh": 1, "sw": 1, "dh": 2, "dw": 1,
            "same": True, "oc": 5, "mult": 1, "bias": True, "act": "none"})  # fmt: skip
    # several output rows per vector (indexed loads from the band): batch 2 with a last pass of
    # fewer rows and an odd channel count; stride 2 with dilated rows
    b.conv({"input": (2, 9, 16, 5), "kh": 3, "kw": 3, "sh": 1, "sw": 1, "dh": 1, "dw": 1,
            "same": True, "oc": 7, "mult": 1, "bias": True, "act": "relu"})  # fmt: skip
    b.conv({"input": (2, 11, 10, 4), "kh": 3, "kw": 2, "sh": 2, "sw": 1, "dh": 2, "dw": 1,
            "same": True, "oc": 5, "mult": 1, "bias": True, "act": "none"})  # fmt: skip
    # im2col gathers: filter rows of more than 128 bytes (in-image rows copied in several
    # vectors, clipped ones at the border), and dilated rows in FP32
    conv((1, 8, 8, 24), 3, 1, 30, True, "relu")
    b.conv({"input": (1, 14, 14, 12), "kh": 3, "kw": 3, "sh": 1, "sw": 1, "dh": 2, "dw": 1,
            "same": True, "oc": 40, "mult": 1, "bias": True, "act": "relu"})  # fmt: skip
    for ch, mult, stride in ((16, 1, 1), (32, 1, 2), (8, 1, 1), (5, 2, 1)):
        b.conv({"input": (1, 7, 6, ch), "kh": 3, "kw": 3, "sh": stride, "sw": stride, "dh": 1,
                "dw": 1, "same": stride == 1, "oc": 0, "mult": mult, "bias": True,
                "act": "relu"}, depthwise=True)  # fmt: skip
    b.fc(1, 70, 130, "relu")
    b.fc(3, 20, 12, "none")
    # x2 upsampling as ONNX exports it (kernel 3, stride 2, one trailing pad), and stride 3
    # with a kernel smaller than the stride: output pixels that no tap reaches keep the bias
    b.tconv({"input": (1, 4, 5, 6), "k": (3, 3), "s": (2, 2), "pad": (0, 0), "trim": (1, 1),
             "oc": 4, "bias": True, "act": "relu"})  # fmt: skip
    b.tconv({"input": (2, 3, 3, 3), "k": (2, 1), "s": (3, 3), "pad": (1, 0), "trim": (0, 0),
             "oc": 5, "bias": False, "act": "none"})  # fmt: skip
    b.pool("avg_pool2d", {"input": (1, 5, 5, 16), "kh": 3, "kw": 3, "sh": 2, "sw": 2,
                          "same": True, "act": "none"})  # fmt: skip
    b.pool("max_pool2d", {"input": (1, 5, 5, 9), "kh": 2, "kw": 2, "sh": 2, "sw": 2,
                          "same": True, "act": "relu"})  # fmt: skip
    b.elementwise("add", (1, 4, 4, 8), "relu")
    b.elementwise("leaky_relu", (1, 4, 4, 9), alpha=0.01)
    b.elementwise("hard_swish", (1, 5, 3, 7))
    b.softmax(2, 10, 1.0)
    crafted, sample = _crafted()
    x, w, bias = (crafted.tensor(n) for n in crafted.ops[0].inputs)
    b._t("crafted_w", w.shape, w.data)
    b._t("crafted_b", bias.shape, bias.data)
    name = b._in(x.shape)
    b.fixed[name] = sample[0]
    b._op("fully_connected", [name, "crafted_w", "crafted_b"], (2, 3), {"activation": "none"})
    return b


class _Firmware:
    """Firmware for the emulated tests, cross-compiled two at a time in the background (the
    builds dominate the run time; QEMU and the host runs are short)."""

    def __init__(self) -> None:
        self.pool = ThreadPoolExecutor(max_workers=2)
        self.jobs: dict[tuple[str, str], Future[Any]] = {}

    def submit(self, key: tuple[str, str], make: Callable[[], Compiled]) -> None:
        from edgekit.runners.emulated_model import EmulatedModel

        def job() -> tuple[Compiled, Any]:
            compiled = make()
            return compiled, EmulatedModel(compiled)

        self.jobs[key] = self.pool.submit(job)

    def get(self, key: tuple[str, str]) -> tuple[Compiled, Any]:
        if key not in self.jobs:
            pytest.skip(f"no firmware for {key}: a tool is missing")
        return self.jobs[key].result()


def _forced_vec() -> Compiled:
    graph = to_float(_zoo_fixed().graph(), "fp16")
    assign_kernels(graph, ["fp16"], {"fp16"})
    return compile_graph(graph, "aarch64-neon-fp16")


def _available(target: str) -> bool:
    try:
        _require(target)
    except pytest.skip.Exception:
        return False
    return True


@pytest.fixture(scope="module")
def firmware() -> Any:
    fw = _Firmware()
    zoo = _zoo_fixed().graph()
    for target in filter(_available, FP16_TARGETS):
        fw.submit((target, "zoo"), lambda t=target: compile_graph(zoo, t, precision="fp16"))
        for key, name in FLOAT_MODELS.items():
            path = MLPERF_DIR / name
            if path.is_file():
                fw.submit(
                    (target, key), lambda t=target, p=path: compile_file(p, t, precision="fp16")
                )
    if _available("rv32-zfh-v"):
        fw.submit(
            ("rv32-zfh-v", "zoo32"), lambda: compile_graph(zoo, "rv32-zfh-v", precision="fp32")
        )
    if _available("aarch64-neon-fp16"):
        fw.submit(("aarch64-neon-fp16", "vec"), _forced_vec)
    yield fw
    fw.pool.shutdown(wait=True, cancel_futures=True)


def _run_against_host(fw: _Firmware, key: tuple[str, str], host: Compiled, inputs: list) -> None:
    """The emulated build and the host build both equal the golden model on every output."""
    compiled, emulated = fw.get(key)
    outputs = emulated.run(inputs).outputs
    host_model = HostModel(host)
    for n, (sample, outs) in enumerate(zip(inputs, outputs, strict=True)):
        want = golden.run_graph(compiled.graph, sample)
        for k, (got, ref, h) in enumerate(zip(outs, want, host_model.run(sample), strict=True)):
            _assert_same(h, ref, f"host, sample {n} output {k}")
            _assert_same(got, ref, f"{key[0]} ({key[1]}), sample {n} output {k}")
    if key[1].startswith("zoo") or key[1] == "vec":
        _crafted_check(outputs[0][-1], to_float(_crafted()[0]), [inputs[0][-1]])


@pytest.mark.emulated
@pytest.mark.parametrize("target", FP16_TARGETS)
def test_targets_equal_host_on_a_zoo_of_layers(target: str, firmware: _Firmware) -> None:
    """Every layer of the zoo, the crafted contract layer included, equals the golden model."""
    compiled, _ = firmware.get((target, "zoo"))
    templates = {layer.variant.template for layer in compiled.generated.layers}
    vector = "rvv_matmul" if target == "rv32-zfh-v" else "matmul128"
    assert any(vector in t for t in templates), templates
    b = _zoo_fixed()
    host = compile_graph(b.graph(), "host", precision="fp16")
    _run_against_host(firmware, (target, "zoo"), host, b.inputs_for(compiled.graph, 2, 0.01))


@pytest.mark.emulated
def test_fp32_build_equals_golden_on_rvv(firmware: _Firmware) -> None:
    """The FP32 comparison build (same kernels, binary32) is bit-exact too."""
    compiled, emulated = firmware.get(("rv32-zfh-v", "zoo32"))
    b = _zoo_fixed()
    host = HostModel(compile_graph(b.graph(), "host", precision="fp32"))
    sample = b.inputs_for(compiled.graph, 1, 0.01)[0]
    want = golden.run_graph(compiled.graph, sample)
    got = emulated.run([sample]).outputs[0]
    for op, g, h, w in zip(compiled.graph.ops, got, host.run(sample), want, strict=True):
        _assert_same(g, w, f"rv32-zfh-v fp32 {op.name}")
        _assert_same(h, w, f"host fp32 {op.name}")


@pytest.mark.emulated
def test_vector_extension_path_with_gcc(firmware: _Firmware) -> None:
    """The generic-vector variant compiled by GCC (no elementwise fma builtin: per-lane
    __builtin_fmaf16), forced onto aarch64 where the NEON variant would otherwise win."""
    compiled, _ = firmware.get(("aarch64-neon-fp16", "vec"))
    layers = compiled.generated.layers
    assert any("matmul128" in layer.variant.template for layer in layers)
    assert all(layer.op.attrs["q"].get("arm_isa", "vec") == "vec" for layer in layers)
    b = _zoo_fixed()
    host = compile_graph(b.graph(), "host", precision="fp16")
    _run_against_host(
        firmware, ("aarch64-neon-fp16", "vec"), host, b.inputs_for(compiled.graph, 1, 0.01)
    )


@pytest.mark.mlperf
@pytest.mark.emulated
@pytest.mark.parametrize("target", FP16_TARGETS)
@pytest.mark.parametrize("key", sorted(FLOAT_MODELS))
def test_float_models_bit_exact_under_qemu(target: str, key: str, firmware: _Firmware) -> None:
    from edgekit.verify import random_inputs

    path = _float_model(key)
    compiled, _ = firmware.get((target, key))
    inputs = random_inputs(compiled.graph, 2, seed=5)
    _run_against_host(firmware, (target, key), compile_file(path, "host", precision="fp16"), inputs)


@pytest.mark.parametrize("target", FP16_TARGETS)
def test_generated_c_is_warning_free(target: str, tmp_path: Path) -> None:
    """C99 -pedantic -Wall -Wextra -Werror with the target's compiler, every variant in use."""
    _require(target)
    t = load_target(target)
    compiled = compile_graph(_zoo_fixed().graph(), target, precision="fp16")
    for name, text in compiled.generated.files.items():
        (tmp_path / name).write_text(text)
    zig = [sys.executable, "-m", "ziglang", "cc"]
    cc = zig if t.compiler.command == "ziglang" else [t.compiler.command]
    argv = [*cc, *t.compiler.cflags, "-std=c99", "-pedantic", "-Wall", "-Wextra", "-Werror", "-c"]
    argv += [str(tmp_path / f"{compiled.generated.name}.c"), "-o", str(tmp_path / "model.o")]
    proc = subprocess.run(argv, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]


# --- the command line ----------------------------------------------------------------------------


@pytest.mark.mlperf
def test_cli_verify_fp16_on_the_host() -> None:
    path = _float_model("ad")
    cmd = [sys.executable, "-m", "edgekit.cli", "verify", str(path), "--precision", "fp16",
           "--samples", "2"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "bit-exact: host == golden model" in proc.stdout


@pytest.mark.mlperf
def test_cli_verify_of_an_fp16_ekir_needs_no_precision_flag(tmp_path: Path) -> None:
    """A lowered fp16 .ekir carries its precision: verify checks it against the golden model
    instead of asking for a .tflite reference for TFLite Micro."""
    ekir = tmp_path / "ad16.ekir"
    cli = [sys.executable, "-m", "edgekit.cli"]
    quant = [*cli, "quantize", str(_float_model("ad")), "--precision", "fp16", "-o", str(ekir)]
    assert subprocess.run(quant, capture_output=True, text=True).returncode == 0
    verify = [*cli, "verify", str(ekir), "--samples", "2"]
    proc = subprocess.run(verify, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "bit-exact: host == golden model" in proc.stdout
