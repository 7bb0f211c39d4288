"""The IR vocabulary of time-stepped spiking networks (docs/snn.md) and a typed view of it.

A spiking graph is a chain of (snn_synapse, neuron) pairs executed once per time step. Spike
vectors are packed bits, LSB first, padded to whole 32-bit words, so kernels scan 32 neurons per
load. State that must survive between steps (membranes, delay rings, ring heads) is held in
activation tensors that no op lists as an input or output: ops name them in attrs["state"], the
int8 memory planner therefore ignores them, and `edgekit.snn.state` places them in a separate
persistent region.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.ir.graph import Graph, Op

SYNAPSE = "snn_synapse"
LIF = "snn_lif"
IF = "snn_if"
LI = "snn_li"
CUBA = "snn_cuba_lif"
NEURON_KINDS = (LIF, IF, LI, CUBA)
KINDS = (SYNAPSE, *NEURON_KINDS)
NEURON_OF = {"lif": LIF, "if": IF, "li": LI, "cuba": CUBA}
#: Decay multipliers are Q2.30: decay(v) = floor((v * m + 2^29) / 2^30), exact for m = 2^30.
DECAY_SHIFT = 30
KERNELS = ("dense", "gather", "scatter")


def packed_bytes(n: int) -> int:
    """Bytes of a spike vector inside the model: whole 32-bit words."""
    return 4 * ((n + 31) // 32)


def io_bytes(n: int) -> int:
    """Bytes of a spike vector at the API: ceil(n / 8), LSB first."""
    return (n + 7) // 8


def pack_spikes(spikes: np.ndarray, nbytes: int | None = None) -> np.ndarray:
    """[..., n] 0/1 -> [..., nbytes] uint8, bit j of the vector in bit j % 8 of byte j // 8."""
    s = np.asarray(spikes).astype(bool)
    n = s.shape[-1]
    packed = np.packbits(s, axis=-1, bitorder="little")
    want = io_bytes(n) if nbytes is None else nbytes
    pad = want - packed.shape[-1]
    if pad > 0:
        packed = np.concatenate(
            [packed, np.zeros((*packed.shape[:-1], pad), dtype=np.uint8)], axis=-1
        )
    return packed


def unpack_spikes(packed: np.ndarray, n: int) -> np.ndarray:
    return np.unpackbits(np.asarray(packed, dtype=np.uint8), axis=-1, bitorder="little")[
        ..., :n
    ].astype(bool)


@dataclass
class Layer:
    """One synapse + neuron pair with its integer parameters, read from the graph."""

    index: int
    synapse: Op
    neuron: Op
    weights: np.ndarray  # int8 [n_out, n_in]
    delays: np.ndarray  # uint8 [n_out, n_in]
    max_delay: int
    bias: np.ndarray  # int32 [n_out], membrane units
    threshold: np.ndarray | None  # int32 [n_out]; None for li
    decay: np.ndarray | None  # int32 [n_out], Q2.30; None for if
    reset: str
    membrane: str  # state tensor name
    # snn_cuba_lif only: Q2.30 decay and int32 per-step input of the synaptic current, its state
    syn_decay: np.ndarray | None = None
    syn_bias: np.ndarray | None = None
    synaptic: str | None = None

    @property
    def n_in(self) -> int:
        return int(self.weights.shape[1])

    @property
    def n_out(self) -> int:
        return int(self.weights.shape[0])

    @property
    def kind(self) -> str:
        return self.neuron.kind


def is_snn(graph: Graph) -> bool:
    return any(op.kind in KINDS for op in graph.ops)


def _const(graph: Graph, name: str, dtype: str, shape: tuple[int, ...], what: str) -> np.ndarray:
    t = graph.tensors.get(name)
    if t is None or t.data is None:
        raise EdgekitError(f"{what}: '{name}' must be a constant tensor")
    if t.dtype != dtype or tuple(t.shape) != shape:
        raise EdgekitError(f"{what}: '{name}' must be {dtype}{list(shape)}, is {t.dtype}{t.shape}")
    return t.data


