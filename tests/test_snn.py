"""Spiking networks with learned delays: semantics, quantisation, three kernels, host and QEMU.

Oracles: hand-worked traces for the integer rules and the DCLS delay convention; a float
reference written here from the model equations (DCLS one-tap kernel as a padded correlation,
BatchNorm, LIF) for the quantised network; the golden model for the generated C, which is
itself checked against the hand traces.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from edgekit.cli import main
from edgekit.ir import serialize
from edgekit.passes.memory import plan_memory
from edgekit.snn import ops
from edgekit.snn.compile import compile_snn
from edgekit.snn.golden import GoldenSnn
from edgekit.snn.host import SnnHostModel
from edgekit.snn.importers import dcls_delays, from_snn_delays
from edgekit.snn.model import FloatLayer, FloatSnn
from edgekit.snn.quantize import quantize
from edgekit.snn.synthetic import SHD_CONFIG, random_state_dict
from edgekit.targets import load_target

KERNELS = ["dense", "gather", "scatter"]


def _random_net(seed: int, sizes: list[int], dmax: int, readout: str = "li") -> FloatSnn:
    rng = np.random.default_rng(seed)
    layers = []
    for k, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        last = k == len(sizes) - 2
        neuron = readout if last else ("lif", "if", "lif")[k % 3]
        d = rng.integers(0, dmax, (n_out, n_in))
        d[0, 0], d[-1, -1] = 0, dmax - 1  # both ends of the delay range
        layers.append(
            FloatLayer(
                weight=rng.uniform(-1, 1, (n_out, n_in)) * np.sqrt(6 / n_in),
                delay=d,
                max_delay=dmax,
                neuron=neuron,
                beta=np.ones(n_out) if neuron == "if" else rng.uniform(0.5, 0.95, n_out),
                gain=rng.uniform(0.5, 2.0, n_out),
                offset=rng.uniform(-0.1, 0.1, n_out),
                v_threshold=np.ones(n_out),
                reset="subtract" if k % 2 else "zero",
            )
        )
    return FloatSnn(sizes[0], layers)


def _tools(target: str) -> None:
    t = load_target(target)
    for cmd in (t.compiler.command, t.emulator.command):
        if cmd and shutil.which(cmd) is None:
            pytest.skip(f"{cmd} is not installed (edgekit doctor says what to install)")


# --- semantics, by hand ------------------------------------------------------------------------


def test_dcls_positions_become_delays() -> None:
    # Dcls1d puts the weight at tap P + D // 2; with D - 1 zeros padded on the left the output
    # at t reads input t + tap - (D - 1): delay = D // 2 - P for odd D
    assert dcls_delays(np.array([-2.0, -1.0, 0.0, 1.0, 2.0]), 5).tolist() == [4, 3, 2, 1, 0]
    assert dcls_delays(np.array([-12.0, 12.0, 0.4, -0.6]), 25).tolist() == [24, 0, 12, 13]


def _two_neuron_net(reset: str) -> FloatSnn:
    layer = FloatLayer(
        weight=np.array([[0.6], [-0.6]]),
        delay=np.array([[2], [2]]),
        max_delay=3,
        neuron="lif",
        beta=np.array([0.5, 0.5]),
        gain=np.ones(2),
        offset=np.zeros(2),
        v_threshold=np.ones(2),
        reset=reset,
    )
    return FloatSnn(1, [layer])


# Worked by hand: s = 0.6 / 127, so w = +-127, theta = ceil(127 / 0.6) = 212, decay multiplier
# 2^29, and v <- floor((v + 1) / 2) + I with I = +-127 while the input, delayed 2, is on.
HAND_V0 = [0, 0, 127, 191, 11, 133, 67, 34, 17, 9]
HAND_V1 = [0, 0, -127, -190, -222, -238, -119, -59, -29, -14]
HAND_SPIKES0 = [0, 0, 0, 0, 1, 0, 0, 0, 0, 0]


def _hand_input() -> np.ndarray:
    return np.array([[1], [1], [1], [1], [0], [0], [0], [0], [0], [0]], dtype=bool)


def test_golden_matches_hand_trace() -> None:
    graph = quantize(_two_neuron_net("subtract"), "hand")
    golden = GoldenSnn(graph)
    v0, v1, spikes = [], [], []
    for t, x in enumerate(_hand_input()):
        tr = golden.run(x[None, :])
        v0.append(int(golden.membranes[0][0]))
        v1.append(int(golden.membranes[0][1]))
        spikes.append(int(tr.output[0, 0]))
        assert not tr.output[0, 1], t
    assert (v0, v1, spikes) == (HAND_V0, HAND_V1, HAND_SPIKES0)


@pytest.mark.parametrize("kernel", KERNELS)
def test_generated_c_matches_hand_trace(kernel: str) -> None:
    model = SnnHostModel(compile_snn(quantize(_two_neuron_net("subtract"), "hand"), kernel=kernel))
    model.reset()
    v0, spikes = [], []
    for x in _hand_input():
        spikes.append(int(model.step(x)[0]))
        v0.append(int(model.membranes()[0][0]))
    assert (v0, spikes) == (HAND_V0, HAND_SPIKES0)
    assert [int(v) for v in model.membranes()[0]] == [HAND_V0[-1], HAND_V1[-1]]


def test_reset_to_zero_by_hand() -> None:
    golden = GoldenSnn(quantize(_two_neuron_net("zero"), "hand0"))
    for x in _hand_input()[:5]:
        golden.run(x[None, :])
    assert int(golden.membranes[0][0]) == 0  # 223 >= 212 at t = 4 resets to 0, not 11


@pytest.mark.parametrize("d", [0, 3, 6])
def test_single_synapse_delay_in_c(d: int) -> None:
    layer = FloatLayer(
        np.array([[2.0]]), np.array([[d]]), 7, "lif", np.zeros(1), np.ones(1), np.zeros(1),
        np.ones(1),
    )  # fmt: skip
    graph = quantize(FloatSnn(1, [layer]), "one")
    x = np.zeros((12, 1), bool)
    x[1] = True
    for kernel in KERNELS:
        model = SnnHostModel(compile_snn(graph, kernel=kernel))
        model.reset()
        out = model.run(x)
        assert np.nonzero(out[:, 0])[0].tolist() == [1 + d], kernel


# --- generated C against the golden model ------------------------------------------------------


NETS = [
    (1, [13, 37, 29, 5], 7, "li"),
    (2, [40, 70, 33, 10], 1, "li"),
    (3, [33, 64, 9], 25, "lif"),
]


def _golden_with_reset(graph: object, x: np.ndarray, half: int) -> np.ndarray:
    golden = GoldenSnn(graph)  # type: ignore[arg-type]
    first = golden.run(x[:half]).output
    golden.reset()
    return np.concatenate([first, golden.run(x[half:]).output])


@pytest.mark.parametrize("kernel", [*KERNELS, "auto"])
@pytest.mark.parametrize("seed,sizes,dmax,readout", NETS)
def test_kernels_bit_exact_on_host(
    kernel: str, seed: int, sizes: list[int], dmax: int, readout: str
) -> None:
    graph = quantize(_random_net(seed, sizes, dmax, readout), f"net{seed}")
    x = np.random.default_rng(seed).random((160, sizes[0])) < 0.2
    expect = _golden_with_reset(graph, x, 90)
    assert expect.any(), "the test network must be active"
    model = SnnHostModel(compile_snn(graph, kernel=kernel))
    model.reset()
    first = model.run(x[:90])
    model.reset()
    np.testing.assert_array_equal(np.concatenate([first, model.run(x[90:])]), expect)


def test_scatter_flat_lists_by_hand_and_in_c() -> None:
    from codegen.families.snn import flat_events, flat_layout

    # 3 outputs, 2 inputs, D = 4: input 0 -> out 2 (w -5, d 3), out 0 (w 7, d 1);
    # input 1 -> out 1 (w 9, d 0). Entries per input sorted by (d, i), weight byte on top; the
    # target is i for d = 0 (the current) and (d - 1) * 3 + i for the D - 1 ring slots.
    w = np.array([[7, 0], [0, 9], [-5, 0]], np.int8)
    d = np.array([[1, 0], [0, 0], [3, 0]], np.uint8)
    got = flat_events(w, d, 4)
    assert got["starts"].tolist() == [0, 2, 3]
    assert (got["events"].view(np.uint32)).tolist() == [0 | 7 << 24, 8 | 0xFB << 24, 1 | 9 << 24]
    # synapses with a delay below k, k = 0..4, per input: [k][j]
    assert got["splits"].reshape(5, 2).tolist() == [[0, 0], [0, 1], [1, 1], [1, 1], [2, 1]]
    assert flat_layout(w, d, 4)
    # a readout-like layer takes the flat lists, a wide one the grouped pairs; both bit-exact
    graph = quantize(_random_net(7, [45, 70, 33, 10], 13), "flat")
    c = compile_snn(graph, kernel="scatter")
    layouts = [sorted(op.attrs["q"]) for op in c.graph.ops if op.kind == ops.SYNAPSE]
    flat = ["events", "splits", "starts"]
    assert layouts == [["lens", "pairs", "starts"], flat, flat]
    x = np.random.default_rng(7).random((200, 45)) < 0.2
    model = SnnHostModel(c)
    model.reset()
    np.testing.assert_array_equal(model.run(x), GoldenSnn(graph).run(x).output)


def test_mixed_kernels_and_hidden_spikes() -> None:
    graph = quantize(_random_net(4, [21, 50, 40, 8], 9), "mixed")
    x = np.random.default_rng(4).random((120, 21)) < 0.25
    golden = GoldenSnn(graph)
    ref = golden.run(x)
    model = SnnHostModel(compile_snn(graph, kernel="scatter,dense,gather"))
    model.reset()
    hidden = model.run_traced(x)
    for got, want in zip(hidden, ref.spikes, strict=True):
        np.testing.assert_array_equal(got, want)
    assert all(s.any() for s in ref.spikes)


@pytest.mark.parametrize("dmax,state", [(31, "hist"), (32, "hist"), (33, "ring")])
def test_gather_history_words_up_to_32_delays(dmax: int, state: str) -> None:
    # one history word per input holds delays 0..31 (31: masked to D bits, 32: the whole word);
    # beyond, gather falls back to the ring of D packed input rows
    graph = quantize(_random_net(dmax, [37, 40, 6], dmax), f"hist{dmax}")
    c = compile_snn(graph, kernel="gather")
    syn = [op for op in c.graph.ops if op.kind == ops.SYNAPSE]
    assert all(set(op.attrs["state"]) == {state} | ({"head"} if state == "ring" else set())
               for op in syn)  # fmt: skip
    x = np.random.default_rng(dmax).random((3 * dmax + 10, 37)) < 0.2
    expect = _golden_with_reset(graph, x, dmax + 5)
    assert expect.any()
    model = SnnHostModel(c)
    model.reset()
    first = model.run(x[: dmax + 5])
    model.reset()
    np.testing.assert_array_equal(np.concatenate([first, model.run(x[dmax + 5 :])]), expect)


def test_step_api_equals_batch_api_and_golden_chunks() -> None:
    graph = quantize(_random_net(5, [30, 40, 6], 11), "api")
    x = np.random.default_rng(5).random((70, 30)) < 0.3
    model = SnnHostModel(compile_snn(graph, kernel="gather"))
    model.reset()
    batch = model.run(x)
    model.reset()
    stepped = np.stack([model.step(row) for row in x])
    np.testing.assert_array_equal(stepped, batch)
    golden = GoldenSnn(graph)
    chunks = np.concatenate([golden.run(x[a:b]).output for a, b in ((0, 1), (1, 33), (33, 70))])
    np.testing.assert_array_equal(chunks, batch)


# long streaming runs and reset: tests/test_snn_quantize.py (10,000 steps, step API)


@pytest.mark.emulated
@pytest.mark.parametrize("target", ["cortex-m4", "rv32imc"])
def test_kernels_bit_exact_under_qemu(target: str) -> None:
    from edgekit.snn.emulated import SnnEmulatedModel

    _tools(target)
    graph = quantize(_random_net(7, [45, 70, 33, 10], 13), "emu")
    x = np.random.default_rng(7).random((4 * 32, 45)) < 0.2
    golden = GoldenSnn(graph)
    expect = np.concatenate(
        [golden.run(x[:64]).output, (golden.reset(), golden.run(x[64:]))[1].output]
    )
    for kernel in KERNELS:
        model = SnnEmulatedModel(compile_snn(graph, target, kernel, harness_steps=32))
        count = target == "cortex-m4" and kernel == "gather"
        res = model.run(x, reset_at={2}, count=count, per_layer=count)
        np.testing.assert_array_equal(res.output, expect, err_msg=f"{target}/{kernel}")
        if count:
            assert res.layer_instructions is not None and len(res.layer_instructions[0]) == 3


# --- SNN-delays checkpoints --------------------------------------------------------------------


def _float_reference(sd: dict[str, np.ndarray], cfg: dict, x: np.ndarray) -> np.ndarray:
    """SNN-delays inference written from its equations: per layer, pad D - 1 zeros on the left
    of time, correlate with the one-tap kernel (tap round(P) + D // 2), BatchNorm, LIF with
    v <- v (1 - 1/tau) + y, spike at v >= 1 and reset to 0; the readout never spikes."""
    dmax = cfg["max_delay"]
    tau = cfg["init_tau"] / cfg["time_step"]
    dcls = [0, 4, 8]
    h = x.astype(np.float64)
    for k, idx in enumerate(dcls):
        w = sd[f"model.{idx}.weight"][:, :, 0].astype(np.float64)
        tap = np.round(sd[f"model.{idx}.P"][0, :, :, 0]).astype(int) + dmax // 2
        n_out, n_in = w.shape
        pad = np.concatenate([np.zeros((dmax - 1, n_in)), h])
        y = np.zeros((h.shape[0], n_out))
        for t in range(h.shape[0]):
            y[t] = (w * pad[t + tap, np.arange(n_in)[None, :]]).sum(axis=1)
        if k < 2:
            bn = f"model.{idx + 1}."
            y = (y - sd[bn + "running_mean"]) / np.sqrt(sd[bn + "running_var"] + 1e-5)
            y = y * sd[bn + "weight"] + sd[bn + "bias"]
        v = np.zeros(n_out)
        out = np.zeros_like(y)
        for t in range(h.shape[0]):
            v = v * (1 - 1 / tau) + y[t]
            if k < 2:
                out[t] = v >= 1.0
                v = np.where(out[t] > 0, 0.0, v)
            else:
                out[t] = v
        h = out
    return h


def _decide(v: np.ndarray) -> int:
    e = np.exp(v - v.max(axis=1, keepdims=True))
    return int(np.argmax((e / e.sum(axis=1, keepdims=True)).sum(axis=0)))


SMALL_CFG = {**SHD_CONFIG, "n_inputs": 40, "n_hidden_neurons": 48, "n_outputs": 6, "max_delay": 9}


def test_float_reference_agrees_with_quantized_network() -> None:
    sd = random_state_dict(SMALL_CFG, seed=11, rate=0.1)
    graph = quantize(from_snn_delays(sd, SMALL_CFG), "small")
    golden = GoldenSnn(graph)
    agree, n = 0, 20
    for s in range(n):
        x = np.random.default_rng(100 + s).random((60, 40)) < 0.1
        ref = _float_reference(sd, SMALL_CFG, x)
        golden.reset()
        q = golden.dequantize(golden.run(x).output)
        agree += _decide(ref) == _decide(q)
    assert agree >= 0.8 * n, f"argmax agrees on {agree}/{n}"


def test_shd_sized_network_from_dcls_state_dict(tmp_path: Path) -> None:
    sd = random_state_dict(SHD_CONFIG, seed=1)
    np.savez(tmp_path / "shd.npz", **sd)
    (tmp_path / "model.json").write_text(json.dumps(SHD_CONFIG))
    out = tmp_path / "shd.ekir"
    argv = ["snn", "convert", str(tmp_path / "shd.npz"), "--config", str(tmp_path / "model.json")]
    assert main([*argv, "-o", str(out), "--samples", "3", "--steps", "40"]) == 0
    graph = serialize.load(out)
    layers = ops.layers(graph)
    assert [(la.n_in, la.n_out, la.max_delay) for la in layers] == [
        (140, 256, 25), (256, 256, 25), (256, 20, 25),
    ]  # fmt: skip
    for la, idx in zip(layers, (0, 4, 8), strict=True):
        expect = 25 // 2 - np.round(sd[f"model.{idx}.P"][0, :, :, 0]).astype(int)
        np.testing.assert_array_equal(la.delays, expect)
    x = np.random.default_rng(1).random((120, 140)) < 0.05
    expect_out = GoldenSnn(graph).run(x).output
    compiled = compile_snn(graph, kernel="auto")
    # event kernels cost a few percent of dense at 5% input
    assert "dense" not in compiled.kernels
    model = SnnHostModel(compiled)
    model.reset()
    np.testing.assert_array_equal(model.run(x), expect_out)


@pytest.mark.emulated
def test_shd_sized_gather_under_qemu() -> None:
    from edgekit.snn.emulated import SnnEmulatedModel

    _tools("cortex-m4")
    graph = quantize(from_snn_delays(random_state_dict(SHD_CONFIG, seed=2), SHD_CONFIG), "shd")
    x = np.random.default_rng(2).random((64, 140)) < 0.05
    c = compile_snn(graph, "cortex-m4", "gather", harness_steps=64)
    np.testing.assert_array_equal(SnnEmulatedModel(c).run(x).output, GoldenSnn(graph).run(x).output)
    assert c.state.state_bytes + c.plan.arena_bytes < 16 * 1024


def test_real_dcls_and_spikingjelly_modules_agree_with_reference() -> None:
    torch = pytest.importorskip("torch")
    dcls = pytest.importorskip("DCLS.construct.modules")
    sj_layer = pytest.importorskip("spikingjelly.activation_based.layer")
    sj_neuron = pytest.importorskip("spikingjelly.activation_based.neuron")
    cfg = {**SMALL_CFG, "init_tau": 30.0}
    sd = random_state_dict(cfg, seed=3, rate=0.2)
    dmax, sizes, tau = cfg["max_delay"], [40, 48, 48, 6], 3.0 + 1e-10
    mods: list = []
    for k in range(3):
        # "v1" interpolates linearly, which is exactly one tap at integer P (gauss leaks a bit)
        mods.append(dcls.Dcls1d(sizes[k], sizes[k + 1], kernel_count=1, dilated_kernel_size=dmax,
                                bias=False, version="v1"))  # fmt: skip
        if k < 2:
            mods.append(sj_layer.BatchNorm1d(sizes[k + 1], step_mode="m"))
        thr = 1.0 if k < 2 else 1e9
        mods.append(
            sj_neuron.LIFNode(
                tau=tau, v_threshold=thr, decay_input=False, step_mode="m", store_v_seq=True
            )
        )
        if k < 2:
            mods.append(sj_layer.Dropout(0.3, step_mode="m"))
    model = torch.nn.Sequential(*mods).double().eval()
    model.load_state_dict({k: torch.as_tensor(sd[f"model.{k}"]) for k in model.state_dict()})
    x = np.random.default_rng(3).random((50, 40)) < 0.2
    with torch.no_grad():
        h = torch.as_tensor(x[:, None, :].astype(np.float64))
        for k in range(3):
            base = 4 * k
            z = torch.nn.functional.pad(h.permute(1, 2, 0), (dmax - 1, 0))
            z = mods[base](z).permute(2, 0, 1)
            if k < 2:
                h = mods[base + 2](mods[base + 1](z.unsqueeze(3)).squeeze(3))
            else:
                mods[base + 1](z)
                v = mods[base + 1].v_seq[:, 0, :].numpy()
    np.testing.assert_allclose(_float_reference(sd, cfg, x), v, atol=1e-5)


# --- NIR -----------------------------------------------------------------------------------------


def test_nir_graph_import(tmp_path: Path) -> None:
    nir = pytest.importorskip("nir")
    rng = np.random.default_rng(8)
    dt = 1e-3
    w1, w2 = rng.uniform(-1, 1, (6, 4)), rng.uniform(-1, 1, (3, 6))
    d_in, d_out = np.array([0, 1, 2, 3]) * dt, np.array([2, 0, 1]) * dt
    tau = np.full(6, 4e-3)
    nodes = {
        "input": nir.Input(input_type={"input": np.array([4])}),
        "delay_in": nir.Delay(d_in),
        "fc1": nir.Affine(weight=w1, bias=np.zeros(6)),
        "lif": nir.LIF(
            tau=tau,
            r=np.full(6, 4.0),
            v_leak=np.zeros(6),
            v_threshold=np.full(6, 0.5),
            v_reset=np.zeros(6),
        ),  # fmt: skip
        "fc2": nir.Linear(weight=w2),
        "delay_out": nir.Delay(d_out),
        "li": nir.LI(tau=np.full(3, 2e-3), r=np.full(3, 2.0), v_leak=np.zeros(3)),
        "output": nir.Output(output_type={"output": np.array([3])}),
    }
    order = list(nodes)
    graph = nir.NIRGraph(nodes=nodes, edges=list(zip(order[:-1], order[1:], strict=True)))
    nir.write(str(tmp_path / "net.nir"), graph)
    out = tmp_path / "net.ekir"
    assert main(["snn", "convert", str(tmp_path / "net.nir"), "--dt", "0.001", "-o", str(out),
                 "--samples", "2", "--steps", "20"]) == 0  # fmt: skip
    g = serialize.load(out)
    layers = ops.layers(g)
    # delay before the weights delays an input, after them an output
    np.testing.assert_array_equal(layers[0].delays, np.tile([0, 1, 2, 3], (6, 1)))
    np.testing.assert_array_equal(layers[1].delays, np.tile([[2], [0], [1]], (1, 6)))
    assert [la.kind for la in layers] == [ops.LIF, ops.LI]
    # Euler at dt: beta = 1 - dt / tau, input gain dt / tau * r (= 1 for the LIF here)
    assert layers[0].decay is not None and int(layers[0].decay[0]) == round(0.75 * 2**30)
    x = rng.random((50, 4)) < 0.4
    model = SnnHostModel(compile_snn(g, kernel="gather"))
    model.reset()
    np.testing.assert_array_equal(model.run(x), GoldenSnn(g).run(x).output)


@pytest.mark.parametrize("target", ["cortex-m4", "rv32imc"])
def test_kernels_make_no_byte_loop_library_calls(target: str, tmp_path: Path) -> None:
    """The MCU C libraries copy and fill byte by byte: a step must not call memcpy/memset for
    currents and int32 accumulator rings (which the compiler would make of plain loops)."""
    import re
    import subprocess

    _tools(target)
    t = load_target(target)
    # 600 inputs: sum |W_ij| of the first layer exceeds int16, so scatter has an int32 ring
    graph = quantize(_random_net(12, [600, 40, 10], 6), "nocall")
    call = re.compile(r"\b(bl|call|tail|jal)\s+(memcpy|memset)\b")
    for kernel in KERNELS:
        c = compile_snn(graph, target, kernel)
        for fname, text in c.generated.files.items():
            (tmp_path / fname).write_text(text)
        asm = tmp_path / f"{kernel}.s"
        cmd = [t.compiler.command, *t.compiler.cflags, "-S", "-o", str(asm)]
        subprocess.run([*cmd, str(tmp_path / "nocall.c")], check=True, capture_output=True)
        fn, calls = "", []
        for line in asm.read_text().splitlines():
            if re.match(r"^[A-Za-z_][A-Za-z0-9_]*:", line):
                fn = line[:-1]
            elif call.search(line) and (fn.startswith("op_") or fn.endswith("_store_output")):
                calls.append(f"{fn}: {line.strip()}")
        assert not calls, f"{kernel}: {calls}"
        if kernel == "scatter":
            assert "int32_t *ring" in (tmp_path / "nocall.c").read_text()


# --- CLI, files, planner -------------------------------------------------------------------------


def test_cli_generate_verify_and_reproducible_ekir(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    graph = quantize(_random_net(9, [20, 30, 4], 5), "cli")
    src = tmp_path / "cli.ekir"
    serialize.save(graph, src)
    build = tmp_path / "build"
    assert (
        main(["snn", "generate", str(src), "--snn-kernel", "scatter,gather", "-o", str(build)]) == 0
    )
    assert (build / "cli.h").is_file() and (build / "harness_model.h").is_file()
    report = json.loads((build / "report.json").read_text())
    assert [la["kernel"] for la in report["layers"]] == ["scatter", "gather"]
    again = compile_snn(serialize.load(build / "model.ekir"), kernel=None)
    for fname, text in again.generated.files.items():
        assert (build / fname).read_text() == text, fname
    assert main(["snn", "verify", str(build / "model.ekir"), "--steps", "128"]) == 0
    assert "bit-exact" in capsys.readouterr().out
    assert main(["snn", "generate", str(src), "--snn-kernel", "bogus", "-o", str(build)]) == 2
    assert main(["snn", "convert", str(src), "-o", str(tmp_path / "x.ekir")]) == 2


def test_int8_planner_leaves_state_out() -> None:
    c = compile_snn(quantize(_random_net(10, [10, 12, 3], 4), "plan"), kernel="scatter")
    state = set(ops.state_names(c.graph))
    assert state and not state & set(plan_memory(c.graph).offsets)
    assert set(c.state.offsets) == state


def test_torch_checkpoint(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    sd = random_state_dict(SMALL_CFG, seed=12)
    torch.save({k: torch.as_tensor(v) for k, v in sd.items()}, tmp_path / "ckpt.pt")
    from edgekit.snn.importers import read_snn_delays

    net = read_snn_delays(tmp_path / "ckpt.pt", SMALL_CFG)
    ref = from_snn_delays(sd, SMALL_CFG)
    for a, b in zip(net.layers, ref.layers, strict=True):
        np.testing.assert_array_equal(a.delay, b.delay)
        np.testing.assert_allclose(a.weight, b.weight)
