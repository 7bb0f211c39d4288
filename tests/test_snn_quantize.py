"""Spiking networks: `edgekit quantize --calib` on spike trains, and long streaming runs.

The calibration oracle is the definition written here: for every candidate weight clipping, the
readout argmax agreement and spike counts of the float network (model.simulate) against the
integer one (golden model) on the calibration trains; the chosen candidate must be the best.
The streaming oracle is the golden model run over the same 10,000 steps in one call.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgekit.cli import main
from edgekit.ir import serialize
from edgekit.snn import calibrate
from edgekit.snn.compile import compile_snn
from edgekit.snn.golden import GoldenSnn
from edgekit.snn.host import SnnHostModel
from edgekit.snn.importers import from_snn_delays
from edgekit.snn.model import FloatLayer, FloatSnn, predict, simulate
from edgekit.snn.quantize import quantize
from edgekit.snn.synthetic import SHD_CONFIG, random_state_dict

CFG = {**SHD_CONFIG, "n_inputs": 40, "n_hidden_neurons": 48, "n_outputs": 6, "max_delay": 9}


def _convert(tmp_path: Path) -> Path:
    sd = random_state_dict(CFG, seed=21, rate=0.1)
    np.savez(tmp_path / "ckpt.npz", **sd)
    (tmp_path / "model.json").write_text(json.dumps(CFG))
    out = tmp_path / "shd.ekir"
    argv = ["convert", str(tmp_path / "ckpt.npz"), "--config", str(tmp_path / "model.json")]
    assert main([*argv, "-o", str(out), "--samples", "2", "--steps", "30"]) == 0
    return out


def _score(net: FloatSnn, graph, trains: list[np.ndarray]) -> tuple[float, float]:
    golden = GoldenSnn(graph)
    agree, f, q = 0, np.zeros(2), np.zeros(2)
    for x in trains:
        ref = simulate(net, x)
        golden.reset()
        tr = golden.run(x)
        agree += predict(ref["readout"]) == predict(golden.dequantize(tr.output))
        f += [s.sum() for s in ref["spikes"]]
        q += [s.sum() for s in tr.spikes]
    return (-agree / len(trains), float(np.sum(np.abs(f - q) / np.maximum(f, 1))))


def test_quantize_with_calibration_spikes_from_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    src = _convert(tmp_path)
    graph = serialize.load(src)
    net = from_snn_delays(random_state_dict(CFG, seed=21, rate=0.1), CFG)
    # the float network rides along in the .ekir, exactly (float32 of the float64 import)
    kept = calibrate.float_of(graph, str(src))
    for a, b in zip(kept.layers, net.layers, strict=True):
        np.testing.assert_array_equal(a.weight, b.weight.astype(np.float32))
        np.testing.assert_array_equal(a.delay, b.delay)
        assert (a.neuron, a.reset, a.strict) == (b.neuron, b.reset, b.strict)

    rng = np.random.default_rng(3)
    trains = (rng.random((6, 50, 40)) < 0.08).astype(np.uint8)
    np.savez(tmp_path / "spikes.npz", spikes=trains)
    out = tmp_path / "shd_q.ekir"
    capsys.readouterr()
    argv = ["quantize", str(src), "--calib", str(tmp_path / "spikes.npz"), "-o", str(out)]
    assert main(argv) == 0
    assert "<- chosen" in capsys.readouterr().out
    q = serialize.load(out)
    report = q.meta["snn"]["calibration"]
    assert report["samples"] == 6 and report["steps"] == 50
    # the chosen clipping is the best candidate by the rule, recomputed here
    float_net = calibrate.float_of(q, str(out))
    scores = {c: _score(float_net, quantize(float_net, "x", clip=c), list(trains.astype(bool)))
              for c in calibrate.CLIPS}  # fmt: skip
    best = min(scores.values())
    assert scores[report["chosen_clip_percentile"]] == best
    assert q.meta["snn"]["weight_clip_percentile"] == report["chosen_clip_percentile"]
    assert q.meta["source_sha256"] == graph.meta["source_sha256"]
    # and the result is an ordinary spiking .ekir: generate + verify bit-exact on the host
    assert main(["generate", str(out), "-o", str(tmp_path / "build")]) == 0
    assert main(["verify", str(out), "--snn-kernel", "scatter", "--steps", "64"]) == 0


def test_quantize_spiking_errors(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    src = _convert(tmp_path)
    np.savez(tmp_path / "bad.npz", spikes=np.zeros((2, 10, 39), np.uint8))
    argv = ["quantize", str(src), "--calib", str(tmp_path / "bad.npz"), "-o", str(tmp_path / "q")]
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "[N, T, 40]" in err and "Traceback" not in err
    assert not (tmp_path / "q").exists()
    # an .ekir without the float network (e.g. written by quantize() directly) says what to do
    bare = tmp_path / "bare.ekir"
    serialize.save(serialize.load(src), bare)
    g = serialize.load(bare)
    g.meta["snn"].pop("float_layers")
    serialize.save(g, bare)
    np.savez(tmp_path / "ok.npz", spikes=np.zeros((2, 10, 40), np.uint8))
    argv = ["quantize", str(bare), "--calib", str(tmp_path / "ok.npz"), "-o", str(tmp_path / "q")]
    assert main(argv) == 2
    assert "convert the checkpoint" in capsys.readouterr().err


def _small_net(seed: int) -> FloatSnn:
    rng = np.random.default_rng(seed)
    sizes, dmax = [24, 32, 5], 7
    layers = []
    for k, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        d = rng.integers(0, dmax, (n_out, n_in))
        d[0, 0], d[-1, -1] = 0, dmax - 1
        neuron = "li" if k else "lif"
        layers.append(
            FloatLayer(
                weight=rng.uniform(-1, 1, (n_out, n_in)) * 0.6, delay=d, max_delay=dmax,
                neuron=neuron, beta=rng.uniform(0.6, 0.95, n_out), gain=np.ones(n_out),
                offset=rng.uniform(-0.05, 0.05, n_out), v_threshold=np.ones(n_out),
            )
        )  # fmt: skip
    return FloatSnn(sizes[0], layers)


def test_streaming_keeps_state_10000_steps_and_resets_clean() -> None:
    """Issue 10 item 6: the per-step API over 10,000 consecutive steps equals the golden model
    run in one go (rings wrap ~1,400 times), and a reset gives a fresh network."""
    graph = quantize(_small_net(4), "stream")
    rng = np.random.default_rng(4)
    x = rng.random((10_000, 24)) < 0.15
    y = rng.random((200, 24)) < 0.15
    golden = GoldenSnn(graph)
    expect = golden.run(x).output
    golden.reset()
    fresh = golden.run(y).output
    assert np.abs(expect).max() > 0 and len(np.unique(expect[-100:])) > 10
    for kernel in ("dense", "gather", "scatter"):
        model = SnnHostModel(compile_snn(graph, kernel=kernel))
        model.reset()
        got = np.stack([model.step(row) for row in x])
        np.testing.assert_array_equal(got, expect, err_msg=kernel)
        model.reset()
        assert not any(model.state_bytes()), kernel
        np.testing.assert_array_equal(model.run(y), fresh, err_msg=kernel)


def test_auto_kernels_within_a_ram_budget(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from edgekit.errors import EdgekitError

    graph = quantize(_small_net(5), "budget")
    fast = compile_snn(graph, kernel="auto", rate=0.3)
    lean = compile_snn(graph, kernel="gather")
    assert "scatter" in fast.kernels and fast.state.state_bytes > lean.state.state_bytes
    # a budget between the two: the planner's real state size must fit it
    budget = lean.state.state_bytes + 8
    fit = compile_snn(graph, kernel="auto", rate=0.3, ram_budget=budget)
    assert fit.state.state_bytes <= budget and fit.kernels != fast.kernels
    x = np.random.default_rng(5).random((80, 24)) < 0.3
    model = SnnHostModel(fit)
    model.reset()
    np.testing.assert_array_equal(model.run(x), GoldenSnn(graph).run(x).output)
    with pytest.raises(EdgekitError, match="over the budget"):
        compile_snn(graph, kernel="auto", ram_budget=lean.state.state_bytes // 2)
    src = tmp_path / "b.ekir"
    serialize.save(graph, src)
    argv = ["generate", str(src), "--ram-budget", "10", "-o", str(tmp_path / "out")]
    assert main(argv) == 2
    assert "budget" in capsys.readouterr().err
