"""Integer lowering: attach to every op the exact fixed-point constants its kernel needs.

After this pass an op's `attrs["q"]` holds its scalar integer parameters, and per-channel arrays
(multipliers, shifts, zero-point-folded biases) are constant tensors named in `attrs["q"]`. Codegen
only reads these; no kernel recomputes a scale at run time, and all of them land in flash.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.ir import fixedpoint as fp
from edgekit.ir.graph import Graph, Op, Tensor

_Lowering = Callable[[Graph, Op], dict[str, Any]]
_LOWERINGS: dict[str, _Lowering] = {}


def _lowering(*kinds: str) -> Callable[[_Lowering], _Lowering]:
    def register(fn: _Lowering) -> _Lowering:
        for k in kinds:
            _LOWERINGS[k] = fn
        return fn

    return register


class UnsupportedOp(ValueError):
    """Raised by a lowering for a type/quantization combination the kernels do not implement."""


def _io(graph: Graph, op: Op) -> tuple[Tensor, Tensor]:
    return graph.tensor(op.inputs[0]), graph.tensor(op.outputs[0])


# Input validation: kernels index memory from shapes and attributes, so every relation they rely
# on is checked here, once, for every frontend (a hostile file must not become an out-of-bounds
# access in generated C).
_C_INT_LIMIT = 1 << 30  # index arithmetic in kernels uses C int
_REQUIRED_INPUTS = {
    "conv2d": 2,
    "depthwise_conv2d": 2,
    "fully_connected": 2,
    "add": 2,
    "sub": 2,
    "mul": 2,
}
_IO_DTYPES = {"int8", "uint8", "int16", "int32", "float16", "float32"}  # ek_tensor_info_t types


def _same_size(x: Tensor, y: Tensor) -> None:
    if x.size != y.size:
        raise UnsupportedOp(f"'{x.name}' has {x.size} elements but '{y.name}' has {y.size}")


def _ints(
    value: Any, what: str, n: int | None = None, lo: int | None = None, limit: int = _C_INT_LIMIT
) -> list[int]:
    """A flat list of Python ints (optionally n of them, each >= lo), or UnsupportedOp."""
    if not isinstance(value, list | tuple) or (n is not None and len(value) != n):
        raise UnsupportedOp(f"{what} must be a list of {n if n is not None else 'some'} integers")
    if not all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in value):
        raise UnsupportedOp(f"{what} must hold integers, not {value!r:.60}")
    out = [int(v) for v in value]
    if lo is not None and any(v < lo for v in out):
        raise UnsupportedOp(f"{what} {out} must be >= {lo}")
    if any(abs(v) > limit for v in out):
        raise UnsupportedOp(f"{what} {out} is out of range")
    return out


def _window(
    size: int, out: int, filt: int, stride: int, dilation: int, pad: int, what: str
) -> None:
    """The output size and leading pad must be the ones TFLite's SAME or VALID padding gives."""
    eff = (filt - 1) * dilation + 1
    same = (size + stride - 1) // stride
    same_pad = max(0, (same - 1) * stride + eff - size) // 2
    valid = (size - eff + stride) // stride
    if (out, pad) not in ((same, same_pad), (valid, 0)):
        raise UnsupportedOp(
            f"{what}: output {out} with pad {pad} is neither SAME ({same}, pad {same_pad}) nor "
            f"VALID ({valid}) for input {size}, filter {filt}, stride {stride}, dilation {dilation}"
        )
    if (out - 1) * stride + eff + size > _C_INT_LIMIT:
        raise UnsupportedOp(f"{what}: window geometry is too large")


