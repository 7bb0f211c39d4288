"""Arm Helium (MVE) kernels for int8 models on Cortex-M55/M85: convolutions, dense layers,
pooling and ADD/SUB.

Every variant here is bit-exact with the portable kernels (and so with TFLite Micro); what
changes is the order of the work and the layout of the constants. The prepare hooks do at build
time everything that does not depend on the input:

* weights are re-laid out for the vector loads: GEMM weights interleaved four output channels
  at a time in 16-byte steps, depthwise weights as one 16-lane vector of taps per channel;
* the input offset is folded into the bias (`bias + input_offset * sum(w)`), which is exact
  because every tap that falls in the padding is made to read the input zero point, so its
  `x + input_offset` is zero, as the reference's skipped tap;
* requantisation constants are split into vector-friendly left and (negated) right shifts and
  stored next to the weights they belong to, so a kernel walks everything with one pointer;
* the work buffer (padded input rows, im2col columns, depthwise channel planes) is sized and
  declared with op.attrs["scratch_bytes"], so the memory planner reserves it in the arena.

docs/kernels-mve.md describes the kernels and what their instructions are spent on.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from codegen.kernels import register
from edgekit.ir.graph import Graph, Op

REQUIRES = ["mve-i"]
GEMM_MAX_BYTES = 4080  # ek_mve_gemm_4x2 rewinds a pixel row with a 12-bit immediate
DW_PIXELS = 4  # output pixels per depthwise block: 4 accumulators + 3 weights + 1 input vector


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def _align(n: int, a: int = 16) -> int:
    return _ceil(n, a) * a


def _wrap_i32(values: np.ndarray) -> np.ndarray:
    """int64 -> int32 modulo 2^32: accumulators wrap, so a folded bias may too."""
    v = np.asarray(values, dtype=np.int64)
    return (((v + (1 << 31)) % (1 << 32)) - (1 << 31)).astype(np.int32)


def _pad_to(values: np.ndarray, n: int, fill: int = 0) -> np.ndarray:
    out = np.full(n, fill, dtype=values.dtype)
    out[: values.size] = values.reshape(-1)
    return out


def _const(graph: Graph, op: Op, role: str, data: np.ndarray) -> str:
    """Add a build-time constant and name it in op.attrs["q"] (it becomes c.<role> in C)."""
    name = graph.add_const(f"{op.name}/{role}", data)
    op.attrs["q"][role] = name
    return name


def _requant_arrays(mult: np.ndarray, shift: np.ndarray, n: int) -> dict[str, Any]:
    """Per-lane multiplier and split shifts, padded to `n` lanes (whole vectors), and flags."""
    mult = np.asarray(mult, dtype=np.int64).reshape(-1)
    shift = np.asarray(shift, dtype=np.int64).reshape(-1)
    left = np.maximum(shift, 0)
    right = np.minimum(shift, 0)
    return {
        "mve_mult": _pad_to(mult.astype(np.int32), n),
        # padded lanes shift right by one like the others, so `mve_all_right` stays true
        "mve_right": _pad_to(right.astype(np.int32), n, -1),
        "mve_left": _pad_to(left.astype(np.int32), n),
        "mve_any_left": bool(np.any(left > 0)),
        "mve_all_right": bool(np.all(right < 0)),
    }


def _record_array(bias: np.ndarray, mult: np.ndarray, shift: np.ndarray) -> tuple[np.ndarray, dict]:
    """[groups, vectors, 4] int32: bias, multiplier, right and (if used) left shifts per group."""
    groups = _ceil(bias.size, 4)
    rq = _requant_arrays(mult, shift, groups * 4)
    parts = [_pad_to(np.asarray(bias, dtype=np.int32), groups * 4), rq["mve_mult"], rq["mve_right"]]
    if rq["mve_any_left"]:
        parts.append(rq["mve_left"])
    return np.stack([part.reshape(groups, 4) for part in parts], axis=1), rq


def _records(graph: Graph, op: Op, bias: np.ndarray, mult: np.ndarray, shift: np.ndarray) -> None:
    """Per group of four output channels: bias, multiplier, right and (if used) left shifts.

    One int32 record of four-lane vectors per group (see ek_mve_rq in edgekit_mve.h), so a
    kernel walks all its requantisation constants with one pointer.
    """
    q = op.attrs["q"]
    records, rq = _record_array(bias, mult, shift)
    q["mve_any_left"], q["mve_all_right"] = rq["mve_any_left"], rq["mve_all_right"]
    _const(graph, op, "mve_records", records.reshape(-1))


def _conv_geometry(graph: Graph, op: Op) -> dict[str, int]:
    x = graph.tensor(op.inputs[0])
    y = graph.tensor(op.outputs[0])
    w = graph.tensor(op.inputs[1])
    _, ih, iw, _ = x.shape
    _, oh, ow, _ = y.shape
    kh, kw = w.shape[1], w.shape[2]
    sh, sw = op.attrs["stride"]
    dh, dw = op.attrs["dilation"]
    pt, pl = op.attrs["pad"]
    # columns/rows past the input that some tap reads: the bottom/right padding
    pr = max(0, (ow - 1) * sw - pl + (kw - 1) * dw - (iw - 1))
    pb = max(0, (oh - 1) * sh - pt + (kh - 1) * dh - (ih - 1))
    return {
        "kh": kh,
        "kw": kw,
        "pt": pt,
        "pl": pl,
        "pr": pr,
        "pb": pb,
        "span": (kh - 1) * dh + 1,  # input rows one output row reads: the ring's slot count
        "width": pl + iw + pr,  # padded row width in pixels
    }


def _ring(geo: dict[str, int], row_bytes: int, channels: int, q: dict[str, Any]) -> dict[str, int]:
    """What the templates need to keep the padded input rows (see templates/mve/_ring.j2)."""
    return {
        **geo,
        "row_bytes": row_bytes,
        "pl_bytes": geo["pl"] * channels,
        "zero_point": -int(q["input_offset"]),
    }


# --- CONV_2D as a GEMM ------------------------------------------------------------------------


def _is_pointwise(graph: Graph, op: Op) -> bool:
    w = graph.tensor(op.inputs[1])
    return w.shape[1] == 1 and w.shape[2] == 1 and list(op.attrs["pad"]) == [0, 0]


def _accepts_conv(graph: Graph, op: Op) -> bool:
    w = graph.tensor(op.inputs[1])
    return _align(w.shape[1] * w.shape[2] * w.shape[3]) <= GEMM_MAX_BYTES


def _accepts_pointwise(graph: Graph, op: Op) -> bool:
    return _is_pointwise(graph, op) and _accepts_conv(graph, op)


def _prepare_gemm(graph: Graph, op: Op, wk: np.ndarray, bias: np.ndarray) -> int:
    """The stream ek_mve_gemm_4x2 reads: per group of four output channels, the [rows, k] int8
    weights interleaved as [step][row][16] (zero-padded to whole steps), then the group's
    requantisation record as little-endian int32. Returns the number of steps."""
    q = op.attrs["q"]
    rows, k = wk.shape
    groups, steps = _ceil(rows, 4), _ceil(k, 16)
    padded = np.zeros((groups * 4, steps * 16), dtype=np.int8)
    padded[:rows, :k] = wk
    packed = padded.reshape(groups, 4, steps, 16).transpose(0, 2, 1, 3).reshape(groups, -1)
    records, rq = _record_array(bias, *_conv_requant(graph, op))
    record_bytes = records.astype("<i4").view(np.int8).reshape(groups, -1)
    _const(graph, op, "mve_weights", np.concatenate([packed, record_bytes], axis=1).reshape(-1))
    q["mve_any_left"], q["mve_all_right"] = rq["mve_any_left"], rq["mve_all_right"]
    q["mve_steps"], q["mve_tail"] = steps, k % 16
    return steps


def _prepare_conv(graph: Graph, op: Op) -> None:
    q = op.attrs["q"]
    w = graph.tensor(op.inputs[1])
    assert w.data is not None
    oc = w.shape[0]
    wk = w.data.reshape(oc, -1)
    k = wk.shape[1]
    bias = graph.tensor(q["bias"]).data
    assert bias is not None
    folded = bias.astype(np.int64) + int(q["input_offset"]) * wk.astype(np.int64).sum(axis=1)
    steps = _prepare_gemm(graph, op, wk, _wrap_i32(folded))
    if _is_pointwise(graph, op):
        return
    x = graph.tensor(op.inputs[0])
    geo = _conv_geometry(graph, op)
    row_bytes = _align(geo["width"] * x.shape[3])
    # a column is filled with whole-vector copies that may run 15 bytes past its k bytes
    col_bytes = steps * 16 + 16
    q["mve_ring"] = _ring(geo, row_bytes, x.shape[3], q)
    # [ring rows][two im2col columns], each part 16-byte aligned
    q["mve_col_offset"] = geo["span"] * row_bytes
    q["mve_k"] = k
    q["mve_col_bytes"] = col_bytes
    op.attrs["scratch_bytes"] = q["mve_col_offset"] + 2 * col_bytes


# --- DEPTHWISE_CONV_2D --------------------------------------------------------------------

GATHER_LANES = 16
GATHER_REACH = 256  # byte offsets of a gather are 8-bit
SCATTER_REACH = 1 << 16  # the plane loader scatters with 16-bit offsets, 8 planes at a time
DW_MAX_OUTPUTS_PER_GATHER = 3  # three weight vectors + offsets + data + three results = 8 q
# Scratch bytes a depthwise layer may spend beyond a ring to keep the whole image: it saves the
# per-line reload of each channel's constants (about 1% of KWS), but 8 KB here would grow the
# KWS arena from 21.6 KB to 28.6 KB, above TFLite Micro's 24.3 KB.
DW_WHOLE_IMAGE_EXTRA = 1024


def _dw_folded_bias(graph: Graph, op: Op) -> np.ndarray:
    """bias + input_offset * (sum of the channel's taps), wrapped to int32, per output channel."""
    q = op.attrs["q"]
    w = graph.tensor(op.inputs[1])
    assert w.data is not None
    _, kh, kw, oc = w.shape
    taps = w.data.reshape(kh * kw, oc).astype(np.int64)
    bias = graph.tensor(q["bias"]).data
    assert bias is not None
    return _wrap_i32(bias.astype(np.int64) + int(q["input_offset"]) * taps.sum(axis=0))


def _conv_requant(graph: Graph, op: Op) -> tuple[np.ndarray, np.ndarray]:
    q = op.attrs["q"]
    mult, shift = graph.tensor(q["multiplier"]).data, graph.tensor(q["shift"]).data
    assert mult is not None and shift is not None
    return mult, shift


def _dw_gather_plan(graph: Graph, op: Op) -> dict[str, Any] | None:
    """How the gather kernel runs this depthwise conv, or None if its taps do not fit a gather.

    Outputs are computed along a "line": the longer of the output's rows and columns, so the
    per-channel runs that share a weight vector are as long as possible. The other axis is the
    "cross" axis, whose kernel rows are the lines one output line reads.
    """
    x = graph.tensor(op.inputs[0])
    y = graph.tensor(op.outputs[0])
    geo = _conv_geometry(graph, op)
    _, ih, iw, ic = x.shape
    _, oh, ow, _ = y.shape
    sh, sw = op.attrs["stride"]
    dh, dw = op.attrs["dilation"]
    kh, kw = geo["kh"], geo["kw"]
    along_x = ow >= oh
    if along_x:  # lines are input rows
        run = {"out": ow, "s": sw, "d": dw, "k": kw, "pad": geo["pl"], "post": geo["pr"], "n": iw}
        cross = {"out": oh, "s": sh, "d": dh, "k": kh, "pad": geo["pt"], "n": ih}
    else:  # lines are input columns
        run = {"out": oh, "s": sh, "d": dh, "k": kh, "pad": geo["pt"], "post": geo["pb"], "n": ih}
        cross = {"out": ow, "s": sw, "d": dw, "k": kw, "pad": geo["pl"], "n": iw}
    span = (cross["k"] - 1) * cross["d"] + 1
    width = run["pad"] + run["n"] + run["post"]
    # tiny images keep every padded line (the channel loop then runs outside the line loop, so
    # a channel's constants are loaded once); others a ring of the lines one output reads
    all_lines = (cross["out"] - 1) * cross["s"] + span
    whole = ic * (all_lines - span) * width <= DW_WHOLE_IMAGE_EXTRA
    lines = all_lines if whole else span
    plane = _align(lines * width, 4)
    if 7 * plane >= SCATTER_REACH:
        return None
    for m in range(DW_MAX_OUTPUTS_PER_GATHER, 0, -1):
        if m > run["out"]:
            continue
        cols = sorted({j * run["s"] + k * run["d"] for j in range(m) for k in range(run["k"])})
        if cross["k"] * len(cols) > GATHER_LANES:
            continue
        if (span - 1) * width + cols[-1] >= GATHER_REACH:
            continue
        break
    else:
        return None
    return {
        "along_x": along_x,
        "m": m,
        "cols": cols,
        "run": run,
        "cross": cross,
        "lines": lines,
        "whole": whole,
        "width": width,
        "plane": plane,
        "channels": ic,
    }


def _accepts_dw_gather(graph: Graph, op: Op) -> bool:
    return _dw_gather_plan(graph, op) is not None


def _prepare_dw_gather(graph: Graph, op: Op) -> None:
    plan = _dw_gather_plan(graph, op)
    assert plan is not None
    q = op.attrs["q"]
    w = graph.tensor(op.inputs[1])
    assert w.data is not None
    _, kh, kw, oc = w.shape
    run, cross, cols, m = plan["run"], plan["cross"], plan["cols"], plan["m"]
    width = plan["width"]
    # lane (kc, col): cross-axis kernel row kc, window column col. A ring rotates its rows, so
    # there is one offset vector per position of the window's first row in the ring.
    lines = plan["lines"]
    lanes = [(kc, col) for kc in range(cross["k"]) for col in cols]
    rotations = 1 if plan["whole"] else lines
    offsets = np.zeros((rotations, GATHER_LANES), dtype=np.uint8)
    for r in range(rotations):
        for lane, (kc, col) in enumerate(lanes):
            offsets[r, lane] = (r + kc * cross["d"]) % lines * width + col
    _const(graph, op, "mve_offsets", offsets.reshape(-1))
    weights = np.zeros((oc, m, GATHER_LANES), dtype=np.int8)
    for lane, (kc, col) in enumerate(lanes):
        for j in range(m):
            kr, rem = divmod(col - j * run["s"], run["d"])
            if rem or not 0 <= kr < run["k"]:
                continue
            ky, kx = (kc, kr) if plan["along_x"] else (kr, kc)
            weights[:, j, lane] = w.data[0, ky, kx, :]
    rq = _requant_arrays(*_conv_requant(graph, op), oc)
    q["mve_any_left"], q["mve_all_right"] = rq["mve_any_left"], rq["mve_all_right"]
    # Output j of a window reads the same taps as output 0, run["s"] * j lanes further: when its
    # weight vector is exactly the first one shifted by that many bytes, the kernel shifts it in
    # a register (VSHLC) instead of reading it, and the record keeps only the first.
    shifted = np.zeros_like(weights)
    for j in range(m):
        k = j * run["s"]
        shifted[:, j, k:] = weights[:, 0, : GATHER_LANES - k]
    stored = 1 if np.array_equal(shifted, weights) and (m - 1) * run["s"] <= 4 else m
    plan["stored"] = stored
    # one record per output channel: its weight vector(s), then bias, multiplier and shifts, so a
    # single pointer walks everything a channel needs (four arrays would take four registers)
    records = np.zeros((oc, stored * 4 + 4), dtype=np.int32)
    records[:, : stored * 4] = weights[:, :stored].reshape(oc, -1).view("<i4")
    records[:, stored * 4] = _dw_folded_bias(graph, op)
    records[:, stored * 4 + 1] = rq["mve_mult"]
    records[:, stored * 4 + 2] = rq["mve_right"]
    records[:, stored * 4 + 3] = rq["mve_left"]
    _const(graph, op, "mve_records", records.reshape(-1))
    q["mve_plan"] = plan
    q["mve_zero_point"] = -int(q["input_offset"])
    # gathers past the last plane read at most a window plus four steps beyond it
    op.attrs["scratch_bytes"] = plan["channels"] * plan["plane"] + GATHER_REACH + 16 * run["s"]


def _prepare_depthwise(graph: Graph, op: Op) -> None:
    """The channel-lane fallback for kernels whose taps do not fit one gather."""
    q = op.attrs["q"]
    w = graph.tensor(op.inputs[1])
    assert w.data is not None
    _, kh, kw, oc = w.shape
    groups = _ceil(oc, 4)
    if oc % 4:
        padded = np.zeros((kh * kw, groups * 4), dtype=np.int8)
        padded[:, :oc] = w.data.reshape(kh * kw, oc)
        _const(graph, op, "mve_weights", padded.reshape(-1))
    _records(graph, op, _dw_folded_bias(graph, op), *_conv_requant(graph, op))
    geo = _conv_geometry(graph, op)
    # the ring holds rows already expanded to output channels (depth multiplier > 1), and the
    # last group's vector loads may read 3 bytes past a row, so one spare vector follows
    row_bytes = _align(geo["width"] * oc)
    q["mve_ring"] = _ring(geo, row_bytes, oc, q)
    q["mve_groups"] = groups
    q["mve_pixels"] = min(DW_PIXELS, graph.tensor(op.outputs[0]).shape[2])
    op.attrs["scratch_bytes"] = geo["span"] * row_bytes + 16


# --- FULLY_CONNECTED -----------------------------------------------------------------------


def _prepare_fc(graph: Graph, op: Op) -> None:
    q = op.attrs["q"]
    units = int(q["units"])
    if q["per_channel"]:
        mult, shift = graph.tensor(q["multiplier"]).data, graph.tensor(q["shift"]).data
        assert mult is not None and shift is not None
    else:
        mult = np.full(units, q["multiplier"], dtype=np.int32)
        shift = np.full(units, q["shift"], dtype=np.int32)
    bias = graph.tensor(q["bias"]).data
    assert bias is not None
    _records(graph, op, bias.astype(np.int32), mult, shift)


# --- pooling --------------------------------------------------------------------------------


def _prepare_avg_pool(graph: Graph, op: Op) -> None:
    c = graph.tensor(op.inputs[0]).shape[3]
    # one int32 sum per channel, then the scalar rounding division
    op.attrs["scratch_bytes"] = _align(c, 8) * 4


# --- elementwise ----------------------------------------------------------------------------


def _same_shapes(graph: Graph, op: Op) -> bool:
    """ADD/SUB without broadcasting: both inputs are walked in step with the output."""
    return op.attrs["q"].get("broadcast") is None


def _register() -> None:
    register(
        "mve",
        "conv2d",
        "mve/conv2d_1x1.c.j2",
        requires=REQUIRES,
        accepts=_accepts_pointwise,
        prepare=_prepare_conv,
    )
    register(
        "mve",
        "conv2d",
        "mve/conv2d.c.j2",
        requires=REQUIRES,
        accepts=_accepts_conv,
        prepare=_prepare_conv,
    )
    register(
        "mve",
        "depthwise_conv2d",
        "mve/depthwise_conv2d.c.j2",
        requires=REQUIRES,
        accepts=_accepts_dw_gather,
        prepare=_prepare_dw_gather,
    )
    register(
        "mve",
        "depthwise_conv2d",
        "mve/depthwise_conv2d_lanes.c.j2",
        requires=REQUIRES,
        prepare=_prepare_depthwise,
    )
    register(
        "mve",
        "fully_connected",
        "mve/fully_connected.c.j2",
        requires=REQUIRES,
        prepare=_prepare_fc,
    )
    register(
        "mve",
        "avg_pool2d",
        "mve/avg_pool2d.c.j2",
        requires=REQUIRES,
        prepare=_prepare_avg_pool,
    )
    register("mve", "max_pool2d", "mve/max_pool2d.c.j2", requires=REQUIRES)
    for kind in ("add", "sub"):
        register("mve", kind, "mve/add_sub.c.j2", requires=REQUIRES, accepts=_same_shapes)


_register()
