"""Spiking layers on the hls-vitis target: the generated HLS C++, C-simulated on the host with
edgekit's own ap_int.h / hls_stream.h, equals the spiking golden model and the MCU C step for
step, over random networks with random delays (d = 0 and d = D - 1 included), both history
forms (shift register, RAM ring), both I/O styles, resets, and saturating membranes.

The expected outputs come from edgekit.snn.golden.GoldenSnn, the numpy oracle of docs/snn.md,
never from the HLS code.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from codegen.hls.snn import SnnVectors, build_snn_design, render_snn_project
from edgekit.cli import main
from edgekit.errors import EdgekitError
from edgekit.hls.lint import lint_sources
from edgekit.hls.parts import get_part
from edgekit.hls.project import HlsOptions, build_project, plan
from edgekit.hls.reuse import check_fit
from edgekit.hls.snn import estimate_snn, plan_snn
from edgekit.ir import serialize
from edgekit.ir.graph import Graph
from edgekit.runners.hls_csim import SnnCsimModel, run_testbench
from edgekit.snn.golden import GoldenSnn
from edgekit.snn.model import FloatLayer, FloatSnn
from edgekit.snn.quantize import quantize

ZU7EV = "xczu7ev-ffvc1156-2-e"


def random_snn(seed: int, sizes: tuple[int, ...], delays: tuple[int, ...],
               neurons: tuple[str, ...], name: str = "rsnn") -> Graph:
    """A random network: Gaussian weights (some zero), random delays in [0, D - 1] with both
    ends present in every layer, random decays, offsets and thresholds, random resets."""
    rng = np.random.default_rng(seed)
    layers = []
    for k, (n_in, n_out, dmax, neuron) in enumerate(
        zip(sizes[:-1], sizes[1:], delays, neurons, strict=True)
    ):
        w = rng.normal(0.0, 1.0, (n_out, n_in)) * (rng.random((n_out, n_in)) > 0.2)
        d = rng.integers(0, dmax, (n_out, n_in))
        d.reshape(-1)[rng.integers(0, d.size, 3)] = 0
        d.reshape(-1)[rng.integers(0, d.size, 3)] = dmax - 1
        beta = np.ones(n_out) if neuron == "if" else rng.uniform(0.5, 1.0, n_out)
        layers.append(FloatLayer(
            w, d, dmax, neuron, beta, rng.uniform(0.5, 1.5, n_out), rng.normal(0, 0.3, n_out),
            rng.uniform(0.8, 2.0, n_out), reset="subtract" if k % 2 else "zero",
        ))  # fmt: skip
    return quantize(FloatSnn(sizes[0], layers), name)


def trains(n_in: int, steps: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    rate = np.repeat(rng.choice([0.1, 0.3, 0.6], 4), steps // 4 + 1)[:steps]
    x = rng.random((steps, n_in)) < rate[:, None]
    resets = np.zeros(steps, bool)
    resets[[0, steps // 3, steps // 3 + 1, 2 * steps // 3]] = True
    return x, resets


def golden(graph: Graph, x: np.ndarray, resets: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """Expected outputs, and the spike count of every spiking layer (activity check)."""
    g = GoldenSnn(graph)
    outs, counts = [], [0] * len(g.layers)
    cut = [*np.nonzero(resets)[0].tolist(), x.shape[0]]
    for a, b in zip(cut[:-1], cut[1:], strict=True):
        g.reset()
        tr = g.run(x[a:b])
        outs.append(tr.output)
        for k, s in enumerate(tr.spikes):
            counts[k] += int(s.sum())
    return np.concatenate(outs).astype(np.int64), counts


def csim(graph: Graph, reuses: list[int], io: str, x: np.ndarray, resets: np.ndarray,
         testbench: bool = False) -> np.ndarray:
    design = build_snn_design(graph, graph.name, io)
    for layer, r in zip(design.layers, reuses, strict=True):
        layer.set_reuse(r)
    assert [layer.reuse for layer in design.layers] == reuses, "reuse not one of the options"
    want, _ = golden(graph, x, resets)
    vectors = SnnVectors(x, resets, want, 0)
    est = estimate_snn(design, get_part(ZU7EV), 200.0)
    files = render_snn_project(design, ZU7EV, 200.0, vectors, "", est.interval)
    synth = {f: files[f] for f in (f"{graph.name}.h", f"{graph.name}.cpp",
                                   f"{graph.name}_weights.h", "edgekit_hls.h")}
    assert lint_sources(synth) == []
    if testbench:
        tb = run_testbench(files, graph.name)
        assert tb.ok, tb.output
        assert f"{x.shape[0]} of {x.shape[0]} steps bit-exact" in tb.output
    return SnnCsimModel(files, graph.name, design.n_in, design.n_out).run(x, resets)


# (seed, sizes, max delays, neurons, reuse per layer): reuse 1 is the shift register; a
# multiple of D is the RAM ring with reuse / D lane rounds (one, several, uneven last round)
CASES = [
    (1, (9, 13, 4), (4, 3), ("lif", "li"), [1, 1]),
    (2, (9, 13, 4), (4, 3), ("lif", "li"), [4, 6]),
    (3, (7, 11, 6, 3), (5, 1, 7), ("if", "lif", "lif"), [10, 3, 1]),
    (4, (16, 20, 5), (9, 2), ("lif", "li"), [63, 2]),
    (5, (5, 8, 8, 2), (2, 6, 3), ("lif", "if", "li"), [1, 18, 3]),
]


@pytest.mark.parametrize(("seed", "sizes", "delays", "neurons", "reuses"), CASES)
@pytest.mark.parametrize("io", ["parallel", "stream"])
def test_random_networks_bit_exact(seed: int, sizes: tuple[int, ...], delays: tuple[int, ...],
                                   neurons: tuple[str, ...], reuses: list[int], io: str) -> None:
    graph = random_snn(seed, sizes, delays, neurons)
    x, resets = trains(sizes[0], 72, seed)
    want, counts = golden(graph, x, resets)
    n_spiking = sum(n != "li" for n in neurons)
    assert all(c > 0 for c in counts[:n_spiking]), f"a layer never spikes: {counts}"
    got = csim(graph, reuses, io, x, resets, testbench=io == "parallel" and seed < 3)
    bad = np.nonzero(np.any(got != want.reshape(got.shape), axis=1))[0]
    assert bad.size == 0, f"first mismatch at step {bad[0]}"


def test_membranes_saturate_like_the_golden_model() -> None:
    """Biases near the int32 limits drive the readout membranes to INT32_MAX / INT32_MIN in a
    step or two, and an li readout with no leak (decay 2^30) keeps them there. Saturation is
    where a wrapping int32 would differ."""
    rng = np.random.default_rng(9)
    hidden = FloatLayer(rng.normal(0, 1, (6, 5)), rng.integers(0, 3, (6, 5)), 3, "lif",
                        np.full(6, 0.98), np.ones(6), rng.normal(0, 0.5, 6), np.full(6, 1.0))
    readout = FloatLayer(rng.normal(0, 1, (4, 6)), rng.integers(0, 3, (4, 6)), 3, "li",
                         np.ones(4), np.ones(4), np.zeros(4), np.ones(4))
    graph = quantize(FloatSnn(5, [hidden, readout]), "sat")
    bias = graph.tensor("l1/bias").data
    assert bias is not None
    bias[:] = [2_000_000_000, -2_000_000_000, 900_000_000, -900_000_000]
    x, resets = trains(5, 60, 1)
    want, _ = golden(graph, x, resets)
    assert (want == 2**31 - 1).any() and (want == -(2**31)).any()
    for reuses in ([1, 1], [3, 6]):
        got = csim(graph, reuses, "parallel", x, resets)
        assert np.array_equal(got, want.reshape(got.shape)), reuses


def test_matches_the_mcu_c_too(tmp_path: Path) -> None:
    """The project path end to end: build_project on an .ekir, C simulation, MCU C, golden."""
    from edgekit.hls.snn import verify_snn

    graph = random_snn(11, (10, 16, 3), (6, 4), ("lif", "lif"), name="mcu")
    path = tmp_path / "mcu.ekir"
    serialize.save(graph, path)
    for reuse in (1, "auto", 12):
        project = build_project(path, HlsOptions(reuse=reuse, tb_samples=2))
        res = verify_snn(project, trains=4, seed=3)
        assert res["ok"], res
        assert res["nonzero_outputs"] > 0
        for who in ("the spiking golden model", "the edgekit MCU C"):
            assert res["against"][who]["mismatched_steps"] == 0


# --- estimate, reuse and fit -----------------------------------------------------------------


def _shd_like() -> Graph:
    """The SHD network of SNN-delays: 140 -> 256 -> 256 -> 20, delays up to 25 steps."""
    from edgekit.snn.importers import from_snn_delays
    from edgekit.snn.synthetic import SHD_CONFIG, random_state_dict

    return quantize(from_snn_delays(random_state_dict(SHD_CONFIG, seed=0, steps=50), SHD_CONFIG),
                    "shd")


def test_estimate_reuse_and_fit_on_an_shd_network() -> None:
    graph = _shd_like()
    design, est, _, _ = plan_snn(graph, HlsOptions(part=ZU7EV, reuse=1))
    assert design.schedule == "pipeline" and [x.mult for x in est.layers] == ["shift"] * 3
    with pytest.raises(EdgekitError, match=r"does not fit xczu7ev.*needs [\d,]+ LUT") as exc:
        check_fit(est, 1)
    assert "raise --reuse" in str(exc.value)
    design, est, _, _ = plan_snn(graph, HlsOptions(part=ZU7EV, reuse="auto"))
    assert est.fits and est.unit == "time step"
    assert design.schedule == "sequential" and "ring" in {x.mult for x in est.layers}
    # a ring layer takes (lane rounds) x D cycles a step; the total is their sum plus handshakes
    for x, layer in zip(est.layers, design.layers, strict=True):
        assert x.iterations == (1 if layer.reuse == 1 else layer.rounds_lanes * layer.max_delay)
    assert est.interval == est.latency > sum(x.iterations for x in est.layers)
    assert all(x.dsp > 0 for x in est.layers)  # the decay products
    # more reuse: a longer step
    _, slow, _, _ = plan_snn(graph, HlsOptions(part=ZU7EV, reuse=10_000))
    assert slow.latency > est.latency


def test_history_storage_and_the_pipelined_step_interval() -> None:
    """A long delay line goes to block RAM, a short one to LUT RAM; the pipelined top starts a
    step as often as the membrane update (decay product, add, saturate, compare) completes."""
    graph = random_snn(2, (20, 6, 3), (70, 4), ("lif", "if"))
    design = build_snn_design(graph, "mem", "parallel")
    design.layers[0].set_reuse(70)
    design.layers[1].set_reuse(4)
    x, resets = trains(20, 4, 0)
    files = render_snn_project(design, ZU7EV, 200.0, SnnVectors(x, resets, np.zeros((4, 3)), 0))
    cpp = files["mem.cpp"]
    assert "BIND_STORAGE variable=ring type=ram_2p impl=bram" in cpp
    assert "BIND_STORAGE variable=ring type=ram_2p impl=lutram" in cpp
    est = estimate_snn(design, get_part(ZU7EV), 200.0)
    assert est.layers[0].bram18 >= 1 and est.layers[1].bram18 == 0
    graph = random_snn(2, (8, 6, 3), (3, 4), ("lif", "if"))
    slow = plan_snn(graph, HlsOptions(reuse=1, clock="200MHz"))
    fast = plan_snn(graph, HlsOptions(reuse=1, clock="100MHz"))
    assert slow[0].schedule == "pipeline" and slow[1].interval == 2 and fast[1].interval == 1


def test_shift_register_flip_flops_are_checked_against_the_part() -> None:
    """A long delay line over many inputs is cheap in LUTs but not in registers: at reuse 1 it
    fails the fit on flip-flops, and auto reuse moves it to a RAM ring."""
    graph = random_snn(4, (512, 4), (250,), ("lif",))
    _, est, _, _ = plan_snn(graph, HlsOptions(part="xc7a100tcsg324-1", reuse=1))
    assert est.ff == 512 * 250 + 4 * 32 and est.over() == [("FF", est.ff, 126_800)]
    with pytest.raises(EdgekitError, match=r"needs 128,128 FF, part has 126,800") as exc:
        check_fit(est, 1)
    assert "raise --reuse" in str(exc.value)
    design, est, _, _ = plan_snn(graph, HlsOptions(part="xc7a100tcsg324-1", reuse="auto"))
    assert est.fits and design.layers[0].storage == "ring" and est.ff == 4 * 32  # membranes
    assert est.layers[0].bram18 > 0


def test_int8_pipeline_refuses_a_spiking_graph() -> None:
    graph = random_snn(1, (4, 3), (2,), ("lif",))
    with pytest.raises(EdgekitError, match="int8 HLS pipeline"):
        plan(graph, HlsOptions())


# --- command line ---------------------------------------------------------------------------


def test_cli_generate_report_verify_a_spiking_ekir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    graph = random_snn(7, (12, 16, 4), (5, 3), ("lif", "li"), name="snn")
    path = tmp_path / "snn.ekir"
    serialize.save(graph, path)
    out = tmp_path / "hls"
    args = ["generate", str(path), "--target", "hls-vitis", "--part", ZU7EV, "--clock", "200MHz",
            "--reuse", "1"]
    assert main([*args, "-o", str(out)]) == 0
    files = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    assert {"snn.cpp", "snn.h", "snn_weights.h", "snn_tb.cpp", "snn_tb_data.h", "edgekit_hls.h",
            "run_hls.tcl", "csim/Makefile", "csim/snn_csim_api.cpp", "csim/include/ap_int.h",
            "csim/include/hls_stream.h", "model.ekir", "report.json"} <= files
    cpp = (out / "snn.cpp").read_text()
    assert "#pragma HLS PIPELINE II=" in cpp and "static ap_uint<1> hist[5][12];" in cpp
    report = json.loads((out / "report.json").read_text())
    assert report["kind"] == "spiking" and report["estimate"]["fits"]
    assert [x["history"] for x in report["layers"]] == ["shift", "shift"]
    again = tmp_path / "again"
    assert main([*args, "-o", str(again)]) == 0
    for f in files - {".edgekit-output"}:
        assert (out / f).read_bytes() == (again / f).read_bytes(), f
    capsys.readouterr()

    assert main(["hls", "generate", str(path), "--reuse", "15", "--io", "stream",
                 "-o", str(tmp_path / "ring")]) == 0
    assert "static ap_uint<1> ring[5][12];" in (tmp_path / "ring" / "snn.cpp").read_text()
    capsys.readouterr()

    assert main(["report", str(path), "--target", "hls-vitis", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["unit"] == "time step" and len(rep["layers"]) == 2
    assert all({"dsp", "bram18", "lut", "latency", "interval"} <= set(x) for x in rep["layers"])

    assert main(["verify", str(path), "--target", "hls-vitis", "--samples", "3",
                 "--io", "stream"]) == 0
    text = capsys.readouterr().out
    assert "vs the spiking golden model" in text and "vs the edgekit MCU C" in text
    assert "MISMATCH" not in text and "testbench                     passed" in text

    assert main(["hls", "report", str(path), "--reuse", "x"]) == 2
    assert "--reuse must be a whole number" in capsys.readouterr().err
