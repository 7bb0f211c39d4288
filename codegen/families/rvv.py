"""RISC-V Vector 1.0 INT8 kernels (VLEN >= 128; Zve32x is enough).

Convolutions and dense layers are outer products: a vector of up to 32 output channels (int32,
LMUL 8) accumulates `vwmacc.vx` of weights (re-laid out at build time so one unit-stride load
fetches a k-row of a channel block; int16, or int8 widened after the load where the weights are
reused too little to be worth twice the flash) times one int8 input value per pixel. Several
pixels (and, for single-row dense layers, two channel blocks) share every weight load. The input
offset is folded into the bias and out-of-image taps read the input zero point, as in the rv32
family. Layers with few output channels and wide rows vectorise over output pixels instead (one
strided load of int16 x + input_offset per tap, shared by three channels); depthwise layers
vectorise over channels or, with few channels, over pixels, from a line buffer of int16 rows.
A build-time estimate of instructions per MAC picks between the two. Add/sub and pooling are
vectorised too. Requantisation is vectorised exactly (csrc/edgekit_rvv.h); docs/kernels-riscv.md
has the details and measurements.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from codegen.families.rv32 import (
    conv_geometry,
    folded_conv_bias,
    interleave_rows,
    key_ordered,
    pad_channels,
    requant_arrays,
    ring_geometry,
)
from codegen.kernels import register
from edgekit.ir.graph import Graph, Op

FAMILY = "rvv"
# int32 lanes per register group at VLEN 128, the minimum these kernels assume (Zvl128b)
LMUL_OF_LANES = {4: "m1", 8: "m2", 16: "m4", 32: "m8"}
REGISTERS = 28  # of 32 vector registers for accumulators and weights; v0 and slack stay free
MAX_PIXELS = 8
ROW_LANES = 32  # pixels per vector in the row-vector conv (int32, LMUL 8)
ROW_GROUP = 3  # channels sharing each input load there: 3 x 8 accumulator registers
REQUANT = 16  # instructions to requantise and store one vector


def block_lanes(channels: int) -> int:
    """Output channels per vector block: the smallest group size holding them, at most 32."""
    for lanes in (4, 8, 16):
        if channels <= lanes:
            return lanes
    return 32


def choose_blocking(lanes: int, blocks: int, rows: int) -> tuple[int, int]:
    """(pixels P, channel blocks Q) computed per weight load, best estimated MACs/instruction.

    Per k step a group costs Q weight loads and pointer bumps (2Q), P scalar input loads and
    P*Q multiply-accumulates, plus about two instructions of loop overhead, and does P*Q*lanes
    MACs. Accumulators (P*Q groups) and weights (Q half-size groups) must fit the registers.
    """
    regs = max(1, lanes // 4)
    best = (1, 1)
    best_score = 0.0
    for q in range(1, min(blocks, 4) + 1):
        for p in range(1, min(rows, MAX_PIXELS) + 1):
            if p * q * regs + q * max(1, regs // 2) > REGISTERS:
                continue
            score = p * q * lanes / (2 * q + p + p * q + 2)
            if score > best_score + 1e-9:
                best, best_score = (p, q), score
    return best


def _requant(graph: Graph, op: Op, channels: int, pad_to: int) -> dict[str, np.ndarray | None]:
    arrays = requant_arrays(graph, op, channels, pad_to)
    right = arrays["right"]
    assert right is not None
    # ek_rvv_requant_*: -1 where the rounding shift needs the x < 0 correction
    adjust = np.where(right > 0, -1, 0).astype(np.int32)
    arrays["adjust"] = None if np.all(right[:channels] > 0) else adjust
    return arrays


WIDE_REUSE = 16  # pixel groups that must share a weight before it is stored as int16


def stores_wide(pixel_groups: int, filter_offset: int = 0) -> bool:
    """Whether a matmul layer keeps its weights as int16 in flash rather than int8.

    int16 weights save the `vsext` after every weight load (about 5% of a convolution's
    instructions) but double the layer's flash. That pays when each weight vector is loaded for
    many pixel groups; dense layers and late, small-image convolutions, which hold most of a
    model's weights, load each one a few times only. w + filter_offset needs int16 anyway.
    """
    return filter_offset != 0 or pixel_groups >= WIDE_REUSE


def _blocks(w2d: np.ndarray, lanes: int, wide: bool, offset: int = 0) -> np.ndarray:
    """[rows][K] -> [blocks][K][lanes] (+ offset), int16 or int8, zero-padded to whole blocks."""
    rows, k = w2d.shape
    blocks = -(-rows // lanes)
    out = np.zeros((blocks * lanes, k), dtype=np.int16 if wide else np.int8)
    out[:rows] = w2d.astype(np.int16) + offset
    return np.ascontiguousarray(out.reshape(blocks, lanes, k).transpose(0, 2, 1))


def _add(graph: Graph, op: Op, arrays: dict[str, np.ndarray | None]) -> None:
    q = op.attrs["q"]
    for role, arr in arrays.items():
        key = f"rvv_{role}"
        q[key] = None if arr is None else graph.add_const(f"{op.name}/rvv_{role}", arr)


def _matmul_attrs(channels: int, rows: int, filter_offset: int = 0) -> dict[str, Any]:
    lanes = block_lanes(channels)
    blocks = -(-channels // lanes)
    pixels, group = choose_blocking(lanes, channels // lanes or 1, rows)
    return {
        "rvv_wide": stores_wide(-(-rows // pixels), filter_offset),
        "rvv_lanes": lanes,
        "rvv_lmul": LMUL_OF_LANES[lanes],
        "rvv_blocks": blocks,
        "rvv_pixels": pixels,
        "rvv_group": group,
    }


# --- conv2d ------------------------------------------------------------------------------------


def channel_vector_cost(g: dict[str, Any]) -> float:
    """Estimated instructions per MAC of the channel-vector kernels (conv2d, conv2d_1x1)."""
    k = g["KH"] * g["KW"] * g["IC"]
    lanes = block_lanes(g["OC"])
    p, q = choose_blocking(lanes, g["OC"] // lanes or 1, g["N"] * g["OH"] * g["OW"])
    used = min(lanes, g["OC"])
    return (2 * q + p + p * q + 2) / (p * q * used) + REQUANT / (used * k)


def row_vector_cost(g: dict[str, Any]) -> float:
    """Estimated instructions per MAC of conv2d_rows: per tap a load and about two of loop
    and pointers, then two instructions per channel sharing it."""
    k = g["KH"] * g["KW"] * g["IC"]
    chunks = -(-g["OW"] // ROW_LANES)
    vl = g["OW"] / chunks
    q = min(ROW_GROUP, g["OC"])
    return (3 + 2 * q) / (q * vl) + REQUANT / (vl * k)


def _accepts_rows(graph: Graph, op: Op) -> bool:
    g = conv_geometry(graph, op)
    return row_vector_cost(g) < 0.9 * channel_vector_cost(g)


def _prepare_rows(graph: Graph, op: Op) -> None:
    g = conv_geometry(graph, op)
    w = graph.tensor(op.inputs[1]).data
    bias = graph.tensor(op.attrs["q"]["bias"]).data
    assert w is not None and bias is not None
    pad_to = -(-g["OC"] // ROW_GROUP) * ROW_GROUP
    _add(
        graph,
        op,
        {
            "weights": interleave_rows(w.reshape(w.shape[0], -1), ROW_GROUP),
            "bias": pad_channels(bias.astype(np.int32), pad_to),
            **_requant(graph, op, g["OC"], pad_to),
        },
    )
    # rvv/_conv.c.j2 reads the channel-vector settings too; here they describe one pixel vector
    op.attrs["q"].update(rvv_lanes=ROW_LANES, rvv_lmul="m8", rvv_pixels=1, rvv_group=1)
    op.attrs["q"]["rvv_row_group"] = ROW_GROUP
    ring = ring_geometry(g)
    # int16 line buffer: x + input_offset, 0 outside the image
    op.attrs["scratch_bytes"] = 2 * ring["rows"] * ring["width"] * g["IC"]


def _accepts_conv(graph: Graph, op: Op) -> bool:
    return folded_conv_bias(graph, op) is not None


def _accepts_pointwise(graph: Graph, op: Op) -> bool:
    g = conv_geometry(graph, op)
    return g["KH"] == g["KW"] == 1 and list(op.attrs["pad"]) == [0, 0] and _accepts_conv(graph, op)


def _prepare_conv(graph: Graph, op: Op) -> None:
    g = conv_geometry(graph, op)
    attrs = _matmul_attrs(g["OC"], g["N"] * g["OH"] * g["OW"])
    pad_to = attrs["rvv_blocks"] * attrs["rvv_lanes"]
    w = graph.tensor(op.inputs[1]).data
    bias = folded_conv_bias(graph, op)
    assert w is not None and bias is not None
    _add(
        graph,
        op,
        {
            "weights": _blocks(w.reshape(w.shape[0], -1), attrs["rvv_lanes"], attrs["rvv_wide"]),
            "bias": pad_channels(bias, pad_to),
            **_requant(graph, op, g["OC"], pad_to),
        },
    )
    op.attrs["q"].update(attrs)
    if g["KH"] * g["KW"] > 1 or list(op.attrs["pad"]) != [0, 0]:
        op.attrs["scratch_bytes"] = attrs["rvv_pixels"] * g["KH"] * g["KW"] * g["IC"]


# --- fully_connected ---------------------------------------------------------------------------


def _prepare_fc(graph: Graph, op: Op) -> None:
    q = op.attrs["q"]
    attrs = _matmul_attrs(q["units"], q["batches"], int(q["filter_offset"]))
    pad_to = attrs["rvv_blocks"] * attrs["rvv_lanes"]
    w = graph.tensor(op.inputs[1]).data
    bias = graph.tensor(q["bias"]).data
    assert w is not None and bias is not None
    _add(
        graph,
        op,
        {
            # (w + filter_offset) fits int16, so asymmetric weights cost nothing at run time
            "weights": _blocks(w, attrs["rvv_lanes"], attrs["rvv_wide"], int(q["filter_offset"])),
            "bias": pad_channels(bias.astype(np.int32), pad_to),
            **_requant(graph, op, q["units"], pad_to),
        },
    )
    q.update(attrs)


# --- depthwise_conv2d --------------------------------------------------------------------------


def _depthwise_costs(g: dict[str, Any]) -> tuple[float, float]:
    """Estimated instructions per MAC of the channel-vector and the row-vector depthwise kernels:
    per tap, two loads, their addresses and a vwmacc.vv over channels; or one strided load, its
    address, a scalar weight and a vwmacc.vx over pixels."""
    taps = g["KH"] * g["KW"]
    lanes = min(block_lanes(g["OC"]), g["OC"])
    chunks = -(-g["OW"] // ROW_LANES)
    vl = g["OW"] / chunks
    return (5 * taps + REQUANT) / (taps * lanes), (4 * taps + REQUANT + 3) / (taps * vl)


def _accepts_depthwise_rows(graph: Graph, op: Op) -> bool:
    channels, rows = _depthwise_costs(conv_geometry(graph, op))
    return rows < 0.9 * channels


def _prepare_depthwise(graph: Graph, op: Op) -> None:
    g = conv_geometry(graph, op)
    q = op.attrs["q"]
    lanes = block_lanes(g["OC"])
    pad_to = -(-g["OC"] // lanes) * lanes
    w = graph.tensor(op.inputs[1]).data
    bias = graph.tensor(q["bias"]).data
    assert w is not None and bias is not None
    taps = w.reshape(-1, g["OC"]).astype(np.int16)
    padded = np.zeros((taps.shape[0], pad_to), dtype=np.int16)
    padded[:, : g["OC"]] = taps
    _add(
        graph,
        op,
        {
            "weights": padded,
            "bias": pad_channels(bias.astype(np.int32), pad_to),
            **_requant(graph, op, g["OC"], pad_to),
        },
    )
    q.update(rvv_lanes=lanes, rvv_lmul=LMUL_OF_LANES[lanes], rvv_wstride=pad_to)
    ring = ring_geometry(g)
    # int16 line buffer in output-channel order (depth multiplier expanded), x + input_offset
    op.attrs["scratch_bytes"] = 2 * ring["rows"] * ring["width"] * g["OC"]


register(
    FAMILY,
    "conv2d",
    "rvv/conv2d_rows.c.j2",
    requires=["rvv"],
    accepts=_accepts_rows,
    prepare=key_ordered(_prepare_rows),
)
register(
    FAMILY,
    "conv2d",
    "rvv/conv2d_1x1.c.j2",
    requires=["rvv"],
    accepts=_accepts_pointwise,
    prepare=key_ordered(_prepare_conv),
)
register(
    FAMILY,
    "conv2d",
    "rvv/conv2d.c.j2",
    requires=["rvv"],
    accepts=_accepts_conv,
    prepare=key_ordered(_prepare_conv),
)
register(
    FAMILY,
    "depthwise_conv2d",
    "rvv/depthwise_conv2d_rows.c.j2",
    requires=["rvv"],
    accepts=_accepts_depthwise_rows,
    prepare=key_ordered(_prepare_depthwise),
)
register(
    FAMILY,
    "depthwise_conv2d",
    "rvv/depthwise_conv2d.c.j2",
    requires=["rvv"],
    prepare=key_ordered(_prepare_depthwise),
)
register(
    FAMILY,
    "fully_connected",
    "rvv/fully_connected.c.j2",
    requires=["rvv"],
    prepare=key_ordered(_prepare_fc),
)


def _accepts_elementwise(graph: Graph, op: Op) -> bool:
    """Same-shape int8 operands that live in the arena (no broadcasting, no constant input)."""
    if op.attrs["q"].get("broadcast") is not None:
        return False
    tensors = [graph.tensor(t) for t in (*op.inputs[:2], op.outputs[0])]
    return all(t.dtype == "int8" and not t.is_const for t in tensors)


for _kind in ("add", "sub"):
    register(FAMILY, _kind, "rvv/add_sub.c.j2", requires=["rvv"], accepts=_accepts_elementwise)
for _kind in ("avg_pool2d", "max_pool2d"):
    register(FAMILY, _kind, "rvv/pool2d.c.j2", requires=["rvv"])
