"""Cross-layer weight-range equalisation (Nagel et al., "Data-Free Quantization", 2019).

For two consecutive layers a -> b where a's output channel i feeds only b's input channel i,
and a's activation is none or ReLU (positively homogeneous: relu(x / s) = relu(x) / s for s > 0),
dividing a's output channel i by s_i and multiplying b's input channel i by s_i leaves the float
function unchanged. With r1_i the range of a's weights for output i and r2_i that of b's weights
for input i, s_i = sqrt(r1_i / r2_i) makes both ranges sqrt(r1_i r2_i): no channel is left with
weights far narrower than its neighbours', which per-tensor quantization (weights, and the
activation between the layers) would round away.

Pairs handled: conv2d, depthwise_conv2d (depth multiplier 1) and fully_connected, in any
combination where a's output tensor is b's input and nothing else reads it. The folded BatchNorm
statistics of a (`meta.bn_stats`, used by data-free ranges) are scaled with it. A few passes
over the chain let the scales settle.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgekit.ir.graph import Graph, Op

PASSES = 4
# Scaling a's output channel by 1/s also scales that activation channel, whose range is shared by
# all channels once quantized per tensor; a near-dead channel (tiny weights, a large bias) would
# ask for a huge 1/s and blow that range up. The bias counts as a weight in r1 for that reason
# (the paper's bias absorption, in its simplest form), and s stays within a factor of 16.
S_MIN, S_MAX = 1.0 / 16, 16.0


def _out_axis(op: Op) -> int:
    return 3 if op.kind == "depthwise_conv2d" else 0


def _in_axis(op: Op) -> int:
    return {"conv2d": 3, "depthwise_conv2d": 3, "fully_connected": 1}[op.kind]


def _ranges(w: np.ndarray, axis: int) -> np.ndarray:
    moved = np.moveaxis(np.abs(w.astype(np.float64)), axis, 0)
    return moved.reshape(moved.shape[0], -1).max(axis=1)


def _pairs(g: Graph) -> list[tuple[Op, Op]]:
    linear = {"conv2d", "depthwise_conv2d", "fully_connected"}
    users = g.consumers()
    pairs = []
    for b in g.ops:
        if b.kind not in linear or not b.inputs:
            continue
        a = next((op for op in g.ops if op.outputs and op.outputs[0] == b.inputs[0]), None)
        if a is None or a.kind not in linear or b.inputs[0] in g.outputs:
            continue
        if a.attrs.get("activation", "none") not in ("none", "relu"):
            continue
        if len(users.get(a.outputs[0], [])) != 1:
            continue
        if any(op.kind == "depthwise_conv2d" and int(op.attrs.get("depth_multiplier", 1)) != 1
               for op in (a, b)):
            continue
        wa, wb = g.tensor(a.inputs[1]), g.tensor(b.inputs[1])
        if wa.data is None or wb.data is None:
            continue
        if wa.shape[_out_axis(a)] != wb.shape[_in_axis(b)]:
            continue  # a flatten between them mixes channels into positions
        if sum(1 for op in g.ops for n in op.inputs if n in (a.inputs[1], b.inputs[1])) != 2:
            continue  # shared weights: scaling one use would change the other
        pairs.append((a, b))
    return pairs


def equalize(g: Graph) -> list[dict[str, Any]]:
    """Equalise in place (a float graph); what was done, per pair, for the report."""
    pairs = _pairs(g)
    spread: dict[tuple[str, str], tuple[float, float]] = {}
    for _ in range(PASSES):
        for a, b in pairs:
            wa, wb = g.tensor(a.inputs[1]), g.tensor(b.inputs[1])
            assert wa.data is not None and wb.data is not None
            r1, r2 = _ranges(wa.data, _out_axis(a)), _ranges(wb.data, _in_axis(b))
            if len(a.inputs) > 2 and a.inputs[2]:
                ba = g.tensor(a.inputs[2]).data
                assert ba is not None
                r1 = np.maximum(r1, np.abs(ba.astype(np.float64)).reshape(-1))
            live = (r1 > 0) & (r2 > 0)
            s = np.ones_like(r1)
            s[live] = np.sqrt(r1[live] / r2[live])
            s = np.clip(s, S_MIN, S_MAX)
            before = spread.get((a.name, b.name), (_spread(r1), _spread(r2)))
            shape_a = [1] * wa.data.ndim
            shape_a[_out_axis(a)] = -1
            shape_b = [1] * wb.data.ndim
            shape_b[_in_axis(b)] = -1
            wa.data = (wa.data / s.reshape(shape_a)).astype(np.float32)
            wb.data = (wb.data * s.reshape(shape_b)).astype(np.float32)
            if len(a.inputs) > 2 and a.inputs[2]:
                bias = g.tensor(a.inputs[2])
                assert bias.data is not None
                bias.data = (bias.data / s.reshape(bias.data.shape)).astype(np.float32)
            stats = g.meta.get("bn_stats", {}).get(a.name)
            if stats:
                stats["mean"] = (np.asarray(stats["mean"]) / s).tolist()
                stats["std"] = (np.asarray(stats["std"]) / s).tolist()
            spread[(a.name, b.name)] = before
    done = []
    for a, b in pairs:
        wa, wb = g.tensor(a.inputs[1]), g.tensor(b.inputs[1])
        assert wa.data is not None and wb.data is not None
        after = (_spread(_ranges(wa.data, _out_axis(a))), _spread(_ranges(wb.data, _in_axis(b))))
        before = spread[(a.name, b.name)]
        done.append({"pair": [a.name, b.name],
                     "channel_range_spread_before": [round(v, 2) for v in before],
                     "channel_range_spread_after": [round(v, 2) for v in after]})
    return done


def _spread(r: np.ndarray) -> float:
    """max/min of the per-channel weight ranges (1 = perfectly equal)."""
    live = r[r > 0]
    return float(live.max() / live.min()) if live.size else 1.0
