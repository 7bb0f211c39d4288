"""Integer lowering of TRANSPOSE_CONV (int8 activations, per-channel int8 filters, TFLM maths).

The kernel is the gather form of TFLM's scatter loop: output pixel (oy, ox) sums the input pixels
(iy, ix) with iy * stride - pad + ky == oy. Integer sums do not depend on order, so both forms
give the same accumulator; the gather form needs no int32 scratch of the output's size.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgekit.ir import fixedpoint as fp
from edgekit.ir.graph import Graph, Op
from edgekit.passes.lower import (
    _C_INT_LIMIT,
    UnsupportedOp,
    _bias,
    _ints,
    _io,
    _lowering,
    _need_int8,
    _per_tensor,
)


@_lowering("transpose_conv")
def _lower_transpose_conv(graph: Graph, op: Op) -> dict[str, Any]:
    x, y = _io(graph, op)
    if len(op.inputs) < 2 or not op.inputs[1]:
        raise UnsupportedOp("needs a filter operand")
    w = graph.tensor(op.inputs[1])
    _need_int8(x, y, w)
    if w.data is None:
        raise UnsupportedOp("filter must be constant")
    if len(x.shape) != 4 or len(y.shape) != 4 or len(w.shape) != 4 or x.shape[0] != y.shape[0]:
        raise UnsupportedOp(f"expects 4-D NHWC input/output and an OHWI filter, got "
                            f"{list(x.shape)} -> {list(y.shape)}, filter {list(w.shape)}")
    channels = y.shape[3]
    if w.shape[0] != channels or w.shape[3] != x.shape[3] or min(w.shape[1:3]) < 1:
        raise UnsupportedOp(f"filter shape {list(w.shape)} does not map {x.shape[3]} input "
                            f"channels to {channels}")
    _ints(op.attrs.get("stride"), "stride", 2, 1)
    _ints(op.attrs.get("pad"), "pad", 2, 0)
    if max(x.size, y.size) * max(w.shape[1], w.shape[2]) > _C_INT_LIMIT:
        raise UnsupportedOp("geometry is too large")
    if op.attrs.get("activation", "none") != "none":
        # TFLM's int8 kernel clamps to the full int8 range whatever the options say
        raise UnsupportedOp("a fused activation on transpose_conv is not implemented")
    in_s, in_z = _per_tensor(x)
    out_s, out_z = _per_tensor(y)
    assert w.quant is not None
    if np.any(w.quant.zero_point != 0):
        raise UnsupportedOp("int8 filters must be symmetric (zero point 0)")
    if w.quant.per_channel and (w.quant.scale.size != channels or w.quant.axis != 0):
        raise UnsupportedOp(f"filter has {w.quant.scale.size} scales for {channels} channels")
    mult, shift = fp.conv_channel_multipliers(in_s, w.quant.scale, out_s, channels)
    return {
        "input_offset": -in_z,
        "output_offset": out_z,
        "weights": op.inputs[1],
        "bias": graph.add_const(f"{op.name}/bias", _bias(graph, op, channels)),
        "multiplier": graph.add_const(f"{op.name}/multiplier", mult),
        "shift": graph.add_const(f"{op.name}/shift", shift),
    }
