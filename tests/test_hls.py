"""FPGA HLS target: generated Vitis HLS C++, C-simulated on the host, equals TFLite Micro and the
MCU C byte for byte; the lint rejects unsynthesizable C++; the estimate rejects what cannot fit.

Every C simulation uses edgekit's own ap_int.h / hls_stream.h (csrc/hls/sim) and a host g++.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from codegen.hls.design import build_design
from edgekit.cli import main
from edgekit.errors import EdgekitError
from edgekit.frontends.tflite_writer import TFLiteBuilder
from edgekit.hls.lint import lint_source, lint_sources
from edgekit.hls.models import build_ids_mlp
from edgekit.hls.parts import get_part, parse_clock
from edgekit.hls.project import HlsOptions, build_project, plan, write_project
from edgekit.hls.reuse import AUTO_UTILIZATION, check_fit
from edgekit.models.dscnn import build_tiny_mlp
from edgekit.pipeline import compile_graph, load_model
from edgekit.reference.tflm import run_tflm
from edgekit.resources import resource_dir
from edgekit.runners.hls_csim import CXX_FLAGS, HlsCsimModel, cxx_compiler, run_testbench
from edgekit.runners.host import HostModel
from edgekit.verify import random_inputs
from tests.conftest import mlperf_model

ZU7EV = "xczu7ev-ffvc1156-2-e"


# --- models ---------------------------------------------------------------------------------


def _f32(x: float) -> float:
    return float(np.float32(x))


def build_zoo(seed: int = 0) -> bytes:
    """Every op kind the HLS target has, in shapes the MLPerf models do not reach: padded,
    strided and dilated convolution, a depthwise multiplier, max and bordered average pooling, a
    residual add (a value with three readers), sub, mul, a standalone RELU6 and requantisation,
    a four-row dense layer, and three outputs, one of them also read by another layer."""
    rng = np.random.default_rng(seed)
    b = TFLiteBuilder("edgekit HLS op zoo")
    x = b.tensor("x", [1, 9, 8, 3], np.int8, 0.05, 3)

    def conv(name: str, src: int, s_src: float, out_shape: list[int], kh: int, kw: int,
             cin: int, cout: int, depthwise: bool = False, **opt: object) -> tuple[int, float]:
        w_scales = (10.0 ** rng.uniform(-2.5, -1.5, cout)).astype(np.float32)
        shape = (1, kh, kw, cout) if depthwise else (cout, kh, kw, cin)
        wt = b.const(f"{name}/w", rng.integers(-127, 128, shape).astype(np.int8), w_scales, 0,
                     quantized_dimension=3 if depthwise else 0)
        bias = b.const(f"{name}/b", rng.normal(0, 2000, cout).astype(np.int32),
                       (s_src * w_scales.astype(np.float64)).astype(np.float32), 0)
        fan_in = kh * kw * (1 if depthwise else cin)
        s_out = _f32(s_src * float(np.median(w_scales)) * np.sqrt(fan_in) * 74)
        y = b.tensor(name, out_shape, np.int8, s_out, int(rng.integers(-20, 20)))
        b.op("DEPTHWISE_CONV_2D" if depthwise else "CONV_2D", [src, wt, bias], [y], **opt)
        return y, s_out

    c1, s1 = conv("c1", x, 0.05, [1, 9, 8, 6], 3, 3, 3, 6, padding="SAME", activation="RELU")
    c2, s2 = conv("c2", c1, s1, [1, 9, 8, 6], 3, 3, 6, 6, padding="SAME", dilation=2)
    d1, s3 = conv("d1", c2, s2, [1, 5, 4, 12], 3, 3, 6, 12, depthwise=True, padding="SAME",
                  stride=2, depth_multiplier=2)
    mp = b.tensor("mp", [1, 4, 3, 12], np.int8, s3, int(b.zero_point(d1)[0]))
    b.op("MAX_POOL_2D", [d1], [mp], filter=2, stride=1, padding="VALID")
    pw, s4 = conv("pw", mp, s3, [1, 4, 3, 12], 1, 1, 12, 12)
    r6 = b.tensor("r6", [1, 4, 3, 12], np.int8, _f32(s4 * 1.5), 0)
    b.op("RELU6", [pw], [r6])
    add = b.tensor("add", [1, 4, 3, 12], np.int8, _f32(max(s3, s4) * 1.7), -5)
    b.op("ADD", [r6, mp], [add], activation="RELU")
    sub = b.tensor("sub", [1, 4, 3, 12], np.int8, _f32(max(s3, s4) * 1.9), 7)
    b.op("SUB", [add, mp], [sub])
    mul = b.tensor("mul", [1, 4, 3, 12], np.int8, _f32(s3 * s4 * 40), 2)
    b.op("MUL", [sub, pw], [mul])
    ap = b.tensor("ap", [1, 2, 2, 12], np.int8, _f32(s3 * s4 * 40), 2)
    b.op("AVERAGE_POOL_2D", [mul], [ap], filter=3, stride=2, padding="SAME")
    rq = b.tensor("rq", [1, 2, 2, 12], np.int8, 0.05, -9)
    b.op("QUANTIZE", [ap], [rq])
    w = b.const("fc/w", rng.integers(-127, 128, (5, 12)).astype(np.int8), 0.01, 0)
    fb = b.const("fc/b", rng.normal(0, 500, 5).astype(np.int32), _f32(0.05 * 0.01), 0)
    fc = b.tensor("fc", [4, 5], np.int8, _f32(0.05 * 0.01 * np.sqrt(12) * 74), 1)
    b.op("FULLY_CONNECTED", [rq, w, fb], [fc])
    sm = b.tensor("sm", [4, 5], np.int8, 1 / 256, -128)
    b.op("SOFTMAX", [fc], [sm], beta=1.0)
    lg = b.tensor("lg", [4, 5], np.int8, 1 / 256, -128)
    b.op("LOGISTIC", [fc], [lg])
    th = b.tensor("th", [4, 5], np.int8, 1 / 128, 0)
    b.op("TANH", [lg], [th])
    b.inputs([x])
    b.outputs([sm, lg, th])
    return b.finish()


def build_batched(seed: int = 0) -> bytes:
    """Two images through the window engines, then a dense layer over whole feature maps
    (rows of 36 from words of 4: a repack) with asymmetric, hence 9-bit, weights."""
    rng = np.random.default_rng(seed)
    b = TFLiteBuilder("edgekit HLS batch")
    x = b.tensor("x", [2, 6, 5, 3], np.int8, 0.04, -7)
    w_scales = (10.0 ** rng.uniform(-2.5, -1.5, 4)).astype(np.float32)
    w = b.const("w", rng.integers(-127, 128, (4, 2, 3, 3)).astype(np.int8), w_scales, 0)
    bias = b.const("b", rng.normal(0, 800, 4).astype(np.int32),
                   (0.04 * w_scales.astype(np.float64)).astype(np.float32), 0)
    c = b.tensor("c", [2, 3, 3, 4], np.int8, 0.3, 4)
    b.op("CONV_2D", [x, w, bias], [c], stride=2, padding="SAME", activation="RELU6")
    m = b.tensor("m", [2, 3, 3, 4], np.int8, 0.3, 4)
    b.op("MAX_POOL_2D", [c], [m], filter=(2, 2), stride=1, padding="SAME")
    fw = b.const("fw", rng.integers(-127, 128, (3, 36)).astype(np.int8), 0.02, 5)
    fc = b.tensor("fc", [2, 3], np.int8, 1.2, -3)
    b.op("FULLY_CONNECTED", [m, fw, -1], [fc], activation="RELU")
    b.inputs([x])
    b.outputs([fc])
    return b.finish()


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hls-models")
    out = {}
    for name, data in (
        ("tiny_mlp", build_tiny_mlp(seed=3)),
        ("ids_mlp", build_ids_mlp(seed=0)),
        ("zoo", build_zoo(seed=0)),
        ("batched", build_batched(seed=0)),
    ):
        out[name] = root / f"{name}.tflite"
        out[name].write_bytes(data)
    return out


# --- bit-exactness --------------------------------------------------------------------------


def _assert_bit_exact(path: Path, options: HlsOptions, samples: int) -> None:
    """C simulation == TFLite Micro == the MCU C on the same random inputs; testbench passes."""
    project = build_project(path, options)
    inputs = random_inputs(project.graph, samples, seed=11)
    ours = HlsCsimModel.from_project(project).run_batch(inputs)
    tflm = run_tflm(path.read_bytes(), inputs)
    mcu = HostModel(compile_graph(project.graph, "host"))
    for n, sample in enumerate(inputs):
        for k, (got, want) in enumerate(zip(ours[n], tflm[n], strict=True)):
            want = np.asarray(want).reshape(got.shape)
            assert np.array_equal(got, want), f"sample {n} output {k}: HLS != TFLM"
        for k, (got, want) in enumerate(zip(ours[n], mcu.run(sample), strict=True)):
            assert np.array_equal(got, want.reshape(got.shape)), f"sample {n} output {k}: HLS != C"
    assert len({o[0].tobytes() for o in ours}) > 1, "outputs do not depend on the input"
    tb = run_testbench(project.files, project.name)
    assert tb.ok, tb.output
    assert f"{options.tb_samples} of {options.tb_samples} samples bit-exact" in tb.output


@pytest.mark.parametrize(("io", "reuse"), [("parallel", 1), ("stream", 100)])
def test_tiny_mlp(models: dict[str, Path], io: str, reuse: int) -> None:
    # reuse 100 exceeds the 16 units: the dot products are split over rounds as well
    _assert_bit_exact(models["tiny_mlp"], HlsOptions(io=io, reuse=reuse), samples=40)


@pytest.mark.parametrize(("io", "reuse"), [("parallel", 1), ("stream", 7)])
def test_ids_mlp(models: dict[str, Path], io: str, reuse: int) -> None:
    _assert_bit_exact(models["ids_mlp"], HlsOptions(io=io, reuse=reuse), samples=40)


@pytest.mark.parametrize(("io", "reuse"), [("parallel", 1), ("stream", 2)])
def test_zoo_every_op_kind(models: dict[str, Path], io: str, reuse: int) -> None:
    _assert_bit_exact(models["zoo"], HlsOptions(io=io, reuse=reuse), samples=20)


def test_batches_repack_and_asymmetric_weights(models: dict[str, Path]) -> None:
    _assert_bit_exact(models["batched"], HlsOptions(io="stream", reuse=3), samples=20)


@pytest.mark.mlperf
def test_mlperf_ad_auto_reuse() -> None:
    _assert_bit_exact(mlperf_model("ad"), HlsOptions(), samples=40)


@pytest.mark.mlperf
@pytest.mark.parametrize("io", ["parallel", "stream"])
def test_mlperf_kws_auto_reuse(io: str) -> None:
    _assert_bit_exact(mlperf_model("kws"), HlsOptions(io=io), samples=10)


# --- the headers --------------------------------------------------------------------------

_HEADER_CHECK = r"""
#include <cstdio>
#include <random>
#include "edgekit_fixedpoint.h"
#include "edgekit_hls.h"

