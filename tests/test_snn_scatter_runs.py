"""Scatter's input-major runs: an input's (delay) groups adjacent and never empty, the ring end
tested once per spike. The layout by hand, and the C against the golden model for both the
paired (<= 256 outputs) and the separate targets/weights layouts, empty groups included."""

from __future__ import annotations

import numpy as np

from codegen.families.snn import synapse_groups
from edgekit.snn import ops
from edgekit.snn.compile import compile_snn
from edgekit.snn.golden import GoldenSnn
from edgekit.snn.host import SnnHostModel
from edgekit.snn.model import FloatLayer, FloatSnn
from edgekit.snn.quantize import quantize


def test_input_major_groups_by_hand() -> None:
    # 2 outputs, 2 inputs, D = 3. Input 0: out 1 (w 5, d 0), out 0 (w -2, d 2); input 1: out 0
    # (w 7, d 1). Scatter: groups j * 3 + d, each padded to one entry at least (empty ones add 0
    # to out 0), as a start per input and an entry count per group.
    w = np.array([[-2, 7], [5, 0]], np.int8)
    d = np.array([[2, 1], [0, 0]], np.uint8)
    got = synapse_groups(w, d, 3, lengths=True)
    assert got["starts"].tolist() == [0, 3]
    assert got["lens"].tolist() == [1, 1, 1, 1, 1, 1]
    assert got["targets"].tolist() == [1, 0, 0, 0, 0, 0]
    assert got["weights"].tolist() == [5, 0, -2, 0, 7, 0]
    # gather with history words: the same order, unpadded, offsets of every group
    assert synapse_groups(w, d, 3, input_major=True)["offsets"].tolist() == [0, 1, 1, 2, 2, 3, 3]
    # delay-major (gather beyond 32 delays), unpaired: group d * 2 + j, empty groups stay empty
    assert synapse_groups(w, d, 3)["offsets"].tolist() == [0, 1, 1, 1, 2, 3, 3]


def _net(n_out: int, seed: int) -> FloatSnn:
    rng = np.random.default_rng(seed)
    n_in, dmax = 40, 9
    layers = []
    for k, (a, b) in enumerate(((n_in, n_out), (n_out, 6))):
        d = rng.integers(0, dmax, (b, a))
        d[0, 0], d[-1, -1] = 0, dmax - 1
        # 2 inputs of the first layer reach only delays 0..2: most of their groups are empty
        d[:, :2] = rng.integers(0, 3, (b, 2)) if k == 0 else d[:, :2]
        layers.append(
            FloatLayer(
                weight=rng.uniform(-1, 1, (b, a)) * np.sqrt(6 / a), delay=d, max_delay=dmax,
                neuron="li" if k else "lif", beta=rng.uniform(0.6, 0.95, b),
                gain=rng.uniform(0.5, 2.0, b), offset=rng.uniform(-0.1, 0.1, b),
                v_threshold=np.ones(b),
            )
        )  # fmt: skip
    return FloatSnn(n_in, layers)


def test_scatter_runs_bit_exact_paired_and_wide() -> None:
    for n_out, layout in ((200, "pairs"), (300, "targets")):
        graph = quantize(_net(n_out, n_out), f"runs{n_out}")
        c = compile_snn(graph, kernel="scatter")
        syn = next(op for op in c.graph.ops if op.kind == ops.SYNAPSE)
        assert layout in syn.attrs["q"]
        x = np.random.default_rng(n_out).random((150, 40)) < 0.3
        expect = GoldenSnn(graph).run(x)
        assert expect.spikes[0].any()
        model = SnnHostModel(c)
        model.reset()
        np.testing.assert_array_equal(model.run(x), expect.output)


def _extremes_net(n_in: int, n_out: int, dmax: int, seed: int) -> FloatSnn:
    """One layer whose delays include 0 and D - 1 for every input, so each spike writes both the
    step's current and the ring slot furthest ahead."""
    rng = np.random.default_rng(seed)
    d = rng.integers(0, dmax, (n_out, n_in))
    d[0, :], d[-1, :] = 0, dmax - 1
    layer = FloatLayer(
        weight=rng.uniform(-1, 1, (n_out, n_in)) * np.sqrt(6 / n_in), delay=d, max_delay=dmax,
        neuron="lif", beta=rng.uniform(0.6, 0.95, n_out), gain=rng.uniform(0.5, 2.0, n_out),
        offset=rng.uniform(-0.1, 0.1, n_out), v_threshold=np.full(n_out, 0.5),
    )  # fmt: skip
    return FloatSnn(n_in, [layer])


def test_scatter_ring_holds_d_minus_one_slots() -> None:
    # (n_in, n_out, layout): 2 inputs and 200 outputs give groups of ~100 synapses (pairs), 300
    # outputs separate targets, 40 inputs and 3 outputs groups below four synapses (flat lists)
    cases = [(2, 200, "pairs"), (2, 300, "targets"), (40, 3, "events")]
    for dmax in (1, 2, 5):
        for n_in, n_out, layout in cases:
            graph = quantize(_extremes_net(n_in, n_out, dmax, dmax * n_out), "ring")
            c = compile_snn(graph, kernel="scatter")
            syn = next(op for op in c.graph.ops if op.kind == ops.SYNAPSE)
            assert layout in syn.attrs["q"], (dmax, layout)
            if dmax == 1:
                assert "ring" not in syn.attrs["state"]
            else:
                assert c.graph.tensor(syn.attrs["state"]["ring"]).shape == ((dmax - 1) * n_out,)
            # spikes at every ring head position, a reset in between
            x = np.random.default_rng(dmax).random((12 * dmax + 7, n_in)) < 0.5
            golden = GoldenSnn(graph)
            expect = golden.run(x[:20]).output
            golden.reset()
            expect = np.concatenate([expect, golden.run(x[20:]).output])
            assert expect.any() and not expect.all(), (dmax, layout)
            model = SnnHostModel(c)
            model.reset()
            first = model.run(x[:20])
            model.reset()
            got = np.concatenate([first, model.run(x[20:])])
            np.testing.assert_array_equal(got, expect, err_msg=f"D = {dmax}, {layout}")
