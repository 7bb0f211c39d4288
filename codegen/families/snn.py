"""Delay-convolution kernels for snn_synapse, and the neuron kernel (docs/snn.md, "Kernels").

Three ways to compute I_i(t) = sum_j W_ij s_j(t - d_ij), bit-identical by construction:

* dense: every synapse every step, reading the input's packed history ring at its delay. The
  reference: simple, cost independent of activity.
* gather: one history word per input (bit d: a spike d steps ago; up to 32 delays, beyond that
  the dense kernel's ring of D input vectors); for every spike s_j(t - d) it adds the synapses
  of input j whose delay is exactly d. Synapses are stored grouped by (input, delay), so each is
  touched once per input spike.
* scatter: event driven on the output side; step t hands its accumulator slot on as the current
  and clears it, then a spike of input j adds each synapse's weight into the current (d = 0) or
  into the slot of step t + d of a ring of D - 1 slots.

The kernel is chosen per layer by edgekit.snn.cost (auto) or by the user; `prepare` adds the
kernel's constants and declares its state tensors, which edgekit.snn.state places in the
persistent region.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from codegen.kernels import register
from edgekit.ir.graph import Graph, Op, Tensor
from edgekit.snn.ops import KERNELS, NEURON_KINDS, SYNAPSE, packed_bytes

FAMILY = "snn"
TEMPLATES = {k: f"snn/synapse_{k}.c.j2" for k in KERNELS}
NEURON_TEMPLATE = "snn/neuron.c.j2"
INT16_MAX = (1 << 15) - 1
PAIRED_MIN_GROUP = 4.0
HISTORY_BITS = 32  # gather keeps one uint32 of spike history per input up to this many delays


def _state(graph: Graph, op: Op, role: str, shape: tuple[int, ...], dtype: str) -> None:
    name = f"{op.name}/{role}"
    graph.tensors[name] = Tensor(name, shape, dtype)
    op.attrs.setdefault("state", {})[role] = name


def _const(graph: Graph, op: Op, role: str, data: np.ndarray) -> None:
    name = f"{op.name}/{role}"
    if name in graph.tensors:
        del graph.tensors[name]  # re-preparing with another kernel replaces the old layout
    op.attrs.setdefault("q", {})[role] = graph.add_const(name, data)


def synapse_groups(
    weights: np.ndarray, delays: np.ndarray, max_delay: int, input_major: bool = False,
    lengths: bool = False,
) -> dict[str, np.ndarray]:  # fmt: skip
    """Non-zero synapses grouped by (delay d, input j), each group sorted by output neuron.

    Group g = d * n_in + j spans entries offsets[g] .. offsets[g + 1] - 1. Delay-major order lets
    gather walk one offsets row per history row. With `input_major` the group is
    g = j * max_delay + d instead: an input's groups are adjacent, so gather's per-input history
    word finds group (j, d) at offsets[j * D + d], and scatter walks one run with no stride.
    With `lengths` (scatter) the offsets become `starts` (input j's first entry, n_in values)
    and `lens` (entries, or words when paired, of each group): a spike walks its run counting
    each group down, with no end pointer to load and compare. Zero weights are dropped: adding
    0 changes nothing.

    Up to 256 outputs, two synapses share one int32 `pairs` word, t0 | w0 << 8 | t1 << 16 |
    w1 << 24 (w as its two's-complement byte), so one load feeds two updates; groups are padded
    to an even size with (0, 0) entries, which add 0 to neuron 0. Wider layers, and layers whose
    groups are so small that padding would cost more than pairing saves, keep separate `targets`
    and `weights` arrays, and offsets count entries instead of words.
    """
    n_out, n_in = weights.shape
    i_idx, j_idx = np.nonzero(weights)
    if input_major or lengths:
        group = j_idx.astype(np.int64) * max_delay + delays[i_idx, j_idx].astype(np.int64)
    else:
        group = delays[i_idx, j_idx].astype(np.int64) * n_in + j_idx.astype(np.int64)
    order = np.lexsort((i_idx, group))
    counts = np.bincount(group, minlength=n_in * max_delay)
    tgt, wts, grp = i_idx[order], weights[i_idx, j_idx][order].astype(np.int64), group[order]
    paired = n_out <= 256 and paired_layout(counts)
    padded = counts + (counts & 1) if paired else counts.copy()
    if paired or lengths:
        # the kernels walk such groups with a do-while: every group holds at least one entry
        # (a (0, 0) entry adds 0 to neuron 0), so no group pays an entry test. Gather's unpaired
        # groups (tiny ones, mostly) keep the test: padding them would cost more
        padded = np.maximum(padded, 2 if paired else 1)
    starts = np.concatenate([[0], np.cumsum(padded)])
    entries = np.zeros((int(starts[-1]), 2), dtype=np.int64)  # (target, weight)
    first = np.concatenate([[0], np.cumsum(counts)])[:-1]
    pos = starts[:-1][grp] + (np.arange(grp.size) - first[grp])
    entries[pos, 0], entries[pos, 1] = tgt, wts
    out: dict[str, np.ndarray] = {}
    if paired:
        e = entries.reshape(-1, 4)  # two entries per word
        words = e[:, 0] | (e[:, 1] & 0xFF) << 8 | e[:, 2] << 16 | (e[:, 3] & 0xFF) << 24
        offsets = starts // 2
        out["pairs"] = words.astype(np.uint32).view(np.int32)
    else:
        offsets = starts
        tgt_dtype = np.uint8 if n_out <= 256 else (np.int16 if n_out <= INT16_MAX + 1 else np.int32)
        out["targets"] = entries[:, 0].astype(tgt_dtype)
        out["weights"] = entries[:, 1].astype(np.int8)
    off_dtype = np.int16 if offsets[-1] <= INT16_MAX else np.int32
    if lengths:
        lens = np.diff(offsets)
        top = int(lens.max(initial=0))
        len_dtype = np.uint8 if top <= 255 else (np.int16 if top <= INT16_MAX else np.int32)
        out["starts"] = offsets[:-1:max_delay].astype(off_dtype)
        out["lens"] = lens.astype(len_dtype)
    else:
        out["offsets"] = offsets.astype(off_dtype)
    return out


def flat_events(weights: np.ndarray, delays: np.ndarray, max_delay: int) -> dict[str, np.ndarray]:
    """Scatter's layout for layers whose (input, delay) groups are tiny: one list per input.

    Input j's synapses are entries starts[j] .. starts[j + 1] - 1, one int32 each, sorted by
    (d, i): the weight's two's-complement byte in the top 8 bits and in the low 24 the target,
    i for d = 0 (added straight into the step's current) and (d - 1) * n_out + i for d >= 1 (an
    index into the D - 1 ring slots after the current one). splits[k * n_in + j] counts input
    j's synapses with a delay below k: the first splits[n_in + j] go to the current, and at ring
    head h those below splits[(D - 1 - h) * n_in + j] land in slots h + d, the rest wrap around
    to h + d - (D - 1), so the ring end costs no test per synapse.
    """
    n_out, n_in = weights.shape
    i_idx, j_idx = np.nonzero(weights)
    dl = delays[i_idx, j_idx].astype(np.int64)
    slot = dl * n_out + i_idx
    order = np.lexsort((slot, j_idx))
    w = weights[i_idx, j_idx].astype(np.int64)[order]
    target = (np.maximum(dl - 1, 0) * n_out + i_idx)[order]
    words = target | (w & 0xFF) << 24
    starts = np.concatenate([[0], np.cumsum(np.bincount(j_idx, minlength=n_in))])
    off_dtype = np.int16 if starts[-1] <= INT16_MAX else np.int32
    below = np.zeros((n_in, max_delay + 1), np.int64)
    np.add.at(below, (j_idx, dl + 1), 1)
    below = np.cumsum(below, axis=1)
    top = int(below.max(initial=0))
    split_dtype = np.uint8 if top <= 255 else (np.int16 if top <= INT16_MAX else np.int32)
    return {
        "starts": starts.astype(off_dtype),
        "events": words.astype(np.uint32).view(np.int32),
        "splits": below.T.reshape(-1).astype(split_dtype),
    }


def flat_layout(weights: np.ndarray, delays: np.ndarray, max_delay: int) -> bool:
    """Flat lists when groups would average fewer synapses than pairing needs (the same test
    as paired_layout) and every accumulator index fits 24 bits."""
    n_out, n_in = weights.shape
    if max_delay * n_out > 1 << 24:
        return False
    i_idx, j_idx = np.nonzero(weights)
    group = delays[i_idx, j_idx].astype(np.int64) * n_in + j_idx
    counts = np.bincount(group, minlength=n_in * max_delay)
    filled = counts[counts > 0]
    return bool(filled.size) and float(filled.mean()) < PAIRED_MIN_GROUP


def paired_layout(counts: np.ndarray) -> bool:
    """Pairs pay off when a non-empty group holds several synapses on average: each pair saves
    about one instruction, each padded entry costs about six."""
    filled = counts[counts > 0]
    return bool(filled.size) and float(filled.mean()) >= PAIRED_MIN_GROUP


def _operands(graph: Graph, op: Op) -> tuple[np.ndarray, np.ndarray, int]:
    w = graph.tensor(op.inputs[1]).data
    d = graph.tensor(op.inputs[2]).data
    assert w is not None and d is not None
    return w, d, int(op.attrs["max_delay"])


def scatter_acc_dtype(weights: np.ndarray) -> str:
    """int16 slots when no output's total |weight| can leave int16, else int32.

    A slot receives at most one event per synapse of its neuron (the spike s_j(t - d_ij)), so
    sum_j |W_ij| bounds it.
    """
    worst = int(np.abs(weights.astype(np.int64)).sum(axis=1).max(initial=0))
    return "int16" if worst <= INT16_MAX else "int32"


def _history(graph: Graph, op: Op) -> None:
    n_in, dmax = int(op.attrs["n_in"]), int(op.attrs["max_delay"])
    _state(graph, op, "ring", (dmax * packed_bytes(n_in),), "uint8")
    _state(graph, op, "head", (1,), "int32")


def prepare_dense(graph: Graph, op: Op) -> None:
    op.attrs["q"] = {}
    op.attrs["state"] = {}
    _history(graph, op)


def prepare_gather(graph: Graph, op: Op) -> None:
    op.attrs["q"] = {}
    op.attrs["state"] = {}
    w, d, dmax = _operands(graph, op)
    words = dmax <= HISTORY_BITS
    for role, arr in synapse_groups(w, d, dmax, input_major=words).items():
        _const(graph, op, role, arr)
    if words:
        # one word per input, bit d set when it spiked d steps ago: a step shifts each word and
        # opens only the groups of set bits, instead of scanning D rows of the whole input
        _state(graph, op, "hist", (int(op.attrs["n_in"]),), "int32")
    else:
        _history(graph, op)


def prepare_scatter(graph: Graph, op: Op) -> None:
    op.attrs["q"] = {}
    op.attrs["state"] = {}
    w, d, dmax = _operands(graph, op)
    flat = flat_layout(w, d, dmax)
    layout = flat_events(w, d, dmax) if flat else synapse_groups(w, d, dmax, lengths=True)
    for role, arr in layout.items():
        _const(graph, op, role, arr)
    n_out = int(op.attrs["n_out"])
    if dmax > 1:
        # slots for steps t + 1 .. t + D - 1 only: delay-0 synapses add into the step's current
        _state(graph, op, "ring", ((dmax - 1) * n_out,), scatter_acc_dtype(w))
        _state(graph, op, "head", (1,), "int32")


PREPARE: dict[str, Callable[[Graph, Op], None]] = {
    "dense": prepare_dense,
    "gather": prepare_gather,
    "scatter": prepare_scatter,
}


def drop_kernel_state(graph: Graph, op: Op) -> None:
    """Forget a previous kernel choice: its constants and state tensors."""
    for name in list(op.attrs.get("q", {}).values()) + list(op.attrs.get("state", {}).values()):
        graph.tensors.pop(str(name), None)
    op.attrs.pop("q", None)
    op.attrs.pop("state", None)
    op.attrs.pop("kernel", None)


def apply_kernel(graph: Graph, op: Op, kernel: str) -> None:
    """Give snn_synapse `op` the kernel `kernel`: constants, state and the template record."""
    if op.kind != SYNAPSE or kernel not in PREPARE:
        raise ValueError(f"{op.name}: no snn kernel '{kernel}' for {op.kind}")
    drop_kernel_state(graph, op)
    PREPARE[kernel](graph, op)
    op.attrs["snn_kernel"] = kernel
    op.attrs["kernel"] = {"family": FAMILY, "template": TEMPLATES[kernel]}


def _only(kernel: str) -> Callable[[Graph, Op], bool]:
    # selection by target family order never picks these: edgekit.snn.cost chooses per layer
    return lambda graph, op: op.attrs.get("snn_kernel") == kernel


for _k in KERNELS:
    register(FAMILY, SYNAPSE, TEMPLATES[_k], accepts=_only(_k), prepare=PREPARE[_k])
for _kind in NEURON_KINDS:
    register(FAMILY, _kind, NEURON_TEMPLATE)
