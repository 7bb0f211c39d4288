"""Which delay kernel per layer: a small instruction-count model fed with expected spike rates.

Input rates of the hidden layers are not known from the file, so they are measured: the golden
model runs on Bernoulli input spikes at the requested rate and every input's firing probability
is counted. The per-operation costs are instructions of the generated C on Cortex-M4 at -O2,
fitted to the counts bench/snn.py measures under QEMU; other cores scale similarly enough for a
choice between kernels whose costs differ by large factors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgekit.ir.graph import Graph
from edgekit.snn import ops
from edgekit.snn.golden import GoldenSnn

# instructions per unit of work (Cortex-M4, -O2), fitted to bench/snn.py's per-layer counts
DENSE_SYNAPSE = 14.0  # one synapse of the dense kernel: delay, ring row, bit test, multiply-add
DENSE_NEURON = 10.0  # per output neuron of the dense kernel
HIST_INPUT = 8.0  # gather, D <= 32: one input's history word shifted, stored and tested
ROW_WORD = 22.0  # gather, D > 32: one 32-bit word of one history row scanned, with the row set-up
GATHER_GROUP = 14.0  # gather: one (spike, delay) group opened, once per step it is in the window
SCATTER_GROUP = 4.0  # scatter: one (spike, delay) group of an input's run, all at the spike
SCATTER_SPIKE = 40.0  # scatter: one input spike's run set up (its d = 0 group, the wrap point)
EVENT_SYNAPSE = 7.0  # one synapse touched by an event (target and weight, load, add, store)
EVENT_PAIRED = 5.8  # the same with two synapses per word (one SXTAB on Armv7E-M), padding included
SLOT_NEURON = 2.5  # scatter: hand on and clear one accumulator of the current slot (four a round)
FLAT_SPIKE = 50.0  # scatter, flat lists (tiny groups): one input spike's list opened
FLAT_EVENT = 7.5  # scatter, flat lists: one synapse (the ring end is split off per spike)
CLEAR_NEURON = 1.25  # gather: zeroing one current before accumulating (four a round)
STEP_FIXED = 40.0  # call, ring head, input words


@dataclass
class LayerChoice:
    kernel: str
    estimates: dict[str, float]  # kernel -> instructions per step
    state_bytes: dict[str, int]  # kernel -> bytes of its delay state
    input_rate: float  # mean firing probability of the layer's inputs


def state_bytes(layer: ops.Layer, kernel: str) -> int:
    """Bytes of a kernel's delay state, as codegen.families.snn declares it (4-byte aligned)."""
    from codegen.families.snn import HISTORY_BITS, scatter_acc_dtype

    if kernel == "scatter":
        if layer.max_delay == 1:
            return 0  # every synapse adds into the step's current: no ring
        width = 2 if scatter_acc_dtype(layer.weights) == "int16" else 4
        ring = (layer.max_delay - 1) * layer.n_out * width
        return (ring + 3) // 4 * 4 + 4
    if kernel == "gather" and layer.max_delay <= HISTORY_BITS:
        return 4 * layer.n_in  # one history word per input
    return layer.max_delay * ops.packed_bytes(layer.n_in) + 4


def input_rates(graph: Graph, rate: float, steps: int = 200, seed: int = 0) -> list[np.ndarray]:
    """Per layer, each input's probability of spiking in a step, under Bernoulli(rate) input."""
    golden = GoldenSnn(graph)
    rng = np.random.default_rng(seed)
    x = rng.random((steps, golden.n_inputs)) < rate
    trace = golden.run(x)
    rates = [x.mean(axis=0)]
    rates += [s.mean(axis=0) for s in trace.spikes[: len(golden.layers) - 1]]
    return rates


