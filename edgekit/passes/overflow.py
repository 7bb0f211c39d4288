"""Prove, layer by layer, that no int32 intermediate of the portable int8 kernels can overflow.

The bound of each layer is computed from its actual constants (weights, folded biases,
multipliers) over the worst-case input: every input element anywhere in its storage range. For
the reductions it is exact, not just safe: with int8 inputs the offset input x - zero_point
always ranges over an interval containing 0, so every partial sum of the accumulation lies
between the two extremes below, and the extremes are reached by setting each input to -128 or
127 according to the sign of its weight (`worst_case_input`).

  conv2d, depthwise   acc = bias + sum w * (x + input_offset)
  fully_connected     acc = folded_bias + sum (w + filter_offset) * x
  add, sub            ((x + offset) << 20) rescaled per input, then summed
  mul                 (x1 + offset1) * (x2 + offset2)
  mean                zero_sum + sum x
  avg_pool2d          sum x over the window
  softmax             sum of exp terms in Q12, each at most 2^19
  requantisation      acc << left_shift inside ek_mbqm, then + output_offset

The result is kept in `op.attrs["overflow"]` (`max_abs`: the largest magnitude any of the layer's
int32 intermediates can take; `headroom_bits`: how many times that could double before leaving
int32; `stage` and `channel` where it occurs).

An int8 conv2d, depthwise or fully connected layer whose int32 arithmetic could overflow is
widened instead: its accumulator becomes int64 and its requantization TFLite's 64-bit one (the
16x8 rule, `acc64`), which is proven in turn against the 2^47 input that requantization accepts,
and `overflow.widened` says so. Such a layer runs the portable kernel. TFLite Micro has no
result to compare it with there (its int32 sum would overflow); the widened layer computes the
exact sum. Any other layer that could overflow is refused with a clean EdgekitError naming it,
rather than generating code that would be wrong, or undefined behaviour in C.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.ir import fixedpoint as fp
from edgekit.ir.graph import Graph, Op

INT32_MAX = (1 << 31) - 1
INT32_MIN = -(1 << 31)
_ADD_TERM_MAX = 255  # |x + offset| for int8 x and an int8 zero point


@dataclass
class Bound:
    """The widest range one stage of a layer's arithmetic can reach."""

    lo: int
    hi: int
    stage: str
    channel: int | None = None
    # 31 for int32 arithmetic; 47 for a 16x8 layer's int64 accumulator, the largest input
    # TFLite's int64 requantization accepts
    bits: int = 31

    @property
    def max_abs(self) -> int:
        return max(abs(self.lo), abs(self.hi))

    @property
    def fits(self) -> bool:
        return self.lo >= -(1 << self.bits) and self.hi <= (1 << self.bits) - 1

    def to_json(self) -> dict[str, Any]:
        return {
            "max_abs": self.max_abs,
            "headroom_bits": self.bits - self.max_abs.bit_length(),
            "stage": self.stage,
            "channel": self.channel,
        }


def _worst(bounds: list[Bound]) -> Bound:
    return max(bounds, key=lambda b: (not b.fits, b.max_abs))


def _x_range(graph: Graph, op: Op) -> tuple[int, int]:
    info = np.iinfo(np.dtype(graph.tensor(op.inputs[0]).dtype))
    return int(info.min), int(info.max)


def _const(graph: Graph, q: dict[str, Any], key: str, n: int) -> list[int]:
    """A per-channel lowered value as n Python ints (scalars are broadcast)."""
    v = q[key]
    if isinstance(v, str):
        data = graph.tensor(v).data
        assert data is not None
        return [int(a) for a in data.reshape(-1)]
    return [int(v)] * n


def _requant(acc: Bound, mult: int, shift: int, out_offset: int, ch: int | None) -> list[Bound]:
    """ek_mbqm(acc, mult, shift) + out_offset: the shifted input, then the offset result."""
    left = max(shift, 0)
    shifted = Bound(acc.lo << left, acc.hi << left, "requant_input", ch)
    if not shifted.fits:
        return [shifted]
    # ek_mbqm is monotonic in its input for a non-negative multiplier: the ends map to the ends
    lo = fp.multiply_by_quantized_multiplier(acc.lo, mult, shift) + out_offset
    hi = fp.multiply_by_quantized_multiplier(acc.hi, mult, shift) + out_offset
    return [shifted, Bound(min(lo, hi), max(lo, hi), "requant_output", ch)]