def _geometry(op: Op, x: Tensor, y: Tensor, kh: int, kw: int, dilated: bool = True) -> None:
    """Strides, dilations and pads of a 2-D window op, against its NHWC shapes."""
    if len(x.shape) != 4 or len(y.shape) != 4 or x.shape[0] != y.shape[0]:
        raise UnsupportedOp(
            f"expects 4-D NHWC input and output with one batch size, got "
            f"{list(x.shape)} -> {list(y.shape)}"
        )
    sh, sw = _ints(op.attrs.get("stride"), "stride", 2, 1)
    # kernels read every attribute they use, so each must be present (no defaults here)
    dh, dw = _ints(op.attrs.get("dilation"), "dilation", 2, 1) if dilated else (1, 1)
    pt, pl = _ints(op.attrs.get("pad"), "pad", 2, 0)
    if min(kh, kw) < 1:
        raise UnsupportedOp(f"filter {kh}x{kw} is empty")
    _window(x.shape[1], y.shape[1], kh, sh, dh, pt, "height")
    _window(x.shape[2], y.shape[2], kw, sw, dw, pl, "width")


def _need_int8(*tensors: Tensor) -> None:
    for t in tensors:
        if t.dtype != "int8":
            raise UnsupportedOp(f"tensor '{t.name}' is {t.dtype}; this op is implemented for int8")
        if t.quant is None:
            raise UnsupportedOp(f"tensor '{t.name}' has no quantization parameters")


def _need_16x8(x: Tensor, y: Tensor, w: Tensor | None = None) -> bool:
    """int8 in and out, or TFLite's 16x8 (int16 in and out, zero points 0, int8 weights): True
    for 16x8. Kernels of both kinds share a template and branch on this."""
    if x.dtype != "int16" and y.dtype != "int16":
        _need_int8(x, y)
        if w is not None:
            _need_weights(w)
        return False
    for t in (x, y):
        if t.dtype != "int16" or t.quant is None:
            raise UnsupportedOp(f"tensor '{t.name}' is {t.dtype}: 16x8 ops need int16 in and out")
        if np.any(t.quant.zero_point != 0):
            raise UnsupportedOp(f"int16 tensor '{t.name}' must have zero point 0")
    if w is not None:
        _need_weights(w)
    return True


def _need_weights(w: Tensor) -> None:
    """int8 weights, or packed int4 ones (symmetric, zero point 0), which kernels unpack."""
    if w.dtype != "int4":
        _need_int8(w)
    elif w.quant is None or np.any(w.quant.zero_point != 0):
        raise UnsupportedOp(f"int4 weights '{w.name}' must be symmetric (zero point 0)")


def _per_tensor(t: Tensor) -> tuple[float, int]:
    assert t.quant is not None
    if t.quant.per_channel:
        raise UnsupportedOp(f"activation tensor '{t.name}' is quantized per channel")
    return t.quant.scalar_scale(), t.quant.scalar_zero_point()


def _f32(x: float) -> float:
    return float(np.float32(x))


def _act_range(op: Op, out: Tensor) -> tuple[int, int]:
    s, z = _per_tensor(out)
    try:
        return fp.activation_range(op.attrs.get("activation", "none"), s, z, out.dtype)
    except ValueError as exc:
        raise UnsupportedOp(str(exc)) from None


@_lowering("conv2d", "depthwise_conv2d")
def _lower_conv(graph: Graph, op: Op) -> dict[str, Any]:
    x, y = _io(graph, op)
    w = graph.tensor(op.inputs[1])
    wide = _need_16x8(x, y, w)
    if w.data is None:
        raise UnsupportedOp("filter must be constant")
    in_s, in_z = _per_tensor(x)
    out_s, out_z = _per_tensor(y)
    if len(w.shape) != 4:
        raise UnsupportedOp(f"filter must be 4-D, got {list(w.shape)}")
    _geometry(op, x, y, w.shape[1], w.shape[2])
    channels = y.shape[3]
    if op.kind == "conv2d":
        expect = (channels, w.shape[1], w.shape[2], x.shape[3])
    else:
        mult = op.attrs.get("depth_multiplier")
        if not isinstance(mult, int) or mult < 1 or x.shape[3] * mult != channels:
            raise UnsupportedOp(
                f"depth multiplier {mult!r} does not map {x.shape[3]} input channels to {channels}"
            )
        expect = (1, w.shape[1], w.shape[2], channels)
    if w.shape != expect:
        raise UnsupportedOp(f"filter shape {list(w.shape)} should be {list(expect)}")
    assert w.quant is not None
    if np.any(w.quant.zero_point != 0):
        raise UnsupportedOp("int8 filters must be symmetric (zero point 0)")
    channel_axis = 0 if op.kind == "conv2d" else 3
    if w.quant.per_channel and (w.quant.scale.size != channels or w.quant.axis != channel_axis):
        raise UnsupportedOp(f"filter has {w.quant.scale.size} scales for {channels} channels")
    mult, shift = fp.conv_channel_multipliers(in_s, w.quant.scale, out_s, channels)
    bias = _bias(graph, op, channels, wide)
    lo, hi = _act_range(op, y)
    return {
        "acc64": wide,
        "input_offset": -in_z,
        "output_offset": out_z,
        "act_min": lo,
        "act_max": hi,
        "bias": graph.add_const(f"{op.name}/bias", bias),
        "multiplier": graph.add_const(f"{op.name}/multiplier", mult),
        "shift": graph.add_const(f"{op.name}/shift", shift),
    }


