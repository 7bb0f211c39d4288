"""Arm DSP (Armv7E-M SIMD32) kernel variants: build-time layouts and their registration.

The kernels multiply int16 pairs with SMLAD, two multiply-accumulates per instruction. Everything
that can be decided from the shapes is decided here, at build time: weights are widened to int16
and stored in the order the kernel reads them (so the loops never permute or sign-extend a
weight), requantisation constants are folded into one 64-bit rounding term per channel, and the
templates receive plain numbers (loop counts, offsets, unroll factors). docs/kernels-dsp.md
describes the layouts; csrc/edgekit_dsp.h the primitives and their portable twins.

Every variant is bit-identical to the portable kernel of the same op: sums are reordered but
wrap the same way, and the requantisation shortcut is used only where it is provably exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from codegen.kernels import register
from edgekit.ir import fixedpoint as fp
from edgekit.ir.graph import Graph, Op

# Order of the four int8 of a loaded word after SXTB16 (bytes 0, 2) and SXTB16 ROR 8 (1, 3).
_GROUP_ORDER = (0, 2, 1, 3)
# Rough executed instructions per unit of work, only used to choose between column layouts.
_COST_WORD_GROUP = 5.0  # load, rotate, 2 x SXTAB16, store pair (per 4 elements)
_COST_ELEMENT = 4.0  # load byte, add, store halfword, loop (per element)
_COST_MAC = 0.75  # per multiply-accumulate in the 2x2 SMLAD block, loads included
# conv2d: SMLAD steps (4 int16 of K) unrolled completely up to this many, else by CONV_UNROLL.
# LDRD offsets (at most 1020 bytes) bound the complete unroll: 8 + 16 * steps + 24 <= 1020.
CONV_UNROLL_FULL = 60
CONV_UNROLL = 16
# Largest depthwise plane buffer for several output rows per pass (bytes of arena).
DW_SCRATCH_BUDGET = 8192


def _i32(values: np.ndarray | list[int]) -> np.ndarray:
    """Python ints in [-2^31, 2^32) to int32 with two's-complement wrap of the upper half."""
    return (np.asarray(values, dtype=np.int64) & 0xFFFFFFFF).astype(np.uint32).view(np.int32)


def pack_pairs(w16: np.ndarray) -> np.ndarray:
    """Rows of an even number of int16 values -> int32 words (lane 0 = even element)."""
    w = w16.astype(np.int64)
    return _i32((w[..., 0::2] & 0xFFFF) | (w[..., 1::2] << 16))


def pack16(lane0: int, lane1: int) -> int:
    """One int16x2 word as the C source spells it (a signed 32-bit literal)."""
    return int(_i32([(lane0 & 0xFFFF) | ((lane1 & 0xFFFF) << 16)])[0])


# --- requantisation ---------------------------------------------------------------------------


def requant_rows(
    multipliers: np.ndarray, shifts: np.ndarray, offsets: np.ndarray, acc_bounds: np.ndarray
) -> np.ndarray | None:
    """Per-channel (m, c, e) rows for ek_dsp_requant, or None where it would not be exact.

    The kernels accumulate 2 * acc, so |2 * acc| must stay below 2^31. ek_dsp_requant needs a
    non-negative multiplier and a right shift e >= 1; a zero multiplier gives the offset
    whatever the shift, so it gets e = 1. x + (x >> 31) + c must not overflow either, where the
    rounded product x is at most |acc| + 1 in size.
    """
    rows = []
    for m, s, off, bound in zip(
        multipliers.tolist(), shifts.tolist(), offsets.tolist(), acc_bounds.tolist(), strict=True
    ):
        m, s, off, bound = int(m), int(s), int(off), int(bound)
        if m < 0 or 2 * bound >= 1 << 31:
            return None
        e = 1 if m == 0 else -s
        if not 1 <= e <= 31:
            return None
        # |x| <= bound + 1; once that is below 2^(e-1) every shift from there on rounds x to 0,
        # so the smallest such shift gives the same results with a constant c that fits
        e = min(e, (bound + 1).bit_length() + 1)
        c = (1 << (e - 1)) + off * (1 << e)
        if bound + 2 + abs(c) >= 1 << 31:
            return None
        rows.append([m, c, e])
    return np.array(rows, dtype=np.int32).reshape(-1, 3)


