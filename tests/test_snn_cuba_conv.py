"""NIR CubaLIF and Conv1d import: the float network against NIR's equations integrated here by
hand, the integer cuba neuron against a hand trace, and the generated C against the golden model
(host for every kernel, QEMU Cortex-M4 once)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from edgekit.errors import EdgekitError
from edgekit.snn import ops
from edgekit.snn.compile import compile_snn
from edgekit.snn.golden import GoldenSnn
from edgekit.snn.host import SnnHostModel
from edgekit.snn.importers import conv1d_matrix, read_nir
from edgekit.snn.model import FloatLayer, FloatSnn, simulate
from edgekit.snn.nir_export import to_nir
from edgekit.snn.quantize import quantize

nir = pytest.importorskip("nir")
DT = 1e-3
C_IN, L_IN, C_OUT, K = 2, 9, 4, 3


def _nodes(rng: np.random.Generator) -> dict:
    """Input [2 x 9] -> Conv1d (dilation 2, padding 1, stride 2) -> CubaLIF -> Flatten -> Delay
    -> Affine -> CubaLIF -> Linear -> LI."""
    conv_w = rng.uniform(-1, 1, (C_OUT, C_IN, K))
    l_out = (L_IN + 2 * 1 - 2 * (K - 1) - 1) // 2 + 1
    n1 = C_OUT * l_out

    def cuba(n: tuple[int, ...], w_in: float) -> object:
        # NIR shapes a neuron population like its input: [C_out, L_out] after the Conv1d
        return nir.CubaLIF(
            tau_syn=rng.uniform(2e-3, 5e-3, n), tau_mem=rng.uniform(3e-3, 9e-3, n),
            r=np.full(n, 4.0), v_leak=rng.uniform(-0.05, 0.05, n),
            v_threshold=np.full(n, 0.3), v_reset=np.zeros(n), w_in=w_in,
        )  # fmt: skip

    return {
        "input": nir.Input(input_type={"input": np.array([C_IN, L_IN])}),
        "conv": nir.Conv1d(L_IN, conv_w, 2, 1, 2, 1, rng.uniform(-0.1, 0.1, C_OUT)),
        "cuba1": cuba((C_OUT, l_out), 1.5),
        "flat": nir.Flatten(input_type={"input": np.array([C_OUT, l_out])}, start_dim=0),
        "delay": nir.Delay(rng.integers(0, 4, n1) * DT),
        "fc2": nir.Affine(weight=rng.uniform(-1, 1, (7, n1)), bias=rng.uniform(-0.1, 0.1, 7)),
        "cuba2": cuba((7,), 1.0),
        "fc3": nir.Linear(weight=rng.uniform(-1, 1, (3, 7))),
        "li": nir.LI(tau=np.full(3, 4e-3), r=np.full(3, 2.0), v_leak=np.zeros(3)),
        "output": nir.Output(output_type={"output": np.array([3])}),
    }


def _write(path: Path, nodes: dict) -> Path:
    names = list(nodes)
    edges = list(zip(names[:-1], names[1:], strict=True))
    nir.write(str(path), nir.NIRGraph(nodes=nodes, edges=edges))
    return path


def _conv(w: np.ndarray, b: np.ndarray, x: np.ndarray, stride: int, pad: int, dil: int):
    """PyTorch's Conv1d on one [C_in, L] input, as loops."""
    c_out, c_in, k = w.shape
    xp = np.pad(x, ((0, 0), (pad, pad)))
    l_out = (xp.shape[1] - dil * (k - 1) - 1) // stride + 1
    y = np.zeros((c_out, l_out))
    for o in range(c_out):
        for m in range(l_out):
            y[o, m] = b[o] + sum(
                w[o, c, t] * xp[c, m * stride + t * dil] for c in range(c_in) for t in range(k)
            )
    return y.reshape(-1)


