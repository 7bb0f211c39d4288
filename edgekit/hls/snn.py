"""Spiking networks on the hls-vitis target: estimate, reuse, golden vectors, project, verify.

The HLS layers are built by codegen/hls/snn.py. Here each layer is priced with the same
building blocks as the int8 estimate (edgekit/hls/estimate.py), a reuse is chosen per layer
against the part, the testbench gets a spike train and the spiking golden model's outputs, and
`verify` C-simulates against both the golden model and the MCU C of `edgekit snn generate`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from math import ceil
from pathlib import Path
from typing import Any

import numpy as np

from codegen.hls.design import memory_storage
from codegen.hls.snn import SnnDesign, SnnLayer, SnnVectors, build_snn_design, render_snn_project
from edgekit import __version__
from edgekit.errors import EdgekitError
from edgekit.hls.estimate import Estimate, LayerEstimate, Timing, _Cost, dsp_tiles
from edgekit.hls.parts import Part
from edgekit.hls.reuse import AUTO_UTILIZATION
from edgekit.ir.graph import Graph
from edgekit.snn import ops
from edgekit.snn.golden import GoldenSnn

# LUTs of one neuron update after its current: the 64-bit sum with bias and leak, the int32
# saturation, the threshold compare and the reset multiplexer.
_NEURON_LUT = 150
_LAYER_CONTROL_LUT = 60
_HANDSHAKE = 2
# Input rates of the testbench's spike trains, in turn: sparse to busy, so every layer fires.
TRAIN_RATES = (0.1, 0.3, 0.5)


@dataclass
class SnnHlsProject:
    name: str
    graph: Graph
    design: SnnDesign
    estimate: Estimate
    options: Any  # HlsOptions
    part: Part
    clock_mhz: float
    source_sha256: str
    vectors: SnnVectors
    files: dict[str, str] = field(default_factory=dict)


# --- estimate -------------------------------------------------------------------------------


def _stats(layer: SnnLayer) -> tuple[np.ndarray, int]:
    """Per neuron its non-zero synapses, and the (input, delay) taps the layer reads."""
    if "terms" not in layer.cache:
        nz = layer.weights != 0
        layer.cache["terms"] = nz.sum(axis=1)
        rows, cols = np.nonzero(nz)
        layer.cache["taps"] = len(set(zip(cols.tolist(), layer.delays[rows, cols].tolist(),
                                          strict=True)))
    return layer.cache["terms"], layer.cache["taps"]


def _storage(c: _Cost, width: int, depth: int) -> None:
    s = memory_storage(width, depth)
    c.bram18 += s.bram18
    c.lut += s.lut


def layer_cost(layer: SnnLayer, tm: Timing, part: Part) -> _Cost:
    """Resources and cycles of one spiking layer (docs/hls.md, "Spiking layers")."""
    c = _Cost()
    a = layer.acc_bits
    terms, taps = _stats(layer)
    ub, rl, d = layer.ub, layer.rounds_lanes, layer.max_delay
    if layer.storage == "shift":
        # a constant weight gated by one spike bit is wiring; the validity gate is one LUT a tap
        c.products = int(terms.sum())
        c.lut += int(sum(ceil(int(t) / 2) * a for t in terms)) + taps
        widest = int(terms.max(initial=0))
        c.iterations = 1
    else:
        n = ub * layer.n_in
        c.products = n
        if rl == 1:  # constant weights and delays: a gate per synapse behind a delay decoder
            c.lut += int(terms.sum()) + d + int(sum(ceil(int(t) / 2) * a for t in terms))
        else:  # ROM words: an 8-bit delay compare and an 8-bit weight gate per synapse
            c.lut += n * 7 + ub * ceil(layer.n_in / 2) * a
            _storage(c, n * 8, rl)  # weights
            _storage(c, n * max(1, (d - 1).bit_length()), rl)  # delays
            for data in (layer.bias, layer.threshold, layer.decay):
                if data is not None and np.any(data != data.reshape(-1)[0]):
                    _storage(c, ub * 32, rl)
            _storage(c, ub * 32, rl)  # membranes
        _storage(c, layer.n_in, d)  # the ring of input rows
        widest = layer.n_in
        c.iterations = rl * d
    decays = layer.decay is not None
    c.dsp += ub * dsp_tiles(part, 32, 31) if decays else 0
    c.lut += ub * _NEURON_LUT + _LAYER_CONTROL_LUT
    # the current's adder tree runs beside the decay product; then the sum, saturate, compare
    chain = max(tm.tree_ns(widest + 1), tm.t.wide_mul if decays else 0.0) + 3 * tm.t.add
    c.depth = tm.cycles(chain) + tm.io
    c.latency = c.iterations - 1 + c.depth + (0 if layer.storage == "shift" else 1)
    c.interval = c.latency
    c.first_out = c.latency
    return c


def recurrence(layer: SnnLayer, tm: Timing) -> int:
    """Cycles of the membrane loop (decay, add, saturate, reset): the pipelined top's II."""
    return tm.cycles((tm.t.wide_mul if layer.decay is not None else 0.0) + 3 * tm.t.add)


