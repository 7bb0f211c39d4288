"""Prove, layer by layer, that no int32 intermediate of the portable int8 kernels can overflow.

The bound of each layer is computed from its actual constants (weights, folded biases,
multipliers) over the worst-case input: every input element anywhere in its storage range. For
the reductions it is exact, not just safe: with int8 inputs the offset input x - zero_point
always ranges over an interval containing 0, so every partial sum of the accumulation lies
between the two extremes below, and the extremes are reached by setting each input to -128 or
127 according to the sign of its weight (`worst_case_input`).

  conv2d, depthwise   acc = bias + sum w * (x + input_offset)
  fully_connected     acc = folded_bias + sum (w + filter_offset) * x
  add, sub            ((x + offset) << left_shift) rescaled per input, then summed
  mul                 (x1 + offset1) * (x2 + offset2)
  mean                zero_sum + sum x
  avg_pool2d          sum x over the window
  softmax             sum of exp terms in Q12, each at most 2^19; it must stay below 2^28, or
                      the output's rounding shift (bits_over_unit + 23) passes 31
  requantisation      acc << left_shift inside ek_mbqm, then + output_offset

The result is kept in `op.attrs["overflow"]` (`max_abs`: the largest magnitude any of the layer's
int32 intermediates can take; `headroom_bits`: how many times that could double before leaving
int32; `stage` and `channel` where it occurs).

An int8 conv2d, depthwise or fully connected layer whose int32 arithmetic could overflow is
widened instead: its accumulator becomes int64 and its requantization TFLite's 64-bit one (the
16x8 rule, `acc64`), which is proven in turn against the 2^47 input that requantization accepts,
and `overflow.widened` says so. Such a layer runs the portable kernel. TFLite Micro has no
result to compare it with there (its int32 sum would overflow); the widened layer computes the
exact sum. An int8 or 16x8 mul whose product, shifted left for requantization, could leave
int32 is widened the same way (`acc64`): the requantization runs on the int64 product
(ek_mbqm_wide, equal to ek_mbqm wherever that is defined) and clamps in int64. A softmax whose
exp sum could reach 2^28 is split instead (`sum_cap`): once a row's sum reaches 2^28 (512.0),
each output is a value below 2^31 divided by at least 2^32, which rounds to 0, so the C stops
adding there and writes -128 for the row (TFLM asserts, or shifts by 32 or more, on such a
row). add and sub cannot overflow within what lowering accepts (input multipliers at most 1/2,
output multiplier below one); they are still bounded. Any other layer that could overflow
(mean, avg_pool2d, a requantizing quantize or relu) is refused with a clean EdgekitError
naming it, rather than generating code that would be wrong, or undefined behaviour in C.
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
#: a softmax row sum at or above this makes the output's rounding shift exceed 31 (Q12 sum:
#: 2^28 is 512.0, bits_over_unit = 9, shift 9 + 23 = 32)
SOFTMAX_SUM_LIMIT = 1 << 28
_EXP_ONE_Q12 = 1 << 19  # exp(0) = 1.0 as one rounded Q12 term


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


def _term_range(graph: Graph, op: Op, k: int) -> tuple[int, int]:
    """The range of x_k + input{k}_offset over every stored value of input k (1-based)."""
    info = np.iinfo(np.dtype(graph.tensor(op.inputs[k - 1]).dtype))
    off = int(op.attrs["q"][f"input{k}_offset"])
    return int(info.min) + off, int(info.max) + off


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
            if acc.fits and _wide_shift_ok(shift[c]):
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
        lo, hi = _term_range(graph, op, k)
        v = Bound(lo << q["left_shift"], hi << q["left_shift"], f"input{k}_shifted")
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
    (a_lo, a_hi), (b_lo, b_hi) = _term_range(graph, op, 1), _term_range(graph, op, 2)
    ends = [a * b for a in (a_lo, a_hi) for b in (b_lo, b_hi)]
    prod = Bound(min(ends), max(ends), "product")
    if not prod.fits:
        return [prod]
    mult, shift, offset = q["output_multiplier"], q["output_shift"], q["output_offset"]
    if not q.get("acc64"):
        return [prod, *_requant(prod, mult, shift, offset, None)]
    # ek_mbqm_wide: the int32 product times the multiplier (< 2^31) fits int64; so must the
    # result, which the C clamps in int64 (bounded by 2^62 for margin). Python's integers make
    # multiply_by_quantized_multiplier the exact widened value.
    ends = [fp.multiply_by_quantized_multiplier(v, mult, shift) + offset
            for v in (prod.lo, prod.hi)]  # fmt: skip
    return [prod, Bound(min(ends), max(ends), "requant_output", bits=62)]


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
    # each exp term is at most exp(0) = 1.0 in Q12, i.e. 2^19, reached by the row maximum. The
    # sum must stay below 2^28, not just 2^31: from 2^28 on the output's rounding shift is 32+
    q = op.attrs["q"]
    if q.get("sum_cap"):
        # the C stops adding at the first sum >= 2^28, so it is at most 2^28 - 1 + 2^19 (int32)
        return [Bound(0, min(q["depth"] * _EXP_ONE_Q12, SOFTMAX_SUM_LIMIT - 1 + _EXP_ONE_Q12),
                      "exp_sum")]
    return [Bound(0, q["depth"] * _EXP_ONE_Q12, "exp_sum", bits=28)]


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


#: TFLite's int64 requantization (ek_mbqm64) is defined for these shifts: 15 - shift must be a
#: right shift of 8 to 46 bits
WIDE_SHIFT_RANGE = (-31, 7)


def _wide_shift_ok(shift: int) -> bool:
    return WIDE_SHIFT_RANGE[0] <= shift <= WIDE_SHIFT_RANGE[1]


def _wide_shift_problem(graph: Graph, op: Op) -> str | None:
    """Why the int64 requantization cannot serve this reduction, or None if it can."""
    if op.kind not in ("conv2d", "depthwise_conv2d", "fully_connected"):
        return None
    q = op.attrs["q"]
    n = np.asarray(graph.tensor(q["shift"]).data).size if isinstance(q["shift"], str) else 1
    for c, s in enumerate(_const(graph, q, "shift", n)):
        if not _wide_shift_ok(s):
            lo, hi = WIDE_SHIFT_RANGE
            return (f"requantization shift {s} (channel {c}) is outside [{lo}, {hi}], the range "
                    "of the 64-bit requantization (an output scale far smaller than input x "
                    "filter scale)")
    return None


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
_WIDENABLE = frozenset({"conv2d", "depthwise_conv2d", "fully_connected", "mul"})


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
        if op.attrs["q"].get("acc64"):
            reason = _wide_shift_problem(graph, op)
            if reason is not None:  # a 16x8 layer from the file itself
                problems.append(f"  #{idx} {op.name}: {reason}")
                continue
        unwidenable = None
        if not bound.fits and op.kind in _WIDENABLE and not op.attrs["q"].get("acc64"):
            unwidenable = _wide_shift_problem(graph, op)
        if not bound.fits and op.kind in _WIDENABLE and not op.attrs["q"].get("acc64") \
                and unwidenable is None:
            op.attrs["q"]["acc64"] = True
            widened = layer_bound(graph, op)
            if widened is not None and widened.fits:
                op.attrs["overflow"] = {**widened.to_json(), "widened": "int64"}
                continue
            op.attrs["q"].pop("acc64")  # even int64 cannot hold it: refuse as before
        if not bound.fits and op.kind == "softmax" and not op.attrs["q"].get("sum_cap"):
            op.attrs["q"]["sum_cap"] = SOFTMAX_SUM_LIMIT
            split = layer_bound(graph, op)
            assert split is not None and split.fits  # 2^28 - 1 + 2^19 < 2^31 for any depth
            op.attrs["overflow"] = {**split.to_json(), "widened": "capped_sum"}
            continue
        op.attrs["overflow"] = bound.to_json()
        if not bound.fits:
            where_in = f", channel {bound.channel}" if bound.channel is not None else ""
            kind = "int32" if bound.bits == 31 else "int64"
            problems.append(
                f"  #{idx} {op.name}: the {kind} {bound.stage}{where_in} can reach "
                f"[{bound.lo:,}, {bound.hi:,}], beyond [-2^{bound.bits}, 2^{bound.bits} - 1]"
                + (f"; not widened to int64: {unwidenable}" if unwidenable else "")
            )
    if problems:
        raise EdgekitError(
            f"{len(problems)} layer(s) could overflow their int32 arithmetic:\n"
            + "\n".join(problems),
            where or graph.name,
            "the weights, biases or scales are too large for this layer's arithmetic (edgekit "
            "widens conv2d, depthwise, fully connected and mul to int64 and splits softmax "
            "sums, but not these); requantize the model (smaller scales or fewer inputs per "
            "output)",
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