def layers(graph: Graph) -> list[Layer]:
    """The graph as its chain of layers; any structural error is an EdgekitError."""
    ops = graph.ops
    if not ops or len(ops) % 2:
        raise EdgekitError("a spiking graph is a chain of (snn_synapse, neuron) op pairs")
    out: list[Layer] = []
    prev = graph.inputs[0] if len(graph.inputs) == 1 else None
    for k in range(0, len(ops), 2):
        syn, neu = ops[k], ops[k + 1]
        what = f"op {syn.name}"
        if syn.kind != SYNAPSE or neu.kind not in NEURON_KINDS:
            raise EdgekitError(f"{what}: expected snn_synapse then a neuron op, got {neu.kind}")
        if syn.inputs[0] != prev:
            raise EdgekitError(f"{what}: its input is not the previous layer's spikes")
        n_in, n_out, dmax = (
            int(syn.attrs["n_in"]),
            int(syn.attrs["n_out"]),
            int(syn.attrs["max_delay"]),
        )
        w = _const(graph, syn.inputs[1], "int8", (n_out, n_in), what)
        d = _const(graph, syn.inputs[2], "uint8", (n_out, n_in), what)
        if d.size and int(d.max()) >= dmax:
            raise EdgekitError(f"{what}: a delay is >= max_delay {dmax}")
        if neu.inputs[0] != syn.outputs[0]:
            raise EdgekitError(f"op {neu.name}: must read the current of {syn.name}")
        nwhat = f"op {neu.name}"
        bias = _const(graph, neu.inputs[1], "int32", (n_out,), nwhat)
        thr = None if neu.kind == LI else _const(graph, neu.inputs[2], "int32", (n_out,), nwhat)
        dec = None if neu.kind == IF else _const(graph, neu.inputs[3], "int32", (n_out,), nwhat)
        if thr is not None and np.any(thr <= 0):
            raise EdgekitError(f"{nwhat}: thresholds must be positive")
        if dec is not None and (np.any(dec < 0) or np.any(dec > 1 << DECAY_SHIFT)):
            raise EdgekitError(f"{nwhat}: decay multipliers must lie in [0, 2^30]")
        reset = str(neu.attrs.get("reset", "zero"))
        if reset not in ("zero", "subtract"):
            raise EdgekitError(f"{nwhat}: unknown reset '{reset}'")
        membrane = neu.attrs["state"]["membrane"]
        layer = Layer(k // 2, syn, neu, w, d, dmax, bias, thr, dec, reset, str(membrane))
        if neu.kind == CUBA:
            if len(neu.inputs) != 6 or "synaptic" not in neu.attrs["state"]:
                raise EdgekitError(f"{nwhat}: needs a synaptic decay, bias and state")
            layer.syn_decay = _const(graph, neu.inputs[4], "int32", (n_out,), nwhat)
            layer.syn_bias = _const(graph, neu.inputs[5], "int32", (n_out,), nwhat)
            if np.any(layer.syn_decay < 0) or np.any(layer.syn_decay > 1 << DECAY_SHIFT):
                raise EdgekitError(f"{nwhat}: synaptic decay multipliers must lie in [0, 2^30]")
            layer.synaptic = str(neu.attrs["state"]["synaptic"])
        out.append(layer)
        prev = neu.outputs[0]
    if graph.outputs != [prev]:
        raise EdgekitError("a spiking graph's one output must be its last neuron op's output")
    for layer in out[:-1]:
        if layer.kind == LI:
            raise EdgekitError(f"op {layer.neuron.name}: a leaky integrator must be the readout")
    return out


def state_names(graph: Graph) -> list[str]:
    """Every state tensor, in op order (membranes, rings, heads)."""
    names: list[str] = []
    for op in graph.ops:
        for t in op.attrs.get("state", {}).values():
            if t not in names:
                names.append(str(t))
    return names