def estimate_snn(design: SnnDesign, part: Part, clock_mhz: float) -> Estimate:
    pipelined = design.schedule == "pipeline"
    tm = Timing(part, clock_mhz, registered=not pipelined)
    est = Estimate(part, clock_mhz, design.io, design.schedule, [], unit="time step")
    costs = []
    for i, layer in enumerate(design.layers):
        c = layer_cost(layer, tm, part)
        costs.append(c)
        est.layers.append(
            LayerEstimate(
                index=i, name=layer.name, kind=layer.kind, reuse=layer.reuse,
                mult=layer.storage, ii=1, iterations=c.iterations, depth=c.depth,
                latency=c.latency, interval=c.interval, first_out=c.first_out,
                products=c.products, dsp=c.dsp, bram18=c.bram18, lut=c.lut,
            )
        )  # fmt: skip
    if pipelined:
        est.latency = 2 + sum(c.depth for c in costs)
        est.interval = max(recurrence(layer, tm) for layer in design.layers)
    else:
        est.latency = sum(c.latency + _HANDSHAKE for c in costs)
        est.interval = est.latency
    # shift layers hold history and membranes in registers; a ring layer with one lane round
    # its membranes only (several lane rounds keep them in RAM)
    regs = sum(
        (layer.n_in * layer.max_delay if layer.storage == "shift" else 0)
        + (32 * layer.n_out if layer.rounds_lanes == 1 else 0)
        for layer in design.layers
    )
    est.ff = regs
    if regs:
        est.notes.append("FF: shift-register histories and membranes held in registers")
    return est


def plan_snn_reuse(
    design: SnnDesign, part: Part, clock_mhz: float, reuse: int | str
) -> Estimate:
    """Set every layer's reuse: one number for all, or `auto`: the fewest cycles that fit.

    auto starts every layer at reuse 1 (shift registers, one cycle a step) and, while the design
    uses more than AUTO_UTILIZATION of a resource, moves the layer using the most LUTs to its
    next reuse option (ring RAM, more lane rounds).
    """
    if reuse != "auto":  # read_options() checked it is a number >= 1
        for layer in design.layers:
            layer.set_reuse(int(reuse))
        return estimate_snn(design, part, clock_mhz)
    for layer in design.layers:
        layer.reuse = 1
    est = estimate_snn(design, part, clock_mhz)
    while est.over(AUTO_UTILIZATION):
        movable = [
            (x.lut + 100 * x.dsp, k)
            for k, x in enumerate(est.layers)
            if design.layers[k].reuse < design.layers[k].reuse_options()[-1]
        ]
        if not movable:
            break
        k = max(movable)[1]
        layer = design.layers[k]
        layer.reuse = min(r for r in layer.reuse_options() if r > layer.reuse)
        est = estimate_snn(design, part, clock_mhz)
    return est


# --- vectors, project, verify ---------------------------------------------------------------


def train_steps(graph: Graph) -> int:
    """Steps of one testbench train: two delay lengths, so every delay line fills and wraps."""
    return max(16, 2 * max(layer.max_delay for layer in ops.layers(graph)))


