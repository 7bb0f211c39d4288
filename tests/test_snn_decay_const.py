"""A decay known at build time runs as one rounded high-word multiply (SMMULR on Armv7E-M):
decay(v) = mulhr(v, 4 m) below m = 2^29 and v + mulhr(v, 4 (m - 2^30)) from it. Checked against
the golden model's floor((v m + 2^29) / 2^30) at both branches and their edges (m = 0, 2^29 - 1,
2^29, 2^30), with membranes of both signs up to the int32 limits, on host and under QEMU."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from edgekit.snn.compile import compile_snn
from edgekit.snn.golden import GoldenSnn
from edgekit.snn.host import SnnHostModel
from edgekit.snn.model import FloatLayer, FloatSnn
from edgekit.snn.ops import DECAY_SHIFT
from edgekit.snn.quantize import quantize

# betas whose Q2.30 multipliers sit on and next to the two branches' edges
BETAS = [0.0, (2**29 - 1) / 2**30, 0.5, 0.8, 0.999, 1.0]


def _net(betas: list[float], seed: int) -> FloatSnn:
    rng = np.random.default_rng(seed)
    sizes = [16] + [24] * (len(betas) - 1) + [6]
    layers = []
    for k, beta in enumerate(betas):
        n_in, n_out = sizes[k], sizes[k + 1]
        last = k == len(betas) - 1
        layers.append(
            FloatLayer(
                weight=rng.uniform(-1, 1, (n_out, n_in)), delay=rng.integers(0, 4, (n_out, n_in)),
                max_delay=4, neuron="li" if last else "lif", beta=np.full(n_out, beta),
                gain=np.ones(n_out),
                # the readout integrates a bias of about +-2e7 units: |v| runs up to
                # 2^31 and (beta 0.999 and 1) into saturation
                offset=rng.choice([-1.0, 1.0], n_out) * (1.5e5 if last else 0.05),
                v_threshold=np.full(n_out, 1.5),
            )
        )  # fmt: skip
    return FloatSnn(16, layers)


def _graphs() -> list:
    """Every beta of BETAS in some hidden layer, four readout decays."""
    out = []
    for seed, readout in enumerate([0.999, 1.0, 0.5, 0.0]):
        hidden = BETAS[seed : seed + 3]
        graph = quantize(_net([*hidden, readout], seed), f"decay{seed}")
        out.append(graph)
    return out


def test_decay_edges_are_the_q230_values() -> None:
    ms = [int(round(b * (1 << DECAY_SHIFT))) for b in BETAS]
    assert ms == [0, 2**29 - 1, 2**29, round(0.8 * 2**30), round(0.999 * 2**30), 2**30]


@pytest.mark.parametrize("kernel", ["dense", "scatter"])
def test_constant_decay_on_host(kernel: str) -> None:
    saturated = 0
    for graph in _graphs():
        x = np.random.default_rng(1).random((120, 16)) < 0.3
        expect = GoldenSnn(graph).run(x).output
        assert np.abs(expect).max() > 1 << 24 and (expect < 0).any() and (expect > 0).any()
        model = SnnHostModel(compile_snn(graph, kernel=kernel))
        model.reset()
        np.testing.assert_array_equal(model.run(x), expect, err_msg=graph.name)
        saturated = max(saturated, int(np.abs(expect.astype(np.int64)).max()))
    assert saturated >= (1 << 31) - 1


@pytest.mark.emulated
def test_constant_decay_under_qemu_cortex_m4() -> None:
    from edgekit.snn.emulated import SnnEmulatedModel
    from edgekit.targets import load_target

    t = load_target("cortex-m4")
    for cmd in (t.compiler.command, t.emulator.command):
        if cmd and shutil.which(cmd) is None:
            pytest.skip(f"{cmd} is not installed")
    for graph in _graphs():
        x = np.random.default_rng(2).random((64, 16)) < 0.3
        expect = GoldenSnn(graph).run(x).output
        model = SnnEmulatedModel(compile_snn(graph, "cortex-m4", "scatter", 32))
        np.testing.assert_array_equal(model.run(x).output, expect, err_msg=graph.name)