def _nir_reference(nodes: dict, x: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """NIR's ODEs with forward Euler at DT, written from the node docstrings: tau_syn I' = -I +
    w_in S, then tau_mem v' = v_leak - v + r I with the new I; spike on v > v_threshold, v = 0."""
    conv, c1, dly, fc2, c2, fc3, li = (
        nodes[k] for k in ("conv", "cuba1", "delay", "fc2", "cuba2", "fc3", "li")
    )
    t_steps = x.shape[0]
    n1 = c1.v_threshold.size
    state = {id(c1): [np.zeros(n1), np.zeros(n1)], id(c2): [np.zeros(7), np.zeros(7)]}

    def cuba_step(node, inp):
        i, v = state[id(node)]
        p = {k: getattr(node, k).reshape(-1) for k in ("tau_syn", "tau_mem", "w_in", "r")}
        leak, thr = node.v_leak.reshape(-1), node.v_threshold.reshape(-1)
        i = i + DT / p["tau_syn"] * (-i + p["w_in"] * inp)
        v = v + DT / p["tau_mem"] * (leak - v + p["r"] * i)
        z = v > thr
        state[id(node)] = [i, np.where(z, 0.0, v)]
        return z

    steps = np.round(dly.delay / DT).astype(int)
    s1 = np.zeros((t_steps, n1), bool)
    s2 = np.zeros((t_steps, 7), bool)
    vo, out = np.zeros(3), np.zeros((t_steps, 3))
    for t in range(t_steps):
        s1[t] = cuba_step(c1, _conv(conv.weight, conv.bias, x[t].reshape(C_IN, L_IN), 2, 1, 2))
        delayed = np.array([s1[t - d, j] if t >= d else 0.0 for j, d in enumerate(steps)])
        s2[t] = cuba_step(c2, fc2.weight @ delayed + fc2.bias)
        vo = vo + DT / li.tau * (li.v_leak - vo + li.r * (fc3.weight @ s2[t]))
        out[t] = vo
    return [s1, s2], out


def test_cubalif_and_conv1d_import_follow_nir_equations(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    nodes = _nodes(rng)
    net = read_nir(_write(tmp_path / "net.nir", nodes), DT)
    assert [la.neuron for la in net.layers] == ["cuba", "cuba", "li"]
    x = rng.random((80, C_IN * L_IN)) < 0.3
    spikes, readout = _nir_reference(nodes, x)
    got = simulate(net, x)
    for a, b in zip(got["spikes"], spikes, strict=True):
        assert b.any() and not b.all()
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(got["readout"], readout, rtol=1e-9, atol=1e-12)


def _cuba_layer(syn_beta: float) -> FloatLayer:
    return FloatLayer(
        np.ones((1, 1)), np.zeros((1, 1), int), 1, "cuba", np.array([0.75]), np.ones(1),
        np.zeros(1), np.array([2.0]), syn_beta=np.array([syn_beta]), syn_offset=np.zeros(1),
    )  # fmt: skip


def test_cuba_integer_semantics_by_hand() -> None:
    # w = 1 -> 127 in the unit 1/127, threshold 2 -> 254, syn decay 0.5, membrane decay 0.75:
    # t0 spike in: j = 127, v = 127; t1 spike in: j = round(63.5) + 127 = 191 (ties up),
    # v = round(95.25) + 191 = 286 >= 254 -> spike, v = 0; t2: j = round(95.5) = 96, v = 96;
    # t3: j = 48, v = 72 + 48 = 120
    graph = quantize(FloatSnn(1, [_cuba_layer(0.5)]), "hand")
    golden = GoldenSnn(graph)
    v, j, z = [], [], []
    for s in (1, 1, 0, 0):
        z.append(bool(golden.run(np.array([[s]])).output[0, 0]))
        v.append(int(golden.membranes[0][0]))
        j.append(int(golden._j[0][0]))
    assert (j, v, z) == ([127, 191, 96, 48], [127, 0, 96, 120], [False, True, False, False])
    model = SnnHostModel(compile_snn(graph, kernel="dense"))
    model.reset()
    x = np.array([[1], [1], [0], [0]], bool)
    np.testing.assert_array_equal(model.run(x)[:, 0], z)


def _random_cuba_net(seed: int) -> FloatSnn:
    rng = np.random.default_rng(seed)
    sizes, dmax, layers = [18, 40, 25, 5], 7, []
    for k, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        last = k == len(sizes) - 2
        d = rng.integers(0, dmax, (n_out, n_in))
        d[0, 0], d[-1, -1] = 0, dmax - 1
        layers.append(
            FloatLayer(
                weight=rng.uniform(-1, 1, (n_out, n_in)) * np.sqrt(6 / n_in), delay=d,
                max_delay=dmax, neuron="li" if last else "cuba",
                beta=rng.uniform(0.5, 0.95, n_out), gain=rng.uniform(0.5, 2.0, n_out),
                offset=rng.uniform(-0.05, 0.05, n_out), v_threshold=np.ones(n_out),
                reset="subtract" if k else "zero",
                # layer 1's current never decays: its bound is infinite, so C saturates
                syn_beta=None if last else (rng.uniform(0.2, 0.8, n_out) if k == 0
                                            else np.ones(n_out)),
                syn_offset=None if last else rng.uniform(-0.02, 0.02, n_out),
            )
        )  # fmt: skip
    return FloatSnn(sizes[0], layers)


@pytest.mark.parametrize("kernel", ["dense", "gather", "scatter", "auto"])
def test_cuba_kernels_bit_exact_on_host(kernel: str) -> None:
    graph = quantize(_random_cuba_net(11), "cuba")
    neurons = [op for op in graph.ops if op.kind == ops.CUBA]
    assert [op.attrs["saturate"] for op in neurons] == [False, True]
    x = np.random.default_rng(11).random((120, 18)) < 0.25
    golden = GoldenSnn(graph)
    expect = golden.run(x)
    assert all(s.any() and not s.all() for s in expect.spikes)
    model = SnnHostModel(compile_snn(graph, kernel=kernel))
    model.reset()
    hidden = model.run_traced(x)
    for got, want in zip(hidden, expect.spikes, strict=True):
        np.testing.assert_array_equal(got, want)
    model.reset()
    np.testing.assert_array_equal(model.run(x), expect.output)


def test_cubalif_nir_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    first = read_nir(_write(tmp_path / "a.nir", _nodes(rng)), DT)
    nir.write(str(tmp_path / "b.nir"), to_nir(first))
    second = read_nir(tmp_path / "b.nir", DT)
    for la, lb in zip(first.layers, second.layers, strict=True):
        assert la.neuron == lb.neuron
        np.testing.assert_array_equal(la.delay, lb.delay)
        for f in ("weight", "beta", "gain", "offset", "v_threshold", "syn_beta", "syn_offset"):
            a, b = getattr(la, f), getattr(lb, f)
            assert (a is None) == (b is None), f
            if a is not None:
                np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15, err_msg=f)


def test_conv1d_refusals() -> None:
    w = np.ones((C_OUT, C_IN, K))
    # nir's own type inference stops a mismatched [C, L] in a graph; a flat input without
    # input_shape reaches the importer, which must name both sizes
    with pytest.raises(EdgekitError, match="2 input channels do not divide its 19 inputs"):
        conv1d_matrix(nir.Conv1d(None, w, 1, 0, 1, 1, np.zeros(C_OUT)), 19, "conv")
    with pytest.raises(EdgekitError, match="'same' needs stride 1"):
        conv1d_matrix(nir.Conv1d(L_IN, w, 2, "same", 1, 1, np.zeros(C_OUT)), 18, "conv")
    with pytest.raises(EdgekitError, match="longer than its padded input"):
        conv1d_matrix(nir.Conv1d(2, w, 1, 0, 1, 1, np.zeros(C_OUT)), 4, "conv")
    # grouped, 'same': output (o, m) reads only its group's channels
    wg = np.arange(1.0, 1 + 4 * 1 * 3).reshape(4, 1, 3)
    dense, bias = conv1d_matrix(nir.Conv1d(5, wg, 1, "same", 1, 2, np.arange(4.0)), 10, "g")
    x = np.random.default_rng(0).random(10)
    want = np.concatenate(
        [_conv(wg[o : o + 1], np.arange(4.0)[o : o + 1], x.reshape(2, 5)[o // 2 : o // 2 + 1],
               1, 1, 1) for o in range(4)]
    )  # fmt: skip
    np.testing.assert_allclose(dense @ x + bias, want, rtol=1e-12)


@pytest.mark.emulated
def test_cuba_under_qemu_cortex_m4() -> None:
    from edgekit.snn.emulated import SnnEmulatedModel
    from edgekit.targets import load_target

    t = load_target("cortex-m4")
    for cmd in (t.compiler.command, t.emulator.command):
        if cmd and shutil.which(cmd) is None:
            pytest.skip(f"{cmd} is not installed")
    graph = quantize(_random_cuba_net(12), "cuba_emu")
    x = np.random.default_rng(12).random((64, 18)) < 0.25
    expect = GoldenSnn(graph).run(x).output
    model = SnnEmulatedModel(compile_snn(graph, "cortex-m4", "scatter,gather,dense", 32))
    np.testing.assert_array_equal(model.run(x).output, expect)


def test_cli_convert_keeps_the_cuba_float_network(tmp_path: Path) -> None:
    from edgekit.cli import main
    from edgekit.ir import serialize
    from edgekit.snn.calibrate import float_of

    rng = np.random.default_rng(4)
    src = _write(tmp_path / "net.nir", _nodes(rng))
    out = tmp_path / "net.ekir"
    assert main(["snn", "convert", str(src), "--dt", str(DT), "-o", str(out),
                 "--samples", "2", "--steps", "20"]) == 0  # fmt: skip
    graph = serialize.load(out)
    assert [op.kind for op in graph.ops][1::2] == [ops.CUBA, ops.CUBA, ops.LI]
    # `edgekit quantize --calib` re-quantises from this float copy: it must keep the current
    kept, net = float_of(graph, str(out)), read_nir(src, DT)
    for a, b in zip(kept.layers, net.layers, strict=True):
        assert a.neuron == b.neuron
        if b.syn_beta is not None:
            np.testing.assert_allclose(a.syn_beta, b.syn_beta, rtol=1e-6)
            np.testing.assert_allclose(a.syn_offset, b.syn_offset, rtol=1e-6, atol=1e-9)