def spike_trains(graph: Graph, trains: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`trains` random trains back to back, [T, n_in] bool, and the reset flag of every step."""
    n_in = ops.layers(graph)[0].n_in
    steps = train_steps(graph)
    rng = np.random.default_rng(seed)
    x = np.concatenate(
        [rng.random((steps, n_in)) < TRAIN_RATES[k % len(TRAIN_RATES)] for k in range(trains)]
    )
    resets = np.zeros(x.shape[0], dtype=bool)
    resets[::steps] = True
    return x, resets


def golden_outputs(graph: Graph, spikes: np.ndarray, resets: np.ndarray) -> np.ndarray:
    """The golden model over the steps, restarted wherever `resets` says."""
    golden = GoldenSnn(graph)
    starts = [*np.nonzero(resets)[0].tolist(), spikes.shape[0]]
    if starts[0] != 0:
        starts.insert(0, 0)
    outs = []
    for a, b in zip(starts[:-1], starts[1:], strict=True):
        golden.reset()
        outs.append(golden.run(spikes[a:b]).output)
    return np.concatenate(outs)


def load_snn_ekir(path: str | Path, name: str | None = None) -> tuple[Graph, str] | None:
    """The spiking graph of an .ekir file and its sha256, or None for any other model file."""
    from edgekit.ir import serialize

    p = Path(path)
    if p.suffix != ".ekir" or not p.is_file():
        return None
    data = p.read_bytes()
    if data[:4] != serialize.MAGIC:
        return None
    graph = serialize.loads(data, str(p))
    if not ops.is_snn(graph):
        return None
    ops.layers(graph)  # structural errors, once, as EdgekitErrors
    if name:
        graph.name = name
    return graph, hashlib.sha256(data).hexdigest()


def plan_snn(graph: Graph, options: Any) -> tuple[SnnDesign, Estimate, Part, float]:
    from edgekit.hls.project import hls_name, read_options

    part, clock, reuse = read_options(options)
    design = build_snn_design(graph, hls_name(graph), options.io)
    est = plan_snn_reuse(design, part, clock, reuse)
    return design, est, part, clock


def build_snn_project(
    graph: Graph, sha: str, options: Any, require_fit: bool = True, where: str = ""
) -> SnnHlsProject:
    from edgekit.hls.lint import lint_sources
    from edgekit.hls.reuse import check_fit

    design, est, part, clock = plan_snn(graph, options)
    if require_fit:
        check_fit(est, options.reuse)
    if options.tb_samples < 1:
        raise EdgekitError("the testbench needs at least one sample")
    spikes, resets = spike_trains(graph, options.tb_samples, options.seed)
    vectors = SnnVectors(spikes, resets, golden_outputs(graph, spikes, resets), options.seed)
    ii = est.interval if design.schedule == "pipeline" else 1
    files = render_snn_project(design, part.name, clock, vectors, sha, ii)
    project = SnnHlsProject(design.name, graph, design, est, options, part, clock, sha, vectors,
                            files)
    synth = [f"{design.name}.h", f"{design.name}.cpp", f"{design.name}_weights.h",
             "edgekit_hls.h"]
    issues = lint_sources({f: files[f] for f in synth})
    if issues:
        raise EdgekitError(
            "the generated HLS C++ failed the synthesizability lint:\n"
            + "\n".join(f"  {i}" for i in issues[:20]),
            where or graph.name,
            "this is an edgekit bug; please report it with the model",
        )
    return project


def snn_project_report(project: SnnHlsProject) -> dict[str, Any]:
    return {
        "edgekit_version": __version__,
        "model": project.graph.name,
        "source_sha256": project.source_sha256,
        "target": "hls-vitis",
        "kind": "spiking",
        "options": dict(sorted(project.options.to_json().items())),
        "top": project.name,
        "schedule": project.design.schedule,
        "layers": [
            {"name": x.name, "neuron": x.kind, "n_in": x.n_in, "n_out": x.n_out,
             "max_delay": x.max_delay, "reuse": x.reuse, "history": x.storage,
             "lane_rounds": x.rounds_lanes}
            for x in project.design.layers
        ],
        "testbench": {
            "steps": int(project.vectors.spikes.shape[0]),
            "resets": int(project.vectors.resets.sum()),
            "reference": "the edgekit spiking golden model",
        },
        "estimate": project.estimate.to_json(),
    }


def verify_snn(project: SnnHlsProject, trains: int, seed: int) -> dict[str, Any]:
    """C simulation vs the golden model and vs the MCU C on the same trains; the testbench."""
    from edgekit.runners.hls_csim import SnnCsimModel, run_testbench
    from edgekit.snn.compile import compile_snn
    from edgekit.snn.host import SnnHostModel

    graph = project.graph
    spikes, resets = spike_trains(graph, trains, seed)
    ours = SnnCsimModel.from_project(project).run(spikes, resets)
    golden = golden_outputs(graph, spikes, resets).astype(np.int64)
    mcu = SnnHostModel(compile_snn(graph, "host", "auto"))
    starts = [*np.nonzero(resets)[0].tolist(), spikes.shape[0]]
    parts = []
    for a, b in zip(starts[:-1], starts[1:], strict=True):
        mcu.reset()
        parts.append(mcu.run(spikes[a:b]))
    mcu_out = np.concatenate(parts).astype(np.int64)

    def mismatch(ref: np.ndarray) -> dict[str, int]:
        bad = np.any(ours != ref.reshape(ours.shape), axis=1)
        return {"mismatched_steps": int(bad.sum()),
                "first_mismatch_step": int(np.argmax(bad)) if bad.any() else -1}

    tb = run_testbench(project.files, project.name)
    checks = {"the spiking golden model": mismatch(golden), "the edgekit MCU C": mismatch(mcu_out)}
    ok = tb.ok and all(c["mismatched_steps"] == 0 for c in checks.values())
    return {
        "ok": ok,
        "steps": int(spikes.shape[0]),
        "trains": trains,
        "nonzero_outputs": int(np.count_nonzero(ours)),
        "against": checks,
        "testbench": {"ok": tb.ok, "output": tb.output.splitlines()[-1:] if tb.output else []},
    }