def requant_reference(acc: int, row: list[int]) -> int:
    """Python twin of ek_dsp_requant(2 * acc, m, c, e), for tests."""
    m, c, e = (int(v) for v in row)
    x = c + ((2 * acc * m + (1 << 31)) >> 32)
    return (x + (-1 if acc < 0 else 0)) >> e


def _acc_bounds(bias: np.ndarray, w: np.ndarray, max_input: int) -> np.ndarray:
    """|accumulator| bound per output channel: |bias| + max|input| * sum |w|, capped at 2^31."""
    wsum = np.abs(w.reshape(w.shape[0], -1).astype(np.int64)).sum(axis=1)
    bound = np.abs(bias.astype(np.int64)) + max_input * wsum
    return np.minimum(bound, 1 << 31)


def _channel_params(graph: Graph, q: dict[str, Any], channels: int) -> tuple[np.ndarray, ...]:
    def arr(key: str) -> np.ndarray:
        v = q[key]
        if isinstance(v, str):
            data = graph.tensor(v).data
            assert data is not None
            return data.astype(np.int64).reshape(-1)
        return np.full(channels, int(v), dtype=np.int64)

    return arr("multiplier"), arr("shift")


def _prepare_requant(graph: Graph, op: Op, w: np.ndarray, max_input: int) -> bool:
    """Add the ek_dsp_requant table and the doubled bias to op.attrs["q"].

    Returns whether the fast path applies (then the kernel must accumulate with doubled
    weights); otherwise the template calls ek_mbqm on plain accumulators, which reads
    per-channel multiplier and shift arrays.
    """
    q = op.attrs["q"]
    bias = graph.tensor(q["bias"]).data
    assert bias is not None
    channels = w.shape[0]
    mult, shift = _channel_params(graph, q, channels)
    out_off = int(q["output_offset"])
    # A channel whose weights are all zero outputs a constant. Converters leave such dead
    # channels with biases near 2^30, which would not survive doubling; give them bias 0 and
    # a zero multiplier whose offset term is the constant.
    dead = ~np.any(w.reshape(channels, -1), axis=1)
    bias_dsp = np.where(dead, 0, bias.astype(np.int64))
    const_out = np.array(
        [
            fp.multiply_by_quantized_multiplier(int(b), int(m), int(s)) + out_off
            for b, m, s in zip(bias.tolist(), mult.tolist(), shift.tolist(), strict=True)
        ]
    )
    rows = requant_rows(
        np.where(dead, 0, mult),
        shift,
        np.where(dead, const_out, out_off),
        _acc_bounds(bias_dsp, w, max_input),
    )
    q["dsp_fast_requant"] = rows is not None
    if rows is not None:
        q["dsp_requant"] = graph.add_const(f"{op.name}/dsp_requant_m_c_e", rows.reshape(-1))
        q["dsp_bias"] = graph.add_const(f"{op.name}/dsp_bias_x2", (2 * bias_dsp).astype(np.int32))
    else:
        q["dsp_bias"] = q["bias"]
        if not isinstance(q["multiplier"], str):
            q["multiplier"] = graph.add_const(f"{op.name}/dsp_multiplier", mult.astype(np.int32))
            q["shift"] = graph.add_const(f"{op.name}/dsp_shift", shift.astype(np.int32))
    return rows is not None


# --- conv2d: im2col columns of int16 and 2x2 SMLAD blocks --------------------------------------


@dataclass(frozen=True)
class ColumnLayout:
    """How one output pixel's receptive field is laid out as int16 in the im2col column.

    mode "rows": one segment per kernel row (the KW * IC input bytes are contiguous);
    mode "taps": one segment per tap (dilated rows are not contiguous);
    mode "natural": element by element in the weights' own order, for tiny segments.
    A segment's full groups of 4 are stored in SXTB16 order (0, 2, 1, 3), its tail in order,
    padded to whole words. The column is padded with zeros to a multiple of 4 elements.
    """

    mode: str
    seg_len: int  # input elements per segment
    groups: int  # whole 4-element groups per segment
    tail: int  # elements after the groups
    seg_words: int  # int16x2 words per segment
    n_seg: int
    k: int  # KH * KW * IC
    kp: int  # padded column length (int16 elements)

    def positions(self) -> np.ndarray:
        """perm[p] = the weight-order element stored at column position p, or -1 (zero)."""
        perm = np.full(self.kp, -1, dtype=np.int64)
        if self.mode == "natural":
            perm[: self.k] = np.arange(self.k)
            return perm
        for s in range(self.n_seg):
            base_in, base_out = s * self.seg_len, s * self.seg_words * 2
            for g in range(self.groups):
                for i, src in enumerate(_GROUP_ORDER):
                    perm[base_out + 4 * g + i] = base_in + 4 * g + src
            for t in range(self.tail):
                perm[base_out + 4 * self.groups + t] = base_in + 4 * self.groups + t
        return perm


