"""Checks and measurements behind `edgekit snn verify|bench` and bench/snn.py.

* `compare_float`: the float network against its quantised golden model on random spike trains
  (readout argmax agreement, spike counts per layer).
* `verify`: generated C against the golden model, bit for bit, on the host via cffi and, emulated,
  also under QEMU, over one long spike train with a reset in the middle so state carry-over and
  reset are both covered.
* `bench`: executed instructions per time step under QEMU, per kernel, plus RAM and flash.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgekit.ir.graph import Graph
from edgekit.snn import ops
from edgekit.snn.compile import compile_snn
from edgekit.snn.golden import GoldenSnn
from edgekit.snn.model import FloatSnn, predict, simulate


def spike_train(n_steps: int, n: int, rate: float, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random((n_steps, n)) < rate


def compare_float(
    net: FloatSnn, graph: Graph, samples: int = 20, steps: int = 100, rate: float = 0.05,
    seed: int = 0,
) -> dict[str, Any]:  # fmt: skip
    """Float vs quantised on `samples` Bernoulli trains of `steps` steps at `rate`."""
    trains = [spike_train(steps, net.n_inputs, rate, seed + s) for s in range(samples)]
    return {**compare_trains(net, graph, trains), "input_rate": rate}


def compare_trains(net: FloatSnn, graph: Graph, trains: Any) -> dict[str, Any]:
    """Float vs quantised, each train from rest: readout argmax agreement, spikes per layer."""
    golden = GoldenSnn(graph)
    agree = 0
    f_counts = np.zeros(len(golden.layers))
    q_counts = np.zeros(len(golden.layers))
    n_spiking = 0
    for x in trains:
        ref = simulate(net, x)
        golden.reset()
        tr = golden.run(x)
        qout = tr.output if tr.output.dtype == bool else golden.dequantize(tr.output)
        agree += predict(ref["readout"]) == predict(qout)
        n_spiking = len(tr.spikes)
        for k, (a, b) in enumerate(zip(ref["spikes"], tr.spikes, strict=True)):
            f_counts[k] += a.sum()
            q_counts[k] += b.sum()
    return {
        "samples": len(trains),
        "steps": int(trains[0].shape[0]) if len(trains) else 0,
        "argmax_agreement": agree / max(len(trains), 1),
        "float_spikes": [int(c) for c in f_counts[:n_spiking]],
        "quantized_spikes": [int(c) for c in q_counts[:n_spiking]],
    }


def verify(
    graph: Graph,
    target: str = "host",
    kernel: str = "auto",
    emulate: bool = False,
    steps: int = 256,
    rate: float = 0.05,
    seed: int = 0,
    chunk: int = 64,
    ram_budget: int | None = None,
) -> dict[str, Any]:
    """Generated C vs golden over `steps` steps, reset after the first half."""
    golden = GoldenSnn(graph)
    steps = max(2 * chunk, (steps + 2 * chunk - 1) // (2 * chunk) * (2 * chunk))
    x = spike_train(steps, golden.n_inputs, rate, seed)
    half = steps // 2
    expect = golden.run(x[:half]).output
    golden.reset()
    expect = np.concatenate([expect, golden.run(x[half:]).output])
    from edgekit.snn.host import SnnHostModel

    compiled = compile_snn(graph, target, kernel, rate, chunk, ram_budget)
    # the same kernels on the host as well, so an emulated verify checks golden == host == target
    host_c = compiled if not emulate else compile_snn(graph, "host", compiled.kernels, rate)
    model = SnnHostModel(host_c)
    model.reset()
    first = model.run(x[:half])
    model.reset()
    host = np.concatenate([first, model.run(x[half:])])
    got = host
    if emulate:
        from edgekit.snn.emulated import SnnEmulatedModel

        got = SnnEmulatedModel(compiled).run(x, reset_at={half // chunk}).output
    bad = np.nonzero(np.any(got != expect, axis=1) | np.any(host != expect, axis=1))[0]
    return {
        "target": target,
        "emulated": emulate,
        "kernels": compiled.kernels,
        "steps": steps,
        "match": bad.size == 0,
        "host_match": bool(np.array_equal(host, expect)),
        "mismatched_steps": int(bad.size),
        "first_mismatch_step": int(bad[0]) if bad.size else None,
    }


def bench(
    graph: Graph,
    target: str,
    kernel: str,
    rate: float,
    steps: int = 64,
    seed: int = 0,
    warmup: int | None = None,
    ram_budget: int | None = None,
) -> dict[str, Any]:
    """Instructions per step of one kernel choice at one input rate, after a warm-up.

    The warm-up (one delay length, rounded up to whole harness samples) fills the delay lines
    so the measured steps see a steady state.
    """
    from edgekit.snn.emulated import SnnEmulatedModel

    compiled = compile_snn(graph, target, kernel, rate, steps, ram_budget)
    layers = ops.layers(compiled.graph)
    dmax = max(layer.max_delay for layer in layers)
    n_warm = warmup if warmup is not None else (dmax + steps - 1) // steps
    model = SnnEmulatedModel(compiled)
    golden = GoldenSnn(graph)
    x = spike_train((n_warm + 1) * steps, golden.n_inputs, rate, seed)
    # per-layer counts come from the harness's layer-by-layer replay, which first copies the
    # whole state into a snapshot (a byte loop: about 4 instructions a byte, per sample); the
    # step total is taken from a second run without the replay, so it holds only the step
    res = model.run(x, count=True, per_layer=True)
    plain = model.run(x, count=True)
    trace = golden.run(x)
    for r in (res, plain):
        if not np.array_equal(r.output, trace.output):
            raise AssertionError(
                f"{target}/{kernel}: emulated output differs from the golden model"
            )
    assert res.layer_instructions is not None and plain.instructions is not None
    measured = slice(n_warm * steps, None)
    # synapse events: every spike of a layer's input times that input's non-zero fan-out, which
    # any event-driven kernel must touch once; instructions per event say how close it comes
    inputs = [x.astype(bool), *trace.spikes][: len(layers)]
    events = sum(
        float((s[measured].astype(np.float64) @ (layer.weights != 0).sum(axis=0)).mean())
        for s, layer in zip(inputs, layers, strict=True)
    )
    report = compiled.report()
    sizes = model.sizes()
    return {
        "target": target,
        "kernels": compiled.kernels,
        "input_rate": rate,
        "layer_rates": [float(s[measured].mean()) for s in trace.spikes],
        "steps": steps,
        "instructions_per_step": plain.instructions[-1] / steps,
        "layer_instructions_per_step": [v / steps for v in res.layer_instructions[-1]],
        "synapse_events_per_step": events,
        "state_bytes": report["state_bytes"],
        "arena_bytes": report["arena_bytes"],
        "ram_bytes": report["ram_bytes"],
        "const_bytes": report["const_bytes"],
        "firmware_text": sizes["text"],
        "firmware_rodata": sizes["rodata"],
    }
