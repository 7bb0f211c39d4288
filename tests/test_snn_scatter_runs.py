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
    # (w 7, d 1). Groups j * 3 + d, each padded to one entry at least: empty ones add 0 to out 0.
    w = np.array([[-2, 7], [5, 0]], np.int8)
    d = np.array([[2, 1], [0, 0]], np.uint8)
    got = synapse_groups(w, d, 3, input_major=True)
    assert got["offsets"].tolist() == [0, 1, 2, 3, 4, 5, 6]
    assert got["targets"].tolist() == [1, 0, 0, 0, 0, 0]
    assert got["weights"].tolist() == [5, 0, -2, 0, 7, 0]
    # delay-major (gather), unpaired: group d * 2 + j, empty groups stay empty
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