def _round_up(n: int, m: int) -> int:
    return (n + m - 1) // m * m


def column_layout(kh: int, kw: int, ic: int, dw: int, oc: int) -> ColumnLayout:
    k = kh * kw * ic
    options = []
    seg_len, n_seg = (kw * ic, kh) if dw == 1 else (ic, kh * kw)
    g, t = divmod(seg_len, 4)
    seg_words = 2 * g + (t + 1) // 2
    kp = _round_up(n_seg * seg_words * 2, 4)
    cost = n_seg * (g * _COST_WORD_GROUP + t * _COST_ELEMENT + 2) + _COST_MAC * oc * kp
    options.append(
        (cost, ColumnLayout("rows" if dw == 1 else "taps", seg_len, g, t, seg_words, n_seg, k, kp))
    )
    kp_nat = _round_up(k, 4)
    cost_nat = k * _COST_ELEMENT + kh * kw * 3 + _COST_MAC * oc * kp_nat
    options.append((cost_nat, ColumnLayout("natural", k, 0, 0, kp_nat // 2, 1, k, kp_nat)))
    return min(options, key=lambda o: o[0])[1]


def interleave_pairs(words: np.ndarray) -> np.ndarray:
    """[OC, n] words -> pairs of channels interleaved word by word, an odd channel last."""
    oc, n = words.shape
    pairs = words[: oc - oc % 2].reshape(oc // 2, 2, n).transpose(0, 2, 1).reshape(-1)
    return np.concatenate([pairs, words[oc - oc % 2 :].reshape(-1)]).astype(np.int32)


def conv_stream(words: np.ndarray, bias: np.ndarray, rq: np.ndarray | None) -> np.ndarray:
    """[OC, n] weight words -> the conv kernel's single stream of int32 words.

    Per pair of output channels (an odd last channel alone): their biases, their weight words
    interleaved word by word, then with ek_dsp_requant their (m, c, e) rows. The kernel walks it
    with one pointer, so the biases and constants cost no extra pointer registers.
    """
    oc = words.shape[0]
    rows = np.zeros((oc, 0), np.int64) if rq is None else rq.reshape(oc, 3).astype(np.int64)
    parts = []
    for c0 in range(0, oc, 2):
        n = min(2, oc - c0)
        parts += [
            bias[c0 : c0 + n].astype(np.int64),
            words[c0 : c0 + n].T.reshape(-1).astype(np.int64),
            rows[c0 : c0 + n].reshape(-1),
        ]
    return np.concatenate(parts).astype(np.int32)


def _conv_accepts(graph: Graph, op: Op) -> bool:
    x, w = graph.tensor(op.inputs[0]), graph.tensor(op.inputs[1])
    q = op.attrs.get("q", {})
    return (
        w.data is not None
        and len(w.shape) == 4
        and len(x.shape) == 4
        and w.shape[3] == x.shape[3]
        and isinstance(q.get("multiplier"), str)
    )


def _conv_prepare(graph: Graph, op: Op) -> None:
    x, w, y = (graph.tensor(t) for t in (op.inputs[0], op.inputs[1], op.outputs[0]))
    assert w.data is not None
    oc, kh, kw, ic = w.shape
    dw = int(op.attrs["dilation"][1])
    layout = column_layout(kh, kw, ic, dw, oc)
    perm = layout.positions()
    w_nat = w.data.reshape(oc, -1).astype(np.int64)
    w_col = np.where(perm >= 0, w_nat[:, np.maximum(perm, 0)], 0)
    q = op.attrs["q"]
    fast = _prepare_requant(graph, op, w.data, 255)
    bias = graph.tensor(q["dsp_bias"]).data
    rq = graph.tensor(q["dsp_requant"]).data if fast else None
    assert bias is not None
    q["dsp_weights"] = graph.add_const(
        f"{op.name}/dsp_stream",
        conv_stream(pack_pairs((2 if fast else 1) * w_col), bias, rq),
    )
    # the bias (and requantisation rows) now live in the stream
    q.pop("dsp_bias")
    q.pop("dsp_requant", None)
    q["dsp_layout"] = {
        "mode": layout.mode,
        "seg_len": layout.seg_len,
        "groups": layout.groups,
        "tail": layout.tail,
        "seg_words": layout.seg_words,
        "n_seg": layout.n_seg,
        "kp": layout.kp,
        "border": _conv_needs_border(op, x.shape, y.shape, kh, kw),
        # steps of 4 int16: unrolled completely up to unroll_full, else by unroll
        "unroll_full": CONV_UNROLL_FULL,
        "unroll": CONV_UNROLL,
        "offset_pair": pack16(
            int(op.attrs["q"]["input_offset"]), int(op.attrs["q"]["input_offset"])
        ),
    }
    op.attrs["scratch_bytes"] = 2 * layout.kp * 2


def _conv_needs_border(op: Op, xs: tuple[int, ...], ys: tuple[int, ...], kh: int, kw: int) -> bool:
    """Whether some tap of some output pixel falls outside the input image."""
    (sh, sw), (dh, dw), (pt, pl) = op.attrs["stride"], op.attrs["dilation"], op.attrs["pad"]
    bottom = (ys[1] - 1) * sh - pt + (kh - 1) * dh
    right = (ys[2] - 1) * sw - pl + (kw - 1) * dw
    return bool(pt > 0 or pl > 0 or bottom >= xs[1] or right >= xs[2])


register(
    "dsp",
    "conv2d",
    "dsp/conv2d.c.j2",
    requires={"dsp"},
    accepts=_conv_accepts,
    prepare=_conv_prepare,
)


# --- fully_connected: the input row widened once, 4 units per pass ------------------------------


def interleave_units(words: np.ndarray) -> np.ndarray:
    """[units, n] words -> groups of 4 units interleaved word by word, then a pair, then one."""
    units = words.shape[0]
    parts, n = [], 0
    for size in (4, 2, 1):
        count = (units - n) // size * size if size == 4 else size * ((units - n) >= size)
        if count:
            block = words[n : n + count].reshape(count // size, size, -1).transpose(0, 2, 1)
            parts.append(block.reshape(-1))
            n += count
    return np.concatenate(parts).astype(np.int32)


def _fc_accepts(graph: Graph, op: Op) -> bool:
    q = op.attrs.get("q", {})
    w = graph.tensor(op.inputs[1])
    # int8 models have symmetric weights; an asymmetric filter stays with the portable kernel
    return w.data is not None and len(w.shape) == 2 and q.get("filter_offset", 0) == 0


def _fc_prepare(graph: Graph, op: Op) -> None:
    w = graph.tensor(op.inputs[1])
    assert w.data is not None
    units, depth = w.shape
    q = op.attrs["q"]
    # the offset is folded into the bias: accumulators see raw int8 inputs
    fast = _prepare_requant(graph, op, w.data, 128)
    layout = ColumnLayout("rows", depth, depth // 4, depth % 4, 0, 1, depth, _round_up(depth, 4))
    perm = layout.positions()
    w_nat = w.data.astype(np.int64)
    w_row = np.where(perm >= 0, w_nat[:, np.maximum(perm, 0)], 0) * (2 if fast else 1)
    q["dsp_weights"] = graph.add_const(
        f"{op.name}/dsp_weights_int16x2", interleave_units(pack_pairs(w_row))
    )
    q["dsp_layout"] = {"kp": layout.kp}
    q["dsp_requant_scalar"] = None
    if fast:
        rows = graph.tensor(q["dsp_requant"]).data
        assert rows is not None
        rows = rows.reshape(-1, 3)
        if np.all(rows == rows[0]):
            q["dsp_requant_scalar"] = [int(v) for v in rows[0]]
    op.attrs["scratch_bytes"] = layout.kp * 2


register(
    "dsp",
    "fully_connected",
    "dsp/fully_connected.c.j2",
    requires={"dsp"},
    accepts=_fc_accepts,
    prepare=_fc_prepare,
)


# --- depthwise_conv2d: int16 planes per channel, two taps per SMLAD -----------------------------


def depthwise_row_words(w_row: np.ndarray, sw: int) -> list[int]:
    """Weight words of one kernel row of one channel (see the depthwise template).

    U_j = (w[2j], w[2j+1]) multiply the plane words at x + 2j of output x; missing taps are 0.
    With stride 1 (and KW > 1) the row is U_0..U_(n-1), V_1..V_m with V_j = (w[2j-1], w[2j]),
    n = KW // 2 and m = n for odd KW, n - 1 for even: the pair x + 1 reads the same words one
    tap later, and the half words at the two ends are taken from U_0 and from V_n or U_(n-1).
    """
    kw = len(w_row)

    def tap(i: int) -> int:
        return int(w_row[i]) if 0 <= i < kw else 0

    if sw == 1 and kw > 1:
        n = kw // 2
        u = [pack16(tap(2 * j), tap(2 * j + 1)) for j in range(n)]
        return u + [pack16(tap(2 * j - 1), tap(2 * j)) for j in range(1, n + kw % 2)]
    return [pack16(tap(2 * j), tap(2 * j + 1)) for j in range((kw + 1) // 2)]


def _dw_accepts(graph: Graph, op: Op) -> bool:
    w = graph.tensor(op.inputs[1])
    # adjacent taps must be adjacent inputs for SMLAD pairs
    return w.data is not None and len(w.shape) == 4 and int(op.attrs["dilation"][1]) == 1


def _dw_prepare(graph: Graph, op: Op) -> None:
    x, w, y = (graph.tensor(t) for t in (op.inputs[0], op.inputs[1], op.outputs[0]))
    assert w.data is not None
    _, kh, kw, oc = w.shape
    ic, ow = x.shape[3], y.shape[2]
    sw = int(op.attrs["stride"][1])
    pl = int(op.attrs["pad"][1])
    q = op.attrs["q"]
    w_oc = w.data.reshape(kh, kw, oc).transpose(2, 0, 1)  # [oc, ky, kx]
    fast = _prepare_requant(graph, op, w_oc, 255)
    rows = [
        depthwise_row_words((2 if fast else 1) * w_oc[c, ky].astype(np.int64), sw)
        for c in range(oc)
        for ky in range(kh)
    ]
    wpr = len(rows[0])
    # int16x2 words of input one output pair reads per kernel row, from x on
    data_words = kw // 2 + 1 if sw == 1 else (kw + 1) // 2 + 1
    # the last int16 any load touches, from the plane start
    last = (ow - 1) * sw + 2 * ((kw + 1) // 2) - 1
    if ow >= 2:
        last = max(last, (ow - 2) * sw + 2 * data_words - 1)
    wp = _round_up(max(last + 1, pl + x.shape[2]), 2)
    # per channel: accumulator start (the bias), ek_dsp_requant's m, c, e, then the weight
    # words of its KH rows; the kernel walks this one stream with one pointer
    if fast:
        table = np.concatenate(
            [
                graph.tensor(q["dsp_bias"]).data.reshape(-1, 1),
                graph.tensor(q["dsp_requant"]).data.reshape(-1, 3),
            ],
            axis=1,
        )
    else:
        bias = graph.tensor(q["bias"]).data
        table = np.concatenate([bias.reshape(-1, 1), np.zeros((oc, 3), np.int64)], axis=1)
    words = np.array(rows, dtype=np.int64).reshape(oc, kh * wpr)
    q["dsp_weights"] = graph.add_const(
        f"{op.name}/dsp_stream",
        np.concatenate([table.astype(np.int64), words], axis=1).astype(np.int32).reshape(-1),
    )
    q.pop("dsp_requant", None)
    q.pop("dsp_bias")
    # Output rows per pass: with R rows, (R - 1) * SH + KH input rows are widened for R output
    # rows instead of KH for each, at the price of a larger scratch buffer.
    sh, dh = int(op.attrs["stride"][0]), int(op.attrs["dilation"][0])
    rows_per_pass = 1
    for r in (4, 2):
        if dh == 1 and y.shape[1] >= r and ic * ((r - 1) * sh + kh) * wp * 2 <= DW_SCRATCH_BUDGET:
            rows_per_pass = r
            break
    plane_rows = (rows_per_pass - 1) * sh + kh
    q["dsp_layout"] = {
        "wp": wp,
        "wpr": wpr,
        "data_words": data_words,
        "rows_per_pass": rows_per_pass,
        "plane_rows": plane_rows,
        # LDRD reaches 1020 bytes from the row pointer
        "pairs": sw <= 2 and (kh - 1) * wp * 2 + 4 * data_words <= 1020,
        # four outputs per pass (two pairs sharing the weights, requantisation constants and,
        # with stride 1, input words); the second pair reads sw words further
        "quads": sw <= 2 and (kh - 1) * wp * 2 + 4 * (data_words + sw) <= 1020,
        "offset_pair": pack16(int(q["input_offset"]), int(q["input_offset"])),
    }
    op.attrs["scratch_bytes"] = ic * plane_rows * wp * 2


register(
    "dsp",
    "depthwise_conv2d",
    "dsp/depthwise_conv2d.c.j2",
    requires={"dsp"},
    accepts=_dw_accepts,
    prepare=_dw_prepare,
)


# --- add / sub: each input's rescaling tabulated over its 256 int8 values -----------------------


def _wrap_i32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v >= 1 << 31 else v


def rescale_table(offset: int, left_shift: int, multiplier: int, shift: int) -> np.ndarray:
    """ek_mbqm((v + offset) * 2^left_shift, multiplier, shift) for v = -128..127, as C wraps it."""
    left = shift if shift > 0 else 0
    out = []
    for v in range(-128, 128):
        x = _wrap_i32(_wrap_i32((v + offset) * (1 << left_shift)) * (1 << left))
        out.append(fp.multiply_by_quantized_multiplier(x, multiplier, min(shift, 0)))
    return np.array(out, dtype=np.int64)


def add_accepts(graph: Graph, op: Op) -> bool:
    q = op.attrs.get("q", {})
    tensors = [graph.tensor(t) for t in (*op.inputs[:2], op.outputs[0])]
    # broadcasting stays with the portable kernel; this one walks both inputs with the output
    return (
        "input1_multiplier" in q
        and q.get("broadcast") is None
        and all(t.dtype == "int8" for t in tensors)
    )


def add_prepare(graph: Graph, op: Op) -> None:
    """Tables of both rescaled inputs (the second negated for sub) and the output requantisation.

    The portable kernel computes s1 = mbqm((v1 + off1) << ls, m1, sh1), the same for s2, then
    requantises s1 +/- s2. s1 and s2 are functions of one int8 each, so a table lookup gives them
    exactly; the tables hold 2 * s when ek_dsp_requant applies (it takes doubled accumulators).
    """
    q = op.attrs["q"]
    ls = int(q["left_shift"])
    t1 = rescale_table(
        int(q["input1_offset"]), ls, int(q["input1_multiplier"]), int(q["input1_shift"])
    )
    t2 = rescale_table(
        int(q["input2_offset"]), ls, int(q["input2_multiplier"]), int(q["input2_shift"])
    )
    if op.kind == "sub":
        t2 = -t2
    bound = int(np.abs(t1).max() + np.abs(t2).max())
    rows = requant_rows(
        np.array([int(q["output_multiplier"])]),
        np.array([int(q["output_shift"])]),
        np.array([int(q["output_offset"])]),
        np.array([bound]),
    )
    scale = 1 if rows is None else 2
    q["dsp_fast_requant"] = rows is not None
    q["dsp_requant_scalar"] = None if rows is None else [int(v) for v in rows[0]]
    q["dsp_table1"] = graph.add_const(f"{op.name}/dsp_rescale1", (scale * t1).astype(np.int32))
    q["dsp_table2"] = graph.add_const(f"{op.name}/dsp_rescale2", (scale * t2).astype(np.int32))


for _kind in ("add", "sub"):
    register(
        "dsp",
        _kind,
        "dsp/add_sub.c.j2",
        requires={"dsp"},
        accepts=add_accepts,
        prepare=add_prepare,
    )
