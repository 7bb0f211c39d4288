"""Arm DSP (SIMD32) max and average pooling: which layers the template in dsp/pool2d.c.j2 takes.

Pooling needs no build-time constants; the kernel walks four int8 channels per word (see the
template and docs/kernels-dsp.md). Both are bit-identical to the portable kernel: max is exact
by construction, and the average's int16 lane sums are exact while a window has at most 256 taps.
"""

from __future__ import annotations

from codegen.kernels import register
from edgekit.ir.graph import Graph, Op

# 256 * -128 = -32768 and 256 * 127 = 32512 still fit an int16 lane of SXTAB16.
AVG_MAX_TAPS = 256


def _window_counts(size: int, out: int, k: int, s: int, pad: int) -> list[int]:
    """In-image taps of each output position along one axis, as the kernels clip them."""
    counts = []
    for o in range(out):
        i0 = o * s - pad
        counts.append(min(size - i0, k) - max(-i0, 0))
    return counts


def _int8_io(graph: Graph, op: Op) -> bool:
    x, y = graph.tensor(op.inputs[0]), graph.tensor(op.outputs[0])
    return x.dtype == "int8" and y.dtype == "int8" and len(x.shape) == 4 and len(y.shape) == 4


def _avg_accepts(graph: Graph, op: Op) -> bool:
    if not _int8_io(graph, op):
        return False
    xs, ys = graph.tensor(op.inputs[0]).shape, graph.tensor(op.outputs[0]).shape
    (fh, fw), (sh, sw), (pt, pl) = op.attrs["filter"], op.attrs["stride"], op.attrs["pad"]
    rows = _window_counts(xs[1], ys[1], fh, sh, pt)
    cols = _window_counts(xs[2], ys[2], fw, sw, pl)
    # every window holds a tap (the kernel divides by the count) and no more than fit int16 lanes
    return min(rows) >= 1 and min(cols) >= 1 and max(rows) * max(cols) <= AVG_MAX_TAPS


def _avg_prepare(graph: Graph, op: Op) -> None:
    """Record the window's tap count when it is the same for every output (no clipped windows).

    A power-of-two count then divides by a rounding shift instead of a division.
    """
    xs, ys = graph.tensor(op.inputs[0]).shape, graph.tensor(op.outputs[0]).shape
    (fh, fw), (sh, sw), (pt, pl) = op.attrs["filter"], op.attrs["stride"], op.attrs["pad"]
    rows = set(_window_counts(xs[1], ys[1], fh, sh, pt))
    cols = set(_window_counts(xs[2], ys[2], fw, sw, pl))
    count = rows.pop() * cols.pop() if len(rows) == len(cols) == 1 else 0
    shift = count.bit_length() - 1 if count > 0 and count & (count - 1) == 0 else None
    op.attrs["q"]["dsp_pool_shift"] = shift


register(
    "dsp",
    "avg_pool2d",
    "dsp/pool2d.c.j2",
    requires={"dsp"},
    accepts=_avg_accepts,
    prepare=_avg_prepare,
)
register("dsp", "max_pool2d", "dsp/pool2d.c.j2", requires={"dsp"}, accepts=_int8_io)