def _dot_bounds(
    w: np.ndarray, bias: list[int], v_lo: int, v_hi: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per row of w [channels, taps]: the extremes of bias + sum w * v, v in [v_lo, v_hi] ∋ 0."""
    w = w.astype(np.int64)
    pos = np.where(w > 0, w, 0).sum(axis=1)
    neg = np.where(w < 0, w, 0).sum(axis=1)
    b = np.asarray(bias, dtype=np.int64)
    return b + pos * v_lo + neg * v_hi, b + pos * v_hi + neg * v_lo


def _reduction(graph: Graph, op: Op, w: np.ndarray, v_lo: int, v_hi: int) -> list[Bound]:
    q = op.attrs["q"]
    channels = w.shape[0]
    bias = _const(graph, q, "bias", channels)
    lo, hi = _dot_bounds(w, bias, v_lo, v_hi)
    mult = _const(graph, q, "multiplier", channels)
    shift = _const(graph, q, "shift", channels)
    out = []
    if q.get("acc64"):
        # 16x8: int64 accumulator, then TFLite's int64 requantization into int32
        for c in range(channels):
            acc = Bound(int(lo[c]), int(hi[c]), "accumulator", c, bits=47)
            out.append(acc)
            if acc.fits:
                ends = [fp.multiply_by_quantized_multiplier_64(v, mult[c], shift[c]) +
                        int(q["output_offset"]) for v in (acc.lo, acc.hi)]
                out.append(Bound(min(ends), max(ends), "requant_output", c))
        return out
    for c in range(channels):
        acc = Bound(int(lo[c]), int(hi[c]), "accumulator", c)
        out += (
            [acc]
            if not acc.fits
            else [acc, *_requant(acc, mult[c], shift[c], int(q["output_offset"]), c)]
        )
    return out


def _conv(graph: Graph, op: Op) -> list[Bound]:
    w = graph.tensor(op.inputs[1]).data
    assert w is not None
    taps = w.reshape(w.shape[0], -1) if op.kind == "conv2d" else w.reshape(-1, w.shape[3]).T
    x_lo, x_hi = _x_range(graph, op)
    off = int(op.attrs["q"]["input_offset"])
    return _reduction(graph, op, taps, x_lo + off, x_hi + off)


def _fully_connected(graph: Graph, op: Op) -> list[Bound]:
    w = graph.tensor(op.inputs[1]).data
    assert w is not None
    x_lo, x_hi = _x_range(graph, op)
    return _reduction(
        graph, op, w.astype(np.int64) + int(op.attrs["q"]["filter_offset"]), x_lo, x_hi
    )


def _add_sub(graph: Graph, op: Op) -> list[Bound]:
    q = op.attrs["q"]
    scaled = []
    out: list[Bound] = []
    for k in (1, 2):
        v = Bound(
            -_ADD_TERM_MAX << q["left_shift"], _ADD_TERM_MAX << q["left_shift"], f"input{k}_shifted"
        )
        parts = _requant(v, q[f"input{k}_multiplier"], q[f"input{k}_shift"], 0, None)
        out += [v, *parts]
        scaled.append(parts[-1])
    if not all(b.fits for b in out):
        return out
    s1, s2 = scaled
    total = (
        Bound(s1.lo - s2.hi, s1.hi - s2.lo, "sum")
        if op.kind == "sub"
        else Bound(s1.lo + s2.lo, s1.hi + s2.hi, "sum")
    )
    out.append(total)
    if total.fits:
        out += _requant(total, q["output_multiplier"], q["output_shift"], q["output_offset"], None)
    return out


def _mul(graph: Graph, op: Op) -> list[Bound]:
    q = op.attrs["q"]
    prod = Bound(-_ADD_TERM_MAX * _ADD_TERM_MAX, _ADD_TERM_MAX * _ADD_TERM_MAX, "product")
    return [
        prod,
        *_requant(prod, q["output_multiplier"], q["output_shift"], q["output_offset"], None),
    ]


def _mean(graph: Graph, op: Op) -> list[Bound]:
    q = op.attrs["q"]
    x_lo, x_hi = _x_range(graph, op)
    acc = Bound(q["zero_sum"] + x_lo * q["count"], q["zero_sum"] + x_hi * q["count"], "sum")
    return (
        [acc]
        if not acc.fits
        else [acc, *_requant(acc, q["multiplier"], q["shift"], q["output_offset"], None)]
    )


def _avg_pool(graph: Graph, op: Op) -> list[Bound]:
    x_lo, x_hi = _x_range(graph, op)
    fh, fw = op.attrs["filter"]
    return [Bound(x_lo * fh * fw, x_hi * fh * fw, "sum")]


def _softmax(graph: Graph, op: Op) -> list[Bound]:
    # each exp term is at most exp(0) = 1.0 in Q12, i.e. 2^19, reached by the row maximum
    return [Bound(0, op.attrs["q"]["depth"] << 19, "exp_sum")]


def _requant_op(graph: Graph, op: Op) -> list[Bound]:
    q = op.attrs["q"]
    if q.get("mode") != "requant":
        return []
    x_lo, x_hi = _x_range(graph, op)
    z = int(q["input_zero_point"])
    return _requant(
        Bound(x_lo - z, x_hi - z, "input"), q["multiplier"], q["shift"], q["output_offset"], None
    )


_BOUNDS: dict[str, Callable[[Graph, Op], list[Bound]]] = {
    "conv2d": _conv,
    "depthwise_conv2d": _conv,
    "fully_connected": _fully_connected,
    "add": _add_sub,
    "sub": _add_sub,
    "mul": _mul,
    "mean": _mean,
    "avg_pool2d": _avg_pool,
    "softmax": _softmax,
    "quantize": _requant_op,
    "relu": _requant_op,
}


def layer_bounds(graph: Graph, op: Op) -> list[Bound]:
    """Every bounded stage of one lowered int8 op (per channel where it has channels)."""
    fn = _BOUNDS.get(op.kind)
    if fn is None or not isinstance(op.attrs.get("q"), dict):
        return []
    return fn(graph, op)


def layer_bound(graph: Graph, op: Op) -> Bound | None:
    """The worst intermediate of one lowered int8 op, or None if it has no int32 arithmetic."""
    bounds = layer_bounds(graph, op)
    return _worst(bounds) if bounds else None


#: int8 layers whose portable kernel can accumulate in int64 (q["acc64"]) when int32 could overflow
_WIDENABLE = frozenset({"conv2d", "depthwise_conv2d", "fully_connected"})


def check_overflow(graph: Graph, where: str = "") -> Graph:
    """Record every layer's bound in op.attrs["overflow"]; widen the int8 reductions that could
    overflow to int64 and refuse a graph where another layer could."""
    if graph.meta.get("precision", "int8") != "int8":
        return graph  # float graphs have no integer accumulators
    problems = []
    for idx, op in enumerate(graph.ops):
        bound = layer_bound(graph, op)
        if bound is None:
            continue
        if not bound.fits and op.kind in _WIDENABLE and not op.attrs["q"].get("acc64"):
            op.attrs["q"]["acc64"] = True
            widened = layer_bound(graph, op)
            if widened is not None and widened.fits:
                op.attrs["overflow"] = {**widened.to_json(), "widened": "int64"}
                continue
            op.attrs["q"].pop("acc64")  # even int64 cannot hold it: refuse as before
        op.attrs["overflow"] = bound.to_json()
        if not bound.fits:
            where_in = f", channel {bound.channel}" if bound.channel is not None else ""
            kind = "int32" if bound.bits == 31 else "int64"
            problems.append(
                f"  #{idx} {op.name}: the {kind} {bound.stage}{where_in} can reach "
                f"[{bound.lo:,}, {bound.hi:,}], beyond [-2^{bound.bits}, 2^{bound.bits} - 1]"
            )
    if problems:
        raise EdgekitError(
            f"{len(problems)} layer(s) could overflow their int32 arithmetic:\n"
            + "\n".join(problems),
            where or graph.name,
            "the weights, biases or scales are too large for this layer's arithmetic (edgekit "
            "widens conv2d, depthwise and fully connected accumulators to int64, but not "
            "these); requantize the model (smaller scales or fewer inputs per output)",
        )
    return graph


def worst_case_input(graph: Graph, op: Op, channel: int, maximise: bool = True) -> np.ndarray:
    """One input window of a conv/depthwise/fc op that drives `channel` to its bound.

    Returned with the weight's tap layout ([KH, KW, IC] for conv, [KH, KW] for depthwise, [K]
    for fully connected); used by tests to show the proven bound is reached.
    """
    w = graph.tensor(op.inputs[1]).data
    assert w is not None
    x_lo, x_hi = _x_range(graph, op)
    if op.kind == "conv2d":
        taps = w[channel].astype(np.int64)
    elif op.kind == "depthwise_conv2d":
        taps = w[0, :, :, channel].astype(np.int64)
    else:
        taps = w[channel].astype(np.int64) + int(op.attrs["q"]["filter_offset"])
    up = taps > 0 if maximise else taps < 0
    return np.where(up, x_hi, x_lo).astype(np.dtype(graph.tensor(op.inputs[0]).dtype))
