"""RISC-V Vector 1.0 + Zvfh float kernels (clang intrinsics, VLEN 128).

Convolutions and dense layers are outer products, in one of two orientations, chosen per layer
by an instruction estimate:

* channels in lanes (`rvv_matmul.c.j2`): a vector of output channels (a register group of
  LMUL 1..8) starts at the bias and takes one `vfmacc.vf` per reduction index k, with the input
  value as the scalar. P pixels (rows) and Q channel blocks share every weight load and every
  scalar load. Good for many channels.
* pixels in lanes (`rvv_pixels.c.j2`): a vector of up to 64 (binary16) output pixels of one
  channel starts at the bias and takes one `vfmacc.vf` per k, with the weight as the scalar and
  the input column loaded with one strided load shared by Q = 3 channels. Good for few channels
  and many pixels (a 16-channel layer fills only 16 lanes in the other orientation).

Either way each lane is one output accumulating its own reduction in order: the contract's
sequential fused sum, independent of the vector length. Windowed convolutions gather im2col rows
(out-of-image taps as +0) into a scratch; 1x1 convolutions and dense layers read rows in place.
With channels in lanes and a small input (MAX_PADDED_INPUT), the input is copied once into a
zero-padded image instead and every window is read in place, one filter row after the other:
the gather costs the same in both precisions and was most of a layer with one input channel.
With pixels in lanes, R output rows share a vector and read each input column from a zero-padded
band of the input rows under them: one strided load for R = 1 (VWW's first conv, 48 pixels per
row), one indexed load with a build-time offset table for R > 1 (IC's 32-pixel rows, two per
FP16 vector), when the estimate in _maybe_pixel_rows beats gathering im2col rows.
Depthwise convolutions vectorise over channels with `vfmacc.vv`, P neighbouring pixels sharing
each tap's weight vector. Pooling vectorises over channels: binary32 sums (`vfwadd.wv` widens
binary16 exactly), one `vfdiv`, one `vfncvt` to binary16; `vfmax` for max pooling.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from codegen.families.fp16_common import (
    FAMILY,
    blocked_weights,
    blocking,
    is_float,
    padded,
    precision,
)
from edgekit.ir.graph import Graph, Op

VLEN = 128  # bits: the target's guaranteed minimum (Zvl128b); LMUL choices are based on it
REGISTERS = 32
REQUIRES = ["rvv", "zvfh"]
PIXEL_CHANNELS = 3  # accumulators of the pixel orientation at LMUL 8, next to one input column
MAX_PIXEL_SCRATCH = 48 * 1024  # bytes of im2col rows the pixel orientation may gather
PIXEL_ADVANTAGE = 0.95  # take pixels in lanes only when cheaper by more than the model's noise
# Instruction estimates, fitted to QEMU counts of the MLPerf Tiny layers: per im2col row and per
# filter row of the gather, per k of a tile beyond its loads and multiply-adds, and per tile
# (accumulator set-up, clamp and stores)
GATHER_ROW, GATHER_KY = 30, 20
PER_K_CHANNELS, PER_K_PIXELS = 3, 2
PER_TILE = 5
# Largest zero-padded copy of the input (bytes of arena) that channel lanes may read windows from
# in place instead of gathering im2col rows: the gather costs the same in FP16 and FP32 and
# dominated layers with few input channels (KWS's first conv: K = 40, one channel).
MAX_PADDED_INPUT = 4096
# Pixels in lanes along one output row read each input column with one strided load from a
# zero-padded band of KH input rows (no im2col), when the estimate says it beats gathering rows:
# per im2col row gathered, per band row copied (and per 128 bytes of it), per band.
GATHER_ROW_NOW, GATHER_KY_NOW = 25, 8
BAND_ROW, BAND_CHUNK, BAND = 2, 7, 10
MAX_BAND = 16 * 1024


def lmul_for(op: Op, channels: int) -> tuple[int, int]:
    """(lanes, LMUL): the smallest register group that holds `channels`, at most LMUL 8."""
    per_register = VLEN // (16 if precision(op) == "fp16" else 32)
    for lmul in (1, 2, 4, 8):
        if channels <= per_register * lmul:
            return per_register * lmul, lmul
    return per_register * 8, 8


def _add(graph: Graph, op: Op, arrays: dict[str, np.ndarray]) -> None:
    q = op.attrs["q"]
    for role, arr in arrays.items():
        q[f"rvv_{role}"] = graph.add_const(f"{op.name}/rvv_{role}", arr)


def _channel_plan(op: Op, channels: int, rows: int, k: int) -> tuple[dict[str, Any], int]:
    """Channels in lanes: the plan and its estimated instructions."""
    lanes, lmul = lmul_for(op, channels)
    blocks = -(-channels // lanes)
    p, q = blocking(lanes, REGISTERS // lmul, blocks, rows, max_q=2)
    per_tile = k * (q + p + p * q + PER_K_CHANNELS) + 3 * p * q + PER_TILE
    cost = -(-rows // p) * -(-blocks // q) * per_tile
    plan = {"rvv_lanes": lanes, "rvv_lmul": lmul, "rvv_blocks": blocks, "rvv_p": p, "rvv_q": q}
    return plan, cost


def _pixel_plan(op: Op, channels: int, rows: int, k: int) -> tuple[dict[str, Any], int]:
    """Pixels in lanes at LMUL 8: the plan and its estimated instructions."""
    lanes = VLEN // (16 if precision(op) == "fp16" else 32) * 8
    q = min(PIXEL_CHANNELS, channels)
    groups = -(-channels // q)
    cost = -(-rows // lanes) * groups * (k * (1 + 2 * q + PER_K_PIXELS) + 3 * q + PER_TILE)
    plan = {"rvv_lanes": lanes, "rvv_lmul": 8, "rvv_q": q, "rvv_groups": groups, "rvv_px": True}
    return plan, cost


def _pixel_weights(w2d: np.ndarray, bias: np.ndarray, q: int) -> dict[str, np.ndarray]:
    """Weights [groups][k][q] (the q weights of one k are adjacent scalars) and padded biases."""
    channels, k = w2d.shape
    groups = -(-channels // q)
    wq = np.zeros((groups * q, k), dtype=w2d.dtype)
    wq[:channels] = w2d
    wpx = np.ascontiguousarray(wq.reshape(groups, q, k).transpose(0, 2, 1))
    return {"wpx": wpx, "bpx": padded(bias, groups * q)}


def _gather_cost(graph: Graph, op: Op, rows: int) -> int:
    """Estimated instructions of gathering every im2col row once (address arithmetic, then a
    copy and zero fills per filter row)."""
    if op.kind != "conv2d":
        return 0
    return rows * (GATHER_ROW + GATHER_KY * graph.tensor(op.inputs[1]).shape[1])


def _matmul_plan(
    graph: Graph, op: Op, w2d: np.ndarray, rows: int, row_bytes: int, chan_gathers: bool
) -> None:
    """Pick the orientation with fewer estimated instructions and add its constants.

    `row_bytes` is the size of one im2col row when pixel lanes would gather rows (0 when they
    read them in place), `chan_gathers` whether channel lanes would. The pixel orientation
    gathers a whole vector of rows, so it is only taken when that scratch stays small.
    """
    channels, k = w2d.shape
    bias = graph.tensor(op.attrs["q"]["bias"]).data
    assert bias is not None
    gather = _gather_cost(graph, op, rows)
    chan, chan_cost = _channel_plan(op, channels, rows, k)
    pix, pix_cost = _pixel_plan(op, channels, rows, k)
    chan_cost += gather if chan_gathers else 0
    pix_cost += gather if row_bytes else 0
    qd = op.attrs["q"]
    if pix_cost < PIXEL_ADVANTAGE * chan_cost and pix["rvv_lanes"] * row_bytes <= MAX_PIXEL_SCRATCH:
        _add(graph, op, _pixel_weights(w2d, bias, pix["rvv_q"]))
        qd.update(pix)
        if row_bytes:
            op.attrs["scratch_bytes"] = pix["rvv_lanes"] * row_bytes
        return
    lanes, blocks = chan["rvv_lanes"], chan["rvv_blocks"]
    weights = blocked_weights(w2d, lanes)
    _add(graph, op, {"weights": weights, "bias": padded(bias, blocks * lanes)})
    qd.update(chan)
    if chan_gathers:
        op.attrs["scratch_bytes"] = (
            chan["rvv_p"]
            * graph.tensor(op.inputs[1]).size
            // channels
            * (2 if precision(op) == "fp16" else 4)
        )


def _in_place(graph: Graph, op: Op) -> bool:
    """A 1x1, unpadded, stride-1 convolution reads its rows straight from the input."""
    w = graph.tensor(op.inputs[1])
    return (
        w.shape[1] == w.shape[2] == 1
        and list(op.attrs["pad"]) == [0, 0]
        and list(op.attrs["stride"]) == [1, 1]
    )


def _pointwise(graph: Graph, op: Op) -> bool:
    w = graph.tensor(op.inputs[1])
    return w.shape[1] == w.shape[2] == 1 and list(op.attrs["pad"]) == [0, 0]


def _prepare_conv(graph: Graph, op: Op) -> None:
    w = graph.tensor(op.inputs[1]).data
    y = graph.tensor(op.outputs[0])
    assert w is not None
    esize = 2 if precision(op) == "fp16" else 4
    rows = y.size // y.shape[3]
    w2d = w.reshape(w.shape[0], -1)
    # channel lanes read strided 1x1 rows in place too; pixel lanes need one stride per column
    gather = not _in_place(graph, op)
    pointwise = _pointwise(graph, op)
    _matmul_plan(graph, op, w2d, rows, w[0].size * esize if gather else 0, not pointwise)
    q = op.attrs["q"]
    q["rvv_im2col"] = not pointwise or (bool(q.get("rvv_px")) and gather)
    if not q["rvv_im2col"]:
        op.attrs.pop("scratch_bytes", None)
    elif q.get("rvv_px") and int(op.attrs["dilation"][1]) == 1:
        _maybe_pixel_rows(graph, op, esize)
    elif not q.get("rvv_px") and int(op.attrs["dilation"][1]) == 1:
        padded = _padded_input(graph, op)
        n, ph, pw, ic = padded
        if n * ph * pw * ic * esize <= MAX_PADDED_INPUT:
            q["rvv_im2col"] = False
            q["rvv_direct"] = {"PH": ph, "PW": pw}
            op.attrs["scratch_bytes"] = n * ph * pw * ic * esize


def _maybe_pixel_rows(graph: Graph, op: Op, esize: int) -> None:
    """Switch a gathering pixel-lane conv to output-row vectors over a padded band if cheaper.

    R output rows share a vector when R * OW fits: the input columns then come from an indexed
    load (vluxei16, byte offsets from a build-time table) instead of a strided one, and the
    index vector takes a register group, so only two channels share it (q = 2).
    """
    q = op.attrs["q"]
    n, _, pw, ic = _padded_input(graph, op)
    _, ih, iw, _ = graph.tensor(op.inputs[0]).shape
    _, oh, ow, oc = graph.tensor(op.outputs[0]).shape
    _, kh, kw, _ = graph.tensor(op.inputs[1]).shape
    (sh, sw), (dh, _) = op.attrs["stride"], op.attrs["dilation"]
    k = kh * kw * ic
    lanes, qn = q["rvv_lanes"], q["rvv_q"]

    def per_vector(qq: int) -> int:
        return -(-oc // qq) * (k * (3 + 2 * qq) + 3 * qq + PER_TILE + 3 * kh)

    def band_cost(band_rows: int) -> int:
        chunks = -(-band_rows * pw * ic * esize // 128)
        return BAND + band_rows * (BAND_ROW + BAND_CHUNK * -(-iw * ic * esize // 128)) + 2 * chunks

    rows = n * oh * ow
    best = -(-rows // lanes) * per_vector(qn) + rows * (GATHER_ROW_NOW + GATHER_KY_NOW * kh)
    choice = None
    r_max = max(1, min(lanes // ow, oh)) if ow <= lanes else 1
    for r in range(1, r_max + 1):
        band_rows = (r - 1) * sh + (kh - 1) * dh + 1
        if band_rows * pw * ic * esize > MAX_BAND:
            break
        qq = qn if r == 1 else min(2, qn)
        cost = n * -(-oh // r) * (band_cost(band_rows) + -(-ow // lanes) * per_vector(qq))
        if cost < best:
            best, choice = cost, (r, band_rows, qq)
    if choice is None:
        return
    r, band_rows, qq = choice
    q["rvv_im2col"] = False
    q["rvv_prow"] = {"PW": pw, "R": r, "BR": band_rows}
    op.attrs["scratch_bytes"] = band_rows * pw * ic * esize
    if r > 1:
        offsets = [((i // ow) * sh * pw + (i % ow) * sw) * ic * esize for i in range(r * ow)]
        assert max(offsets) < 1 << 15  # the band is at most MAX_BAND bytes
        q["rvv_band_index"] = graph.add_const(
            f"{op.name}/rvv_band_offsets", np.array(offsets, dtype=np.int16)
        )
    if qq != qn:
        w = graph.tensor(op.inputs[1]).data
        bias = graph.tensor(q["bias"]).data
        assert w is not None and bias is not None
        for role in ("wpx", "bpx"):
            graph.tensors.pop(q[f"rvv_{role}"])
        _add(graph, op, _pixel_weights(w.reshape(oc, -1), bias, qq))
        q.update(rvv_q=qq, rvv_groups=-(-oc // qq))


def _padded_input(graph: Graph, op: Op) -> tuple[int, int, int, int]:
    """(N, PH, PW, IC): the input with zeros around it so that every window lies inside."""
    n, ih, iw, ic = graph.tensor(op.inputs[0]).shape
    _, oh, ow, _ = graph.tensor(op.outputs[0]).shape
    _, kh, kw, _ = graph.tensor(op.inputs[1]).shape
    (sh, sw), (dh, dw), (pt, pl) = op.attrs["stride"], op.attrs["dilation"], op.attrs["pad"]
    ph = max(pt + ih, (oh - 1) * sh + (kh - 1) * dh + 1)
    pw = max(pl + iw, (ow - 1) * sw + (kw - 1) * dw + 1)
    return n, ph, pw, ic


def _prepare_fc(graph: Graph, op: Op) -> None:
    w = graph.tensor(op.inputs[1]).data
    assert w is not None
    _matmul_plan(graph, op, w, op.attrs["q"]["batches"], 0, False)


def _prepare_depthwise(graph: Graph, op: Op) -> None:
    y = graph.tensor(op.outputs[0])
    lanes, lmul = lmul_for(op, y.shape[3])
    groups = REGISTERS // lmul
    # P accumulators, one weight group and one input group in flight
    p = max(1, min(4, groups - 2, y.shape[2]))
    op.attrs["q"].update(rvv_lanes=lanes, rvv_lmul=lmul, rvv_p=p)


def _accepts_depthwise(graph: Graph, op: Op) -> bool:
    return is_float(graph, op) and int(op.attrs.get("depth_multiplier", 1)) == 1


# rvv_matmul.c.j2 renders the orientation the prepare hook chose
MATMUL = "fp16/rvv_matmul.c.j2"


def register_variants() -> None:
    # imported here: codegen.kernels imports every family while it loads
    from codegen.kernels import register

    register(FAMILY, "conv2d", MATMUL, REQUIRES, accepts=is_float, prepare=_prepare_conv)
    register(FAMILY, "fully_connected", MATMUL, REQUIRES, accepts=is_float, prepare=_prepare_fc)
    for kind in ("avg_pool2d", "max_pool2d"):
        register(FAMILY, kind, "fp16/rvv_pool.c.j2", REQUIRES, accepts=is_float)
    register(
        FAMILY,
        "depthwise_conv2d",
        "fp16/rvv_depthwise.c.j2",
        REQUIRES,
        accepts=_accepts_depthwise,
        prepare=_prepare_depthwise,
    )