int main()
{
    std::mt19937_64 g(7);
    const int32_t edges[] = {0, 1, -1, 2, -2, INT32_MAX, INT32_MIN, INT32_MIN + 1, 1 << 30,
                             -(1 << 30), 12345678, -87654321};
    long bad = 0;
    for (int it = 0; it < 300000; ++it) {
        int32_t a = it < 144 ? edges[it % 12] : (int32_t)g();
        int32_t b = it < 144 ? edges[it / 12] : (int32_t)g();
        if (it % 3 == 1) a >>= g() % 31;
        const int shift = (int)(g() % 62) - 31;
        const int e = (int)(g() % 31);
        const int32_t m = b == INT32_MIN ? INT32_MAX : (b < 0 ? -b : b);
        bad += ek_srdhm(a, b) != ek_hls::srdhm(a, b);
        bad += ek_rdivpot(a, e) != ek_hls::rdivpot(a, e);
        bad += ek_mbqm(a, m, shift) != ek_hls::mbqm(a, m, shift);
        const int32_t neg = a > 0 ? -a : (a == INT32_MIN ? INT32_MIN + 1 : a);
        const int ib = 1 + (int)(g() % 5);
        bad += ek_exp_negative_q(neg, ib) != ek_hls::exp_negative_q(neg, ib);
        bad += ek_logistic_q(a >> 4, 4) != ek_hls::logistic_q(a >> 4, 4);
        bad += ek_tanh_q(a >> 4, 4) != ek_hls::tanh_q(a >> 4, 4);
        const int32_t sum = (a & 0x7fffffff) | 1;
        int bits = 0;
        const int32_t r1 = ek_reciprocal_q0(sum, 12, &bits);
        const ek_hls::reciprocal_t r2 = ek_hls::reciprocal_q0(sum, 12);
        bad += r1 != r2.value || bits != r2.bits_over_unit;
    }
    std::printf("fixedpoint_mismatches %ld\n", bad);

    ap_int<8> w = 127;
    w += ap_int<8>(1);
    ap_uint<4> u = 15;
    ++u;
    const auto prod = ap_int<8>(-128) * ap_int<8>(-128);
    const auto mixed = ap_int<8>(-3) + ap_uint<8>(200);
    ap_int<19> acc = -5;
    acc += prod;
    std::printf("wrap %d %u\n", w.to_int(), u.to_uint());
    std::printf("product %lld %d\n", prod.to_int64(), prod.length());
    std::printf("mixed %lld %d\n", mixed.to_int64(), mixed.length());
    std::printf("accumulate %d\n", acc.to_int());
    const bool lt = ap_int<8>(-1) < ap_uint<8>(1);
    const bool gt = ap_uint<64>(~0ULL) > ap_int<8>(-1);
    std::printf("compare %d %d\n", (int)lt, (int)gt);
    std::printf("shift %d %d\n", (ap_int<8>(-64) >> 3).to_int(), (ap_int<8>(96) << 1).to_int());

    {
        hls::stream<ek_word<2> > s("s");
        ek_word<2> beat;
        beat.v[0] = 5;
        beat.v[1] = -6;
        s.write(beat);
        const ek_word<2> back = s.read();
        std::printf("stream %d %d %d\n", back.v[0].to_int(), back.v[1].to_int(), (int)s.empty());
        (void)s.read();
        s.write(beat);
    }
    std::printf("stream_errors %d\n", ek_sim_errors());
    return 0;
}
"""


@pytest.fixture(scope="module")
def header_check(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    root = tmp_path_factory.mktemp("hls-headers")
    (root / "check.cpp").write_text(_HEADER_CHECK)
    csrc = resource_dir("csrc")
    cxx, extra = cxx_compiler()
    exe = root / "check"
    subprocess.run(
        [cxx, *CXX_FLAGS, *extra, f"-I{csrc}", f"-I{csrc / 'hls'}", f"-I{csrc / 'hls' / 'sim'}",
         str(root / "check.cpp"), "-o", str(exe)],
        check=True,
    )
    proc = subprocess.run([str(exe)], capture_output=True, text=True, check=True)
    return {line.split()[0]: line.split()[1:] for line in proc.stdout.splitlines()}


def test_hls_fixedpoint_equals_mcu_fixedpoint(header_check: dict[str, list[str]]) -> None:
    assert header_check["fixedpoint_mismatches"] == ["0"]


def test_sim_ap_int_wraps_and_widens(header_check: dict[str, list[str]]) -> None:
    assert header_check["wrap"] == ["-128", "0"]
    assert header_check["product"] == ["16384", "16"]  # 8 x 8 bits -> 16 bits, no overflow
    assert header_check["mixed"] == ["197", "10"]  # signed 8 + unsigned 8 -> signed 10
    assert header_check["accumulate"] == ["16379"]
    assert header_check["compare"] == ["1", "1"]
    assert header_check["shift"] == ["-8", "-64"]  # arithmetic right shift; left shift wraps


def test_sim_stream_counts_design_errors(header_check: dict[str, list[str]]) -> None:
    assert header_check["stream"] == ["5", "-6", "1"]
    # one read from an empty stream, one word left unread when the stream is destroyed
    assert header_check["stream_errors"] == ["2"]


# --- lint -----------------------------------------------------------------------------------

_BAD = {
    "dynamic-memory": "void f(int n) { int *p = (int *)malloc(n); p[0] = 1; }",
    "dynamic-memory ": "void f() { int *p = new int[4]; p[0] = 0; }",
    "dynamic-memory  ": "void f() { std::vector<int> v(3); (void)v; }",
    "recursion": "int f(int n) { return n ? f(n - 1) : 0; }",
    "recursion ": "int g(int n);\nint f(int n) { return g(n); }\nint g(int n) { return f(n); }",
    "pointer-to-pointer": "void f(int **p) { p[0][0] = 1; }",
    "function-pointer": "void f(int (*g)(int)) { g(1); }",
    "unbounded-loop": "void f(int n) { while (n > 0) { n--; } }",
    "unbounded-loop ": "void f() { again: goto again; }",
    "loop-bound": "void f(int n, int *a) { for (int i = 0; i < n; ++i) { a[i] = 0; } }",
    "loop-bound ": "void f(int *a, int s) { for (int i = 0; i < 8; i += s) { a[i] = 0; } }",
    "loop-bound  ": "void f(int *a) { for (int i = 0; i < 8; ++i) { a[i] = 0; i += 2; } }",
    "loop-exit": "void f(int *a) { for (int i = 0; i < 8; ++i) { if (a[i]) break; } }",
    "exceptions": "void f(int a) { if (a) throw 1; }",
}


@pytest.mark.parametrize("rule", sorted(_BAD))
def test_lint_rejects(rule: str) -> None:
    issues = lint_source(_BAD[rule], "bad.cpp")
    assert rule.strip() in {i.rule for i in issues}, [str(i) for i in issues]


def test_lint_accepts_constant_loops_and_ignores_comments() -> None:
    ok = (
        "#define N 8\nconst int M = N * 2;\n"
        "/* while (1) { malloc(4); } */ // int **p;\n"
        'static const char *label = "do not goto";\n'
        "void f(int a[M]) {\n"
        "    for (int i = 0; i < M; ++i) { a[i] = i; }\n"
        "    for (int j = N - 1; j >= 0; j -= 2) { a[j] += 1; }\n"
        "}\n"
    )
    assert lint_source(ok) == []


def test_lint_passes_generated_projects(models: dict[str, Path]) -> None:
    for io in ("parallel", "stream"):
        project = build_project(models["zoo"], HlsOptions(io=io, reuse=3))
        synth = {f: t for f, t in project.files.items() if not f.startswith("csim/")
                 and not f.endswith(("_tb.cpp", "_tb_data.h")) and f.endswith((".h", ".cpp"))}
        assert len(synth) == 4 and lint_sources(synth) == []


# --- estimate and fit -----------------------------------------------------------------------


def test_ids_mlp_reuse1_is_one_pipeline_under_100ns(models: dict[str, Path]) -> None:
    graph, _ = load_model(models["ids_mlp"])
    _, asm, est, _, _ = plan(graph, HlsOptions(part=ZU7EV, clock="200MHz", reuse=1))
    assert asm.schedule == "pipeline" and est.interval == 1
    assert all(x.reuse == 1 for x in est.layers)
    assert est.fits and est.latency_ns < 100
    # the dense products by constant weights moved to LUTs to leave the DSPs room
    assert {x.mult for x in est.layers} <= {"dsp", "fabric"} and est.dsp <= get_part(ZU7EV).dsp


def test_estimate_rejects_a_design_that_cannot_fit(models: dict[str, Path]) -> None:
    graph, _ = load_model(models["ids_mlp"])
    _, _, est, _, _ = plan(graph, HlsOptions(part="xc7z020-clg400-1", reuse=1))
    with pytest.raises(EdgekitError, match=r"needs [\d,]+ LUT, part has 53,200") as exc:
        check_fit(est, 1)
    assert "raise --reuse" in str(exc.value)
    # the same model fits once the multipliers are reused
    _, _, est, _, _ = plan(graph, HlsOptions(part="xc7z020-clg400-1", reuse="auto"))
    assert est.fits


@pytest.mark.mlperf
def test_ad_full_parallelism_needs_more_dsp_than_any_part() -> None:
    graph, _ = load_model(mlperf_model("ad"))
    _, _, est, _, _ = plan(graph, HlsOptions(part="xc7z020-clg400-1", reuse=1))
    with pytest.raises(EdgekitError, match=r"(?s)needs [\d,]+ DSP, part has 220; .*raise --reuse"):
        check_fit(est, 1)
    _, _, est, _, _ = plan(graph, HlsOptions(part=ZU7EV))
    assert all(need <= cap * AUTO_UTILIZATION for need, cap in est.usage().values())
    # auto reuse balances the dataflow pipeline: no layer is much slower than the slowest
    assert est.interval == max(x.interval for x in est.layers)


def test_reuse_factor_rounds_to_what_a_layer_can_use(models: dict[str, Path]) -> None:
    graph, _ = load_model(models["ids_mlp"])
    g, asm, _, _, _ = plan(graph, HlsOptions(reuse=5))
    fc = [s.layer for s in asm.steps]
    # 64 units in rounds of ceil(64 / 5) = 13 need 5 rounds; 2 units cannot be split 5 ways
    assert [(x.reuse, x.ub) for x in fc] == [(5, 13), (5, 7), (4, 1)]
    assert build_design(g, "ids", "parallel").layers[0].reuse_options()[:4] == [1, 2, 3, 4]


def test_parts_and_clocks() -> None:
    assert parse_clock("200MHz") == 200.0
    assert parse_clock("4ns") == 250.0
    assert parse_clock("0.3 GHz") == pytest.approx(300.0)
    assert parse_clock(125) == 125.0
    with pytest.raises(EdgekitError, match="cannot read the clock"):
        parse_clock("fast")
    with pytest.raises(EdgekitError, match="above what xc7z020"):
        parse_clock("500MHz", get_part("xc7z020-clg400-1"))
    with pytest.raises(EdgekitError, match="known parts: .*xcvu9p-flga2104-2-e"):
        get_part("xc9999")


def test_unsupported_ops_are_all_listed() -> None:
    b = TFLiteBuilder()
    x = b.tensor("x", [1, 4, 4, 2], np.int8, 0.1, 0)
    p = b.tensor("p", [1, 6, 6, 2], np.int8, 0.1, 0)
    b.op("PAD", [x], [p], paddings=[[0, 0], [1, 1], [1, 1], [0, 0]])
    m = b.tensor("m", [1, 2], np.int8, 0.1, 0)
    b.op("MEAN", [p], [m], axis=[1, 2])
    b.inputs([x])
    b.outputs([m])
    from edgekit.frontends.tflite import read_tflite

    graph = read_tflite(b.finish(), "<test>", "padmean")
    with pytest.raises(EdgekitError, match=r"(?s)2 part\(s\).*'pad'.*'mean'") as exc:
        plan(graph, HlsOptions())
    assert "docs/hls.md" in str(exc.value)


# --- command line ---------------------------------------------------------------------------


def test_cli_generate_report_verify(
    models: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = models["tiny_mlp"]
    out = tmp_path / "hls"
    args = ["hls", "generate", str(model), "--part", ZU7EV, "--clock", "200MHz", "--reuse", "1"]
    assert main([*args, "-o", str(out)]) == 0
    files = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    assert {
        "tiny_mlp.cpp", "tiny_mlp.h", "tiny_mlp_weights.h", "tiny_mlp_tb.cpp",
        "tiny_mlp_tb_data.h", "edgekit_hls.h", "run_hls.tcl", "csim/Makefile",
        "csim/tiny_mlp_csim_api.cpp", "csim/include/ap_int.h", "csim/include/hls_stream.h",
        "model.ekir", "report.json", ".edgekit-output",
    } <= files
    cpp = (out / "tiny_mlp.cpp").read_text()
    assert "#pragma HLS PIPELINE II=1" in cpp and "#pragma HLS ARRAY_PARTITION" in cpp
    tcl = (out / "run_hls.tcl").read_text()
    assert "set_part {xczu7ev-ffvc1156-2-e}" in tcl and "create_clock -period 5" in tcl
    for step in ("csim_design", "csynth_design", "cosim_design", "export_design"):
        assert step in tcl
    report = json.loads((out / "report.json").read_text())
    assert report["target"] == "hls-vitis" and report["estimate"]["fits"]
    # identical inputs, identical project
    again = tmp_path / "again"
    assert main([*args, "-o", str(again)]) == 0
    for f in files - {".edgekit-output"}:
        assert (out / f).read_bytes() == (again / f).read_bytes(), f
    capsys.readouterr()

    assert main(["hls", "report", str(model), "--reuse", "1", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["interval_cycles"] == 1 and rep["schedule"] == "pipeline"

    assert main(["hls", "verify", str(model), "--samples", "20", "--io", "stream"]) == 0
    text = capsys.readouterr().out
    assert "vs TFLite Micro" in text and "bit-exact" in text and "MISMATCH" not in text

    assert main(["hls", "report", str(model), "--part", "nope"]) == 2
    assert "unknown FPGA part" in capsys.readouterr().err
    assert main(["hls", "generate", str(model), "-o", str(tmp_path / "x"), "--reuse", "0"]) == 2


def test_write_project_refuses_a_foreign_folder(models: dict[str, Path], tmp_path: Path) -> None:
    project = build_project(models["tiny_mlp"], HlsOptions(reuse=1, tb_samples=2))
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(EdgekitError, match="not written by edgekit"):
        write_project(project, foreign)
    assert (foreign / "notes.txt").read_text() == "keep me"
    write_project(project, foreign, force=True)
    assert (foreign / "tiny_mlp.cpp").is_file() and not (foreign / "notes.txt").exists()