def estimate(layer: ops.Layer, rates: np.ndarray) -> dict[str, float]:
    """Instructions per step of each kernel's synapse op, given per-input spike rates."""
    from codegen.families.snn import HISTORY_BITS, flat_layout, paired_layout

    nz = layer.weights != 0
    fanout = nz.sum(axis=0).astype(np.float64)  # non-zero synapses per input
    dmax, words = layer.max_delay, (layer.n_in + 31) // 32
    counts = np.zeros(layer.n_in * dmax, np.int64)
    i_idx, j_idx = np.nonzero(nz)
    np.add.at(counts, layer.delays[i_idx, j_idx].astype(np.int64) * layer.n_in + j_idx, 1)
    per_event = EVENT_PAIRED if layer.n_out <= 256 and paired_layout(counts) else EVENT_SYNAPSE
    spikes = float(rates.sum())
    synapses = float((rates * fanout).sum())
    events = synapses * per_event
    if flat_layout(layer.weights, layer.delays, dmax):
        scatter_events = spikes * FLAT_SPIKE + synapses * FLAT_EVENT
    else:
        scatter_events = spikes * (SCATTER_SPIKE + dmax * SCATTER_GROUP) + events
    history = layer.n_in * HIST_INPUT if dmax <= HISTORY_BITS else dmax * words * ROW_WORD
    return {
        "dense": STEP_FIXED + layer.n_out * (DENSE_NEURON + layer.n_in * DENSE_SYNAPSE),
        "gather": STEP_FIXED
        + layer.n_out * CLEAR_NEURON
        + history
        + spikes * dmax * GATHER_GROUP
        + events,
        "scatter": STEP_FIXED + layer.n_out * SLOT_NEURON + words * ROW_WORD + scatter_events,
    }


def choose(
    graph: Graph, mode: str | list[str] = "auto", rate: float = 0.05,
    ram_budget: int | None = None,
) -> list[LayerChoice]:  # fmt: skip
    """One kernel per layer. `mode` is auto, one kernel for all, or a list with one per layer.

    auto takes the cheapest estimate; within 5% it prefers the kernel with less state RAM. With a
    `ram_budget` (bytes of state: membranes plus delay state), auto layers then give up their
    fastest kernel for a leaner one, cheapest extra instructions per byte saved first, until the
    network fits; a budget that even the leanest choice misses is a ValueError.
    """
    layers = ops.layers(graph)
    modes = mode if isinstance(mode, list) else [mode] * len(layers)
    if len(modes) != len(layers):
        raise ValueError(f"{len(modes)} kernels given for {len(layers)} layers")
    for m in modes:
        if m != "auto" and m not in ops.KERNELS:
            raise ValueError(f"unknown snn kernel '{m}' (auto, {', '.join(ops.KERNELS)})")
    rates = (
        input_rates(graph, rate)
        if "auto" in modes
        else [np.full(layer.n_in, rate) for layer in layers]
    )
    out = []
    for layer, m, r in zip(layers, modes, rates, strict=True):
        est = estimate(layer, r)
        ram = {k: state_bytes(layer, k) for k in ops.KERNELS}
        if m == "auto":
            best = min(est.values())
            near = [k for k in ops.KERNELS if est[k] <= best * 1.05]
            m = min(near, key=lambda k: (ram[k], est[k]))
        out.append(LayerChoice(m, est, ram, float(r.mean()) if r.size else 0.0))
    if ram_budget is not None:
        _fit(out, [i for i, m in enumerate(modes) if m == "auto"], layers, ram_budget)
    return out


def _fit(
    out: list[LayerChoice], free: list[int], layers: list[ops.Layer], budget: int
) -> None:  # fmt: skip
    fixed = sum(4 * layer.n_out for layer in layers)  # int32 membranes

    def total() -> int:
        return fixed + sum(c.state_bytes[c.kernel] for c in out)

    while total() > budget:
        moves = []  # (extra instructions per byte saved, layer, leaner kernel)
        for i in free:
            c = out[i]
            for k in ops.KERNELS:
                saved = c.state_bytes[c.kernel] - c.state_bytes[k]
                if saved > 0:
                    moves.append(((c.estimates[k] - c.estimates[c.kernel]) / saved, i, k))
        if not moves:
            raise ValueError(
                f"the network needs at least {total():,} bytes of state "
                f"(membranes and delay lines), over the budget of {budget:,}"
            )
        _, i, k = min(moves)
        out[i].kernel = k
