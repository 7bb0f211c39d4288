"""Scalar RV32IM kernels: register-blocked INT8 convolutions and dense layers.

RV32IM has a 32-bit multiply but no multiply-accumulate and no packed SIMD, so a MAC costs at
least a MUL and an ADD, plus its loads. The kernels cut everything around that pair: each loaded
input value feeds several output channels and each loaded weight several pixels (3 x 4 or
1 x 8 accumulators in registers), the input offset is folded into the bias at build time, and
out-of-image taps read the input zero point (so they add exactly 0) instead of being tested.
Requantisation uses ek_rv_mbqm (csrc/edgekit_rvv.h), the same integers as ek_mbqm in fewer
instructions. docs/kernels-riscv.md describes layouts and measurements.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from codegen.kernels import Prepare, register
from edgekit.ir.graph import Graph, Op

FAMILY = "rv32"
INT32_LIMIT = (1 << 31) - 1


def conv_geometry(graph: Graph, op: Op) -> dict[str, Any]:
    """Shapes, strides and padding of a conv2d / depthwise_conv2d op, by name."""
    x = graph.tensor(op.inputs[0])
    w = graph.tensor(op.inputs[1])
    y = graph.tensor(op.outputs[0])
    n, ih, iw, ic = x.shape
    _, oh, ow, oc = y.shape
    sh, sw = op.attrs["stride"]
    dh, dw = op.attrs["dilation"]
    pt, pl = op.attrs["pad"]
    return {
        "N": n, "IH": ih, "IW": iw, "IC": ic, "OH": oh, "OW": ow, "OC": oc,
        "KH": w.shape[1], "KW": w.shape[2], "SH": sh, "SW": sw, "DH": dh, "DW": dw,
        "PT": pt, "PL": pl,
    }  # fmt: skip


def tap_sums(graph: Graph, op: Op) -> np.ndarray:
    """Per output channel, the sum of its weights over every tap (and input channel)."""
    w = graph.tensor(op.inputs[1]).data
    assert w is not None
    w64 = w.astype(np.int64)
    if op.kind == "depthwise_conv2d":
        return w64.reshape(-1, w.shape[-1]).sum(axis=0)
    return w64.reshape(w.shape[0], -1).sum(axis=1)


def fanin(graph: Graph, op: Op) -> int:
    """Products summed into one output: taps times input channels (taps for depthwise)."""
    w = graph.tensor(op.inputs[1])
    if op.kind == "depthwise_conv2d":
        return w.shape[1] * w.shape[2]
    return int(np.prod(w.shape[1:]))


def folded_conv_bias(graph: Graph, op: Op) -> np.ndarray | None:
    """bias + input_offset * sum(w) per output channel, or None if it could overflow int32.

    TFLM adds w * (x + input_offset) over the taps inside the image. A kernel that reads the
    zero point (x + input_offset == 0) for taps outside it adds w * x over all taps instead, and
    the missing input_offset * sum(w) is this constant. The int32 check also covers every
    partial sum: |x| <= 128 and |w| <= 127.
    """
    q = op.attrs["q"]
    bias = graph.tensor(q["bias"]).data
    assert bias is not None
    folded = bias.astype(np.int64) + int(q["input_offset"]) * tap_sums(graph, op)
    if int(np.abs(folded).max(initial=0)) + fanin(graph, op) * 128 * 128 > INT32_LIMIT:
        return None
    return folded.astype(np.int32)


def requant_arrays(
    graph: Graph, op: Op, channels: int, pad_to: int
) -> dict[str, np.ndarray | None]:
    """Per-channel multiplier, left and right shift (left None when no channel shifts left),
    padded with zeros to `pad_to` channels so blocked kernels never read past the end."""
    q = op.attrs["q"]
    if isinstance(q["multiplier"], str):
        mult = graph.tensor(q["multiplier"]).data
        shift = graph.tensor(q["shift"]).data
        assert mult is not None and shift is not None
        mult, shift = mult.astype(np.int64), shift.astype(np.int64)
    else:
        mult = np.full(channels, int(q["multiplier"]), dtype=np.int64)
        shift = np.full(channels, int(q["shift"]), dtype=np.int64)

    def padded(a: np.ndarray) -> np.ndarray:
        out = np.zeros(pad_to, dtype=np.int32)
        out[: a.size] = a
        return out

    left = np.maximum(shift, 0)
    return {
        "multiplier": padded(mult),
        "left": padded(left) if np.any(left > 0) else None,
        "right": padded(np.maximum(-shift, 0)),
    }


def interleave_rows(w: np.ndarray, block: int, dtype: Any = np.int8) -> np.ndarray:
    """[rows][K] -> [ceil(rows/block)][K][block], zero rows appended: one pointer walks a block."""
    rows, k = w.shape
    blocks = -(-rows // block)
    out = np.zeros((blocks * block, k), dtype=dtype)
    out[:rows] = w
    return np.ascontiguousarray(out.reshape(blocks, block, k).transpose(0, 2, 1))


def pad_channels(a: np.ndarray, pad_to: int) -> np.ndarray:
    out = np.zeros(pad_to, dtype=a.dtype)
    out[: a.size] = a
    return out


def key_ordered(prepare: Prepare) -> Prepare:
    """A prepare hook that leaves op.attrs["q"] ordered by key, as .ekir files store it.

    Constants are emitted in the order q names them, so a model generated again from its .ekir
    file gives the same weights header byte for byte.
    """

    def run(graph: Graph, op: Op) -> None:
        prepare(graph, op)
        q = op.attrs["q"]
        ordered = dict(sorted(q.items()))
        q.clear()
        q.update(ordered)

    return run


def add_consts(graph: Graph, op: Op, prefix: str, arrays: dict[str, np.ndarray | None]) -> None:
    """Add build-time constants and name them in op.attrs["q"] as `<prefix>_<role>`."""
    q = op.attrs["q"]
    for role, arr in arrays.items():
        key = f"{prefix}_{role}"
        if arr is None:
            q[key] = None
        else:
            q[key] = graph.add_const(f"{op.name}/{prefix}_{role}", arr)


# --- conv2d ------------------------------------------------------------------------------------

CONV_BLOCK = 4  # output channels per register block
CONV_PIXELS = 3  # pixels per register block
UNROLL = 1  # K steps per loop iteration (more: GCC's scheduler spills the accumulators)


def _conv_weights_2d(graph: Graph, op: Op) -> np.ndarray:
    w = graph.tensor(op.inputs[1]).data
    assert w is not None
    return w.reshape(w.shape[0], -1)


def _accepts_conv(graph: Graph, op: Op) -> bool:
    return folded_conv_bias(graph, op) is not None


def _accepts_pointwise(graph: Graph, op: Op) -> bool:
    g = conv_geometry(graph, op)
    return g["KH"] == g["KW"] == 1 and list(op.attrs["pad"]) == [0, 0] and _accepts_conv(graph, op)


def _prepare_conv(graph: Graph, op: Op) -> None:
    g = conv_geometry(graph, op)
    oc_pad = -(-g["OC"] // CONV_BLOCK) * CONV_BLOCK
    bias = folded_conv_bias(graph, op)
    assert bias is not None
    add_consts(
        graph,
        op,
        "rv",
        {
            "weights": interleave_rows(_conv_weights_2d(graph, op), CONV_BLOCK),
            "bias": pad_channels(bias, oc_pad),
            **requant_arrays(graph, op, g["OC"], oc_pad),
        },
    )
    op.attrs["q"].update(rv_pixels=CONV_PIXELS, rv_block=CONV_BLOCK, rv_unroll=UNROLL)
    if g["KH"] * g["KW"] > 1 or list(op.attrs["pad"]) != [0, 0]:
        # im2col rows of one pixel block; out-of-image taps hold the input zero point
        op.attrs["scratch_bytes"] = CONV_PIXELS * g["KH"] * g["KW"] * g["IC"]


# --- depthwise_conv2d --------------------------------------------------------------------------


def ring_geometry(g: dict[str, Any]) -> dict[str, int]:
    """Rows and padded width of the line buffer a depthwise kernel reads its taps from.

    Holding `rows` consecutive (zero-point padded) input rows covers every tap of one output row;
    `width` columns run from -PL to the rightmost column any output pixel reads.
    """
    rows = (g["KH"] - 1) * g["DH"] + 1
    width = max(g["PL"] + g["IW"], (g["OW"] - 1) * g["SW"] + (g["KW"] - 1) * g["DW"] + 1)
    return {"rows": rows, "width": width}


def _accepts_depthwise(graph: Graph, op: Op) -> bool:
    return folded_conv_bias(graph, op) is not None


def _prepare_depthwise(graph: Graph, op: Op) -> None:
    g = conv_geometry(graph, op)
    bias = folded_conv_bias(graph, op)
    assert bias is not None
    add_consts(
        graph,
        op,
        "rv",
        {"bias": bias, **requant_arrays(graph, op, g["OC"], g["OC"])},
    )
    ring = ring_geometry(g)
    op.attrs["scratch_bytes"] = ring["rows"] * ring["width"] * g["IC"]


# --- fully_connected ---------------------------------------------------------------------------


def fc_block(op: Op) -> int:
    """Units per register block: 8 for a single row (each input value feeds 8 units), 4 when
    two rows also share each weight load."""
    return 8 if op.attrs["q"]["batches"] == 1 else 4


def _prepare_fc(graph: Graph, op: Op) -> None:
    q = op.attrs["q"]
    w = graph.tensor(op.inputs[1]).data
    assert w is not None
    block = fc_block(op)
    u_pad = -(-q["units"] // block) * block
    bias = graph.tensor(q["bias"]).data
    assert bias is not None
    arrays: dict[str, np.ndarray | None] = {
        "weights": interleave_rows(w, block),
        "bias": pad_channels(bias.astype(np.int32), u_pad),
    }
    if q["per_channel"]:
        arrays.update(requant_arrays(graph, op, q["units"], u_pad))
    add_consts(graph, op, "rv", arrays)
    q.update(rv_block=block, rv_unroll=UNROLL)


register(
    FAMILY,
    "conv2d",
    "rv32/conv2d_1x1.c.j2",
    accepts=_accepts_pointwise,
    prepare=key_ordered(_prepare_conv),
)
register(
    FAMILY, "conv2d", "rv32/conv2d.c.j2", accepts=_accepts_conv, prepare=key_ordered(_prepare_conv)
)
register(
    FAMILY,
    "depthwise_conv2d",
    "rv32/depthwise_conv2d.c.j2",
    accepts=_accepts_depthwise,
    prepare=key_ordered(_prepare_depthwise),
)
register(FAMILY, "fully_connected", "rv32/fully_connected.c.j2", prepare=key_ordered(_prepare_fc))

# ADD/SUB: the DSP family's table kernel is plain C apart from ek_dsp_requant, whose portable
# twin (a 32 x 32 -> 64-bit multiply, MUL + MULH here) is still cheaper than the portable
# kernel's three ek_mbqm per element. dsp is imported at call time: codegen.kernels imports
# every family while one of them may still be loading.


def _add_accepts(graph: Graph, op: Op) -> bool:
    from codegen.families import dsp

    return dsp.add_accepts(graph, op)


def _add_prepare(graph: Graph, op: Op) -> None:
    from codegen.families import dsp

    dsp.add_prepare(graph, op)


for _kind in ("add", "sub"):
    register(FAMILY, _kind, "dsp/add_sub.c.j2", accepts=_add_accepts, prepare=_add_prepare)
