"""NIR round trips: NIR -> edgekit -> NIR -> edgekit keeps the network, and the integer graph.

The oracle for the first import is the hand-derived Euler form checked in
tests/test_snn.py::test_nir_graph_import; here the second import must equal the first, parameter
for parameter, and both must quantise to the same integer tensors.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from edgekit.errors import EdgekitError
from edgekit.snn.golden import GoldenSnn
from edgekit.snn.importers import read_nir
from edgekit.snn.model import FloatLayer, FloatSnn, simulate
from edgekit.snn.nir_export import to_nir
from edgekit.snn.quantize import quantize

nir = pytest.importorskip("nir")
DT = 1e-3


def _nir_file(path: Path, rng: np.random.Generator) -> Path:
    """Delay on the inputs and on the outputs of a LIF layer, an IF layer, an LI readout."""
    w1, w2, w3 = rng.uniform(-1, 1, (6, 4)), rng.uniform(-1, 1, (5, 6)), rng.uniform(-1, 1, (3, 5))
    nodes = {
        "input": nir.Input(input_type={"input": np.array([4])}),
        "d_in": nir.Delay(np.array([0, 1, 2, 3]) * DT),
        "fc1": nir.Affine(weight=w1, bias=rng.uniform(-0.1, 0.1, 6)),
        "d_out": nir.Delay(np.array([2, 0, 1, 0, 3, 1]) * DT),
        "lif": nir.LIF(
            tau=rng.uniform(2e-3, 8e-3, 6),
            r=np.full(6, 3.0),
            v_leak=rng.uniform(-0.05, 0.05, 6),
            v_threshold=np.full(6, 0.5),
            v_reset=np.zeros(6),
        ),  # fmt: skip
        "fc2": nir.Affine(weight=w2, bias=rng.uniform(-0.1, 0.1, 5)),
        "if": nir.IF(r=np.full(5, 400.0), v_threshold=np.full(5, 0.8), v_reset=np.zeros(5)),
        "d3": nir.Delay(np.array([4, 0, 2, 1, 3]) * DT),
        "fc3": nir.Linear(weight=w3),
        "li": nir.LI(tau=np.full(3, 4e-3), r=np.full(3, 2.0), v_leak=np.zeros(3)),
        "output": nir.Output(output_type={"output": np.array([3])}),
    }
    edges = list(zip(list(nodes)[:-1], list(nodes)[1:], strict=True))
    nir.write(str(path), nir.NIRGraph(nodes=nodes, edges=edges))
    return path


def _same_net(a: FloatSnn, b: FloatSnn) -> None:
    assert a.n_inputs == b.n_inputs and len(a.layers) == len(b.layers)
    for la, lb in zip(a.layers, b.layers, strict=True):
        assert (la.neuron, la.reset, la.strict) == (lb.neuron, lb.reset, lb.strict)
        np.testing.assert_array_equal(la.delay, lb.delay)
        for f in ("weight", "beta", "gain", "offset", "v_threshold"):
            np.testing.assert_allclose(getattr(la, f), getattr(lb, f), rtol=1e-12, atol=1e-15)


def test_nir_round_trip_keeps_network_and_integer_graph(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    first = read_nir(_nir_file(tmp_path / "a.nir", rng), DT)
    assert [la.neuron for la in first.layers] == ["lif", "if", "li"]
    nir.write(str(tmp_path / "b.nir"), to_nir(first))
    second = read_nir(tmp_path / "b.nir", DT)
    _same_net(first, second)
    # and once more: a fixed point
    nir.write(str(tmp_path / "c.nir"), to_nir(second))
    _same_net(second, read_nir(tmp_path / "c.nir", DT))

    qa, qb = quantize(first, "a"), quantize(second, "b")
    for name, t in qa.tensors.items():
        if t.data is not None:
            np.testing.assert_array_equal(t.data, qb.tensors[name].data, err_msg=name)
    x = rng.random((60, 4)) < 0.3
    np.testing.assert_array_equal(GoldenSnn(qa).run(x).output, GoldenSnn(qb).run(x).output)
    assert simulate(first, x)["spikes"][0].any()


def _layer(delay: np.ndarray, reset: str = "zero") -> FloatLayer:
    n_out, n_in = delay.shape
    return FloatLayer(np.ones((n_out, n_in)), delay, int(delay.max()) + 1, "lif",
                      np.full(n_out, 0.5), np.ones(n_out), np.zeros(n_out), np.ones(n_out),
                      reset, strict=True)  # fmt: skip


def test_nir_export_refuses_what_nir_cannot_hold() -> None:
    # d_ij = a_j + b_i exports (as two Delay nodes) ...
    a, b = np.array([0, 2, 1]), np.array([1, 0])
    graph = to_nir(FloatSnn(3, [_layer(b[:, None] + a[None, :])], 1.0))
    assert sum(isinstance(n, nir.Delay) for n in graph.nodes.values()) == 2
    # ... a DCLS layer's per-synapse delays do not
    with pytest.raises(EdgekitError, match="per-synapse delays"):
        to_nir(FloatSnn(2, [_layer(np.array([[0, 1], [1, 0]]))], 1.0))
    with pytest.raises(EdgekitError, match="subtraction"):
        to_nir(FloatSnn(2, [_layer(np.zeros((2, 2), int), "subtract")], 1.0))
    loose = _layer(np.zeros((2, 2), int))
    loose.strict = False
    with pytest.raises(EdgekitError, match="v >= threshold"):
        to_nir(FloatSnn(2, [loose], 1.0), strict_ok=False)


@pytest.mark.parametrize(
    "delays, dt",
    [([0.0, 1e-3, 0.256, 0.0], DT), ([0.0, 0.0, 1e300, 0.0], 1e-9)],
    ids=["256", "inf"],
)
def test_nir_delays_beyond_255_steps_are_refused_before_the_int_cast(
    tmp_path: Path, delays: list[float], dt: float
) -> None:
    """1e300 s at dt = 1e-9 s is inf steps, which passed the whole-multiple and sign checks and
    became garbage in astype(int64) (a warning in the fuzz campaign's log)."""
    path = _nir_file(tmp_path / "a.nir", np.random.default_rng(1))
    graph = nir.read(str(path))
    graph.nodes["d_in"] = nir.Delay(np.array(delays))
    nir.write(str(path), graph)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow or invalid-cast warning on the way
        with pytest.raises(EdgekitError, match=r"time steps of .* at most 255 steps"):
            read_nir(path, dt)