def _bias(graph: Graph, op: Op, channels: int, wide: bool = False) -> np.ndarray:
    """int32 biases, or int64 for 16x8 ops (whose accumulators are int64, as in TFLM)."""
    kind = np.int64 if wide else np.int32
    if len(op.inputs) > 2 and op.inputs[2]:
        b = graph.tensor(op.inputs[2])
        if b.data is None or b.dtype not in (("int32", "int64") if wide else ("int32",)):
            raise UnsupportedOp(f"bias must be a constant {np.dtype(kind).name} tensor")
        if b.size != channels:
            raise UnsupportedOp(f"bias has {b.size} values for {channels} output channels")
        return b.data.astype(kind).reshape(-1).copy()
    return np.zeros(channels, dtype=kind)


@_lowering("fully_connected")
def _lower_fc(graph: Graph, op: Op) -> dict[str, Any]:
    x, y = _io(graph, op)
    w = graph.tensor(op.inputs[1])
    wide = _need_16x8(x, y, w)
    if w.data is None or len(w.shape) != 2:
        raise UnsupportedOp("weights must be a constant 2-D tensor [units, depth]")
    units, depth = w.shape
    if depth == 0 or x.size % depth:
        raise UnsupportedOp(f"input size {x.size} is not a multiple of the weight depth {depth}")
    if y.size != x.size // depth * units:
        raise UnsupportedOp(
            f"output has {y.size} elements, {x.size // depth} rows of {units} "
            "units need " + str(x.size // depth * units)
        )
    in_s, in_z = _per_tensor(x)
    out_s, out_z = _per_tensor(y)
    assert w.quant is not None
    w_z = w.quant.zero_point.astype(np.int64)
    if w.quant.per_channel:
        if w.quant.axis != 0:
            raise UnsupportedOp("per-channel weights must be quantized along the units axis")
        if np.any(w_z != 0):
            raise UnsupportedOp("per-channel weights must be symmetric")
        mult, shift = fp.conv_channel_multipliers(in_s, w.quant.scale, out_s, units)
        filter_offset = 0
    else:
        m, s = fp.fc_multiplier(in_s, w.quant.scalar_scale(), out_s)
        mult = np.full(units, m, dtype=np.int32)
        shift = np.full(units, s, dtype=np.int32)
        filter_offset = -int(w_z[0])
    # acc = sum (w + fo)(x - in_z) = sum (w + fo) x + [bias - in_z sum (w + fo)]: no padding in
    # a dense layer, so folding the input offset into the bias is exact.
    wsum = (w.data.astype(np.int64) + filter_offset).sum(axis=1)
    folded = _bias(graph, op, units, wide).astype(np.int64) - in_z * wsum
    if not wide and np.any(np.abs(folded) >= 1 << 31):
        raise UnsupportedOp("folded bias overflows int32")
    lo, hi = _act_range(op, y)
    per_channel = bool(np.any(mult != mult[0]) or np.any(shift != shift[0]))
    return {
        "acc64": wide,
        "units": units,
        "depth": depth,
        "batches": x.size // depth,
        "filter_offset": filter_offset,
        "output_offset": out_z,
        "act_min": lo,
        "act_max": hi,
        "bias": graph.add_const(f"{op.name}/bias", folded.astype(np.int64 if wide else np.int32)),
        "per_channel": per_channel,
        "multiplier": graph.add_const(f"{op.name}/multiplier", mult)
        if per_channel
        else int(mult[0]),
        "shift": graph.add_const(f"{op.name}/shift", shift) if per_channel else int(shift[0]),
    }


@_lowering("avg_pool2d", "max_pool2d")
def _lower_pool(graph: Graph, op: Op) -> dict[str, Any]:
    x, y = _io(graph, op)
    _need_16x8(x, y)
    if x.quant != y.quant:
        raise UnsupportedOp("pooling needs the same quantization on input and output")
    fh, fw = _ints(op.attrs.get("filter"), "filter", 2, 1)
    _geometry(op, x, y, fh, fw, dilated=False)
    if x.shape[3] != y.shape[3]:
        raise UnsupportedOp(f"pooling changes the channels: {list(x.shape)} -> {list(y.shape)}")
    lo, hi = _act_range(op, y)
    return {"act_min": lo, "act_max": hi}


@_lowering("add", "sub")
def _lower_add(graph: Graph, op: Op) -> dict[str, Any]:
    a, y = _io(graph, op)
    b = graph.tensor(op.inputs[1])
    wide = _need_16x8(a, y) and _need_16x8(b, y)
    if not wide:
        _need_int8(b)
    sa, za = _per_tensor(a)
    sb, zb = _per_tensor(b)
    so, zo = _per_tensor(y)
    # TFLM pre-shifts int16 inputs by 15 bits (int8: 20) so the int32 sums cannot overflow
    left_shift = 15 if wide else 20
    twice_max = 2.0 * max(_f32(sa), _f32(sb))
    if twice_max >= (1 << left_shift) * _f32(so):
        # the reference asserts the output rescale is below one (and aborts otherwise)
        raise UnsupportedOp(f"output scale {so} is too small for the input scales {sa}, {sb}")
    q: dict[str, Any] = fp.add_params(sa, sb, so, left_shift)
    lo, hi = _act_range(op, y)
    q.update(input1_offset=-za, input2_offset=-zb, output_offset=zo, act_min=lo, act_max=hi)
    q["broadcast"] = _broadcast_strides(a.shape, b.shape, y.shape)
    return q


@_lowering("mul")
def _lower_mul(graph: Graph, op: Op) -> dict[str, Any]:
    a, y = _io(graph, op)
    b = graph.tensor(op.inputs[1])
    if not (_need_16x8(a, y) and _need_16x8(b, y)):
        _need_int8(b)
    sa, za = _per_tensor(a)
    sb, zb = _per_tensor(b)
    so, zo = _per_tensor(y)
    m, s = fp.mul_params(sa, sb, so)
    lo, hi = _act_range(op, y)
    return {
        "input1_offset": -za,
        "input2_offset": -zb,
        "output_offset": zo,
        "output_multiplier": m,
        "output_shift": s,
        "act_min": lo,
        "act_max": hi,
        "broadcast": _broadcast_strides(a.shape, b.shape, y.shape),
    }


def _broadcast_strides(
    a: tuple[int, ...], b: tuple[int, ...], y: tuple[int, ...]
) -> dict[str, Any] | None:
    """None when no broadcasting is needed, else 4-D output dims and per-input element strides."""
    if a == b == y:
        return None
    rank = 4
    if max(len(a), len(b), len(y)) > rank:
        raise UnsupportedOp("broadcasting is implemented for up to 4 dimensions")

    def pad(s: tuple[int, ...]) -> list[int]:
        return [1] * (rank - len(s)) + list(s)

    ya, aa, bb = pad(y), pad(a), pad(b)

    def strides(s: list[int]) -> list[int]:
        st, acc = [0] * rank, 1
        for i in reversed(range(rank)):
            st[i] = 0 if s[i] == 1 and ya[i] != 1 else acc
            acc *= s[i]
        return st

    for s in (aa, bb):
        if any(d not in (1, yd) for d, yd in zip(s, ya, strict=True)):
            raise UnsupportedOp(f"shapes {list(a)} and {list(b)} do not broadcast")
    return {"dims": ya, "stride1": strides(aa), "stride2": strides(bb)}


@_lowering("reshape")
def _lower_reshape(graph: Graph, op: Op) -> dict[str, Any]:
    x, y = _io(graph, op)
    if x.size != y.size or x.dtype != y.dtype:
        raise UnsupportedOp("reshape changes the element count or type")
    return {}


@_lowering("softmax")
def _lower_softmax(graph: Graph, op: Op) -> dict[str, Any]:
    x, y = _io(graph, op)
    _need_int8(x, y)
    s_in, _ = _per_tensor(x)
    s_out, z_out = _per_tensor(y)
    if z_out != -128 or not np.isclose(s_out, 1.0 / 256, rtol=0, atol=1e-8 * 256):
        raise UnsupportedOp("int8 softmax output must have scale 1/256 and zero point -128")
    beta = op.attrs.get("beta", 1.0)
    if not isinstance(beta, float | int) or not np.isfinite(beta) or beta <= 0:
        raise UnsupportedOp(f"softmax beta {beta!r} must be a positive number")
    if not x.shape or x.shape[-1] == 0:
        raise UnsupportedOp("softmax needs a non-empty last dimension")
    _same_size(x, y)
    try:
        mult, shift, diff_min = fp.softmax_params(beta, s_in)
    except ValueError as exc:
        raise UnsupportedOp(str(exc)) from None
    depth = x.shape[-1]
    return {
        "input_multiplier": mult,
        "input_left_shift": shift,
        "diff_min": diff_min,
        "depth": depth,
        "rows": x.size // depth,
    }


@_lowering("relu", "quantize")
def _lower_requant(graph: Graph, op: Op) -> dict[str, Any]:
    x, y = _io(graph, op)
    _same_size(x, y)
    if op.kind == "quantize" and x.dtype == "float32":
        _need_int8(y)
        s, z = _per_tensor(y)
        return {"mode": "from_float", "scale": float(np.float32(s)), "zero_point": z}
    if op.kind == "quantize" and {x.dtype, y.dtype} <= {"int8", "int16"}:
        # the int8 <-> int16 boundaries of mixed-precision graphs (TFLM's QUANTIZE requantizes
        # between these with the same integer rescale as int8 -> int8)
        if x.quant is None or y.quant is None:
            raise UnsupportedOp("QUANTIZE needs quantization parameters on both sides")
    else:
        _need_int8(x, y)
    s_in, z_in = _per_tensor(x)
    s_out, z_out = _per_tensor(y)
    m, sh = fp.requantize_params(s_in, s_out)
    act = "relu" if op.kind == "relu" else "none"
    lo, hi = fp.activation_range(act, s_out, z_out, y.dtype)
    return {
        "mode": "requant",
        "input_zero_point": z_in,
        "output_offset": z_out,
        "multiplier": m,
        "shift": sh,
        "act_min": lo,
        "act_max": hi,
    }


@_lowering("relu6")
def _lower_relu6(graph: Graph, op: Op) -> dict[str, Any]:
    # TFLM clamps int8 RELU6 in the input's quantized domain and copies the result unscaled: the
    # output's own scale and zero point are never read. Reproduced as is, for bit-exactness.
    x, y = _io(graph, op)
    _need_int8(x, y)
    _same_size(x, y)
    s_in, z_in = _per_tensor(x)
    _per_tensor(y)
    return {"mode": "clamp", "act_min": z_in, "act_max": fp.quantize_float(6.0, s_in, z_in)}


def _sigmoid_tanh_q(x: Tensor) -> dict[str, Any]:
    s_in, z_in = _per_tensor(x)
    try:
        mult, shift, radius = fp.sigmoid_tanh_params(s_in)
    except ValueError as exc:
        raise UnsupportedOp(str(exc)) from None
    if shift > 30:
        raise UnsupportedOp(f"input scale {s_in} is too large for the Q4 input rescale")
    return {"input_zero_point": z_in, "multiplier": mult, "shift": shift, "radius": radius}


@_lowering("logistic")
def _lower_logistic(graph: Graph, op: Op) -> dict[str, Any]:
    x, y = _io(graph, op)
    _need_int8(x, y)
    _same_size(x, y)
    s_out, z_out = _per_tensor(y)
    # the kernel writes a fixed Q0.8 result; other output quantizations would be misread
    if z_out != -128 or float(np.float32(s_out)) != 1.0 / 256:
        raise UnsupportedOp("int8 LOGISTIC output must have scale 1/256 and zero point -128")
    return _sigmoid_tanh_q(x)


@_lowering("tanh")
def _lower_tanh(graph: Graph, op: Op) -> dict[str, Any]:
    x, y = _io(graph, op)
    _need_int8(x, y)
    _same_size(x, y)
    s_out, z_out = _per_tensor(y)
    if z_out != 0 or float(np.float32(s_out)) != 1.0 / 128:
        raise UnsupportedOp("int8 TANH output must have scale 1/128 and zero point 0")
    return _sigmoid_tanh_q(x)


@_lowering("dequantize")
def _lower_dequantize(graph: Graph, op: Op) -> dict[str, Any]:
    x, y = _io(graph, op)
    _need_int8(x)
    _same_size(x, y)
    if y.dtype != "float32":
        raise UnsupportedOp("DEQUANTIZE is implemented to float32")
    s, z = _per_tensor(x)
    return {"scale": float(np.float32(s)), "zero_point": z}


def _same_storage(x: Tensor, y: Tensor, what: str) -> None:
    """Data-movement ops copy stored values, so input and output must mean the same thing."""
    if x.dtype != y.dtype:
        raise UnsupportedOp(f"{what} changes the type from {x.dtype} to {y.dtype}")
    if x.dtype not in ("int8", "uint8", "int16", "int32", "float32"):
        raise UnsupportedOp(f"{what} of {x.dtype} tensors is not implemented")
    if (x.quant is None) != (y.quant is None) or (
        x.quant is not None
        and y.quant is not None
        and (
            x.quant.per_channel
            or y.quant.per_channel
            or float(np.float32(x.quant.scalar_scale()))
            != float(np.float32(y.quant.scalar_scale()))
            or x.quant.scalar_zero_point() != y.quant.scalar_zero_point()
        )
    ):
        raise UnsupportedOp(
            f"{what} needs the same quantization on '{x.name}' and '{y.name}' (the reference "
            "copies the stored values without rescaling)"
        )


def _strides(shape: list[int]) -> list[int]:
    out, acc = [0] * len(shape), 1
    for i in reversed(range(len(shape))):
        out[i] = acc
        acc *= shape[i]
    return out


@_lowering("pad")
def _lower_pad(graph: Graph, op: Op) -> dict[str, Any]:
    x, y = _io(graph, op)
    _same_storage(x, y, "PAD")
    if len(op.inputs) > 2 and op.inputs[2]:
        raise UnsupportedOp("PAD with an explicit constant value is not supported")
    raw = op.attrs.get("paddings")
    if not isinstance(raw, list) or not all(isinstance(p, list) for p in raw):
        raise UnsupportedOp("paddings must be a [rank, 2] list of integers")
    pads = [_ints(p, "paddings row") for p in raw]
    if len(pads) != len(x.shape) or any(len(p) != 2 for p in pads):
        raise UnsupportedOp(f"paddings {pads} do not match the input rank {len(x.shape)}")
    if any(v < 0 for p in pads for v in p):
        raise UnsupportedOp("negative paddings are not supported")
    expect = [d + p[0] + p[1] for d, p in zip(x.shape, pads, strict=True)]
    if expect != list(y.shape):
        raise UnsupportedOp(f"padded shape {expect} does not match the output {list(y.shape)}")
    if not x.shape:
        raise UnsupportedOp("PAD of a scalar")
    # int8 padding is filled with the output zero point, i.e. real zero
    value = y.quant.scalar_zero_point() if y.quant is not None else 0
    in_shape = list(x.shape)
    out_strides = _strides(list(y.shape))
    # the input is copied one innermost row at a time, to the row's place in the output
    start = sum(p[0] * st for p, st in zip(pads, out_strides, strict=True))
    return {
        "value": value,
        "in_shape": in_shape,
        "out_strides": out_strides,
        "start": start,
    }


@_lowering("concat")
def _lower_concat(graph: Graph, op: Op) -> dict[str, Any]:
    y = graph.tensor(op.outputs[0])
    if op.attrs.get("activation", "none") != "none":
        raise UnsupportedOp("CONCATENATION with a fused activation is not supported (nor by TFLM)")
    axis = op.attrs.get("axis")
    if not isinstance(axis, int):
        raise UnsupportedOp(f"axis {axis!r} is not an integer")
    rank = len(y.shape)
    if not 0 <= axis < rank:
        raise UnsupportedOp(f"axis {axis} is out of range for rank {rank}")
    outer = int(np.prod(y.shape[:axis], dtype=np.int64))
    chunks = []
    total = 0
    if not all(op.inputs):
        raise UnsupportedOp("CONCATENATION has an absent input")
    for name in op.inputs:
        t = graph.tensor(name)
        _same_storage(t, y, "CONCATENATION")
        if len(t.shape) != rank or any(
            a != b for i, (a, b) in enumerate(zip(t.shape, y.shape, strict=True)) if i != axis
        ):
            raise UnsupportedOp(f"input shape {list(t.shape)} does not fit output {list(y.shape)}")
        chunk = int(np.prod(t.shape[axis:], dtype=np.int64))
        chunks.append({"size": chunk, "offset": total})
        total += chunk
    if total * outer != y.size:
        raise UnsupportedOp("concatenated sizes do not add up to the output size")
    return {"outer": outer, "out_chunk": total, "chunks": chunks}


@_lowering("mean")
def _lower_mean(graph: Graph, op: Op) -> dict[str, Any]:
    x, y = _io(graph, op)
    _need_int8(x, y)
    s_in, z_in = _per_tensor(x)
    s_out, z_out = _per_tensor(y)
    axes = sorted(set(_ints(op.attrs.get("axes"), "axes", lo=0)))
    if any(a >= len(x.shape) for a in axes):
        raise UnsupportedOp(f"axes {axes} are out of range for rank {len(x.shape)}")
    shape = list(x.shape)
    kept = [d for d in range(len(shape)) if d not in axes]
    if int(np.prod([shape[d] for d in kept], dtype=np.int64)) != y.size:
        raise UnsupportedOp(f"MEAN over {axes} of {shape} does not give the output {list(y.shape)}")
    count = int(np.prod([shape[d] for d in axes], dtype=np.int64))
    if count * 128 >= 1 << 31:
        raise UnsupportedOp("MEAN over more than 2^24 elements may overflow the int32 sum")
    mult, shift = fp.mean_params(s_in, s_out, count)
    strides = _strides(shape)
    return {
        # outer loops walk the kept axes in order, which is the output's layout
        "kept": [{"n": shape[d], "stride": strides[d]} for d in kept],
        "reduced": [{"n": shape[d], "stride": strides[d]} for d in axes],
        "count": count,
        "zero_sum": -z_in * count,
        "multiplier": int(mult),
        "shift": int(shift),
        "output_offset": z_out,
    }


def _slice_axis(
    size: int, begin: int, end: int, stride: int, begin_masked: bool, end_masked: bool, shrink: bool
) -> range:
    """The input indices one axis of a strided slice visits, with the reference's clamping."""
    lo, hi = (0, size) if stride > 0 else (-1, size - 1)
    start = begin + size if begin < 0 else begin
    start = min(max(start, lo), hi)
    if begin_masked:
        start = 0 if stride > 0 else size - 1
    if shrink:
        return range(start, start if start >= size else start + 1)
    stop = end + size if end < 0 else end
    stop = min(max(stop, lo), hi)
    if end_masked:
        stop = size if stride > 0 else -1
    return range(start, stop, stride)


def strided_slice_indices(shape: list[int], attrs: dict[str, Any]) -> tuple[list[range], list[int]]:
    """Per-axis input indices of a STRIDED_SLICE and the output shape (shrunk axes dropped)."""
    n = len(shape)
    # begin and end are clamped to the shape below; TFLite writes int32 sentinels there
    begin, end, strides = (
        _ints(attrs.get(k), k, n, limit=1 << 31) for k in ("begin", "end", "strides")
    )
    for key in ("begin_mask", "end_mask", "shrink_axis_mask", "ellipsis_mask", "new_axis_mask"):
        # an absent mask is 0, as in TFLite's options table
        if not isinstance(attrs.get(key, 0), int) or isinstance(attrs.get(key), bool):
            raise UnsupportedOp(f"{key} must be an integer")
    if attrs.get("ellipsis_mask") or attrs.get("new_axis_mask"):
        raise UnsupportedOp("STRIDED_SLICE ellipsis and new-axis masks are not supported")
    if attrs.get("offset"):
        raise UnsupportedOp("STRIDED_SLICE with offset=true is not supported")
    if any(s == 0 for s in strides):
        raise UnsupportedOp("STRIDED_SLICE stride 0")
    ranges, out_shape = [], []
    for d, size in enumerate(shape):
        shrink = bool(attrs.get("shrink_axis_mask", 0) >> d & 1)
        r = _slice_axis(
            size,
            int(begin[d]),
            int(end[d]),
            int(strides[d]),
            bool(attrs.get("begin_mask", 0) >> d & 1),
            bool(attrs.get("end_mask", 0) >> d & 1),
            shrink,
        )
        ranges.append(r)
        if not shrink:
            out_shape.append(len(r))
    return ranges, out_shape


@_lowering("strided_slice")
def _lower_strided_slice(graph: Graph, op: Op) -> dict[str, Any]:
    x, y = _io(graph, op)
    _same_storage(x, y, "STRIDED_SLICE")
    ranges, out_shape = strided_slice_indices(list(x.shape), op.attrs)
    if int(np.prod(out_shape, dtype=np.int64)) != y.size:
        raise UnsupportedOp(f"slice gives {out_shape}, the output is {list(y.shape)}")
    strides = _strides(list(x.shape))
    loops = [
        {"n": len(r), "step": r.step * st}
        for r, st in zip(ranges, strides, strict=True)
        if len(r) > 1
    ]
    start = sum(r.start * st for r, st in zip(ranges, strides, strict=True) if len(r) > 0)
    return {"start": start, "loops": loops, "empty": y.size == 0}


def lower(graph: Graph, where: str = "") -> Graph:
    """Attach integer parameters to every op; one error lists every op that cannot be lowered."""
    problems: list[str] = []
    for name in graph.inputs + graph.outputs:
        if graph.tensor(name).dtype not in _IO_DTYPES:
            problems.append(f"  graph input/output '{name}' is {graph.tensor(name).dtype}")
    for idx, op in enumerate(graph.ops):
        fn = _LOWERINGS.get(op.kind)
        if fn is None:
            problems.append(f"  #{idx} {op.name}: no kernel for '{op.kind}' yet")
            continue
        need = _REQUIRED_INPUTS.get(op.kind, 1)
        if len(op.inputs) < need or not all(op.inputs[:need]) or not op.outputs[0]:
            problems.append(f"  #{idx} {op.name}: needs {need} input(s) and an output")
            continue
        try:
            op.attrs["q"] = fn(graph, op)
        except UnsupportedOp as exc:
            problems.append(f"  #{idx} {op.name}: {exc}")
        except ArithmeticError as exc:  # scale ratios a float or int cannot hold
            problems.append(f"  #{idx} {op.name}: quantization parameters out of range ({exc})")
        except ValueError as exc:  # e.g. a lowered constant's name is already taken
            problems.append(f"  #{idx} {op.name}: {exc}")
    if problems:
        raise EdgekitError(
            f"{len(problems)} operator(s) cannot be compiled:\n" + "\n".join(problems),
            where or graph.name,
            "see docs/ops.md for the supported operators and types",
        )
    graph.meta["lowered"] = True
    return graph
