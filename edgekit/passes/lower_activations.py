"""Integer lowering of the parametric activations LEAKY_RELU and HARD_SWISH (int8, TFLM maths).

Registered into `passes.lower` when that module is imported; kept apart so the main lowering file
stays about the ops every model has.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgekit.ir import fixedpoint as fp
from edgekit.ir.graph import Graph, Op
from edgekit.passes.lower import UnsupportedOp, _io, _lowering, _need_int8, _per_tensor, _same_size


@_lowering("leaky_relu")
def _lower_leaky_relu(graph: Graph, op: Op) -> dict[str, Any]:
    x, y = _io(graph, op)
    _need_int8(x, y)
    _same_size(x, y)
    alpha = op.attrs.get("alpha")
    if not isinstance(alpha, float | int) or isinstance(alpha, bool) or not np.isfinite(alpha):
        raise UnsupportedOp(f"alpha must be a finite number, not {alpha!r:.40}")
    s_in, z_in = _per_tensor(x)
    s_out, z_out = _per_tensor(y)
    m_id, sh_id, m_a, sh_a = fp.leaky_relu_params(s_in, float(alpha), s_out)
    if m_a < 0 or float(np.float32(alpha)) < 0:
        # a negative alpha flips the multiplier's sign, which the Q31 form cannot carry
        raise UnsupportedOp(f"int8 LEAKY_RELU needs alpha >= 0, got {alpha}")
    return {
        "input_zero_point": z_in,
        "output_offset": z_out,
        "identity_multiplier": m_id,
        "identity_shift": sh_id,
        "alpha_multiplier": m_a,
        "alpha_shift": sh_a,
    }


@_lowering("hard_swish")
def _lower_hard_swish(graph: Graph, op: Op) -> dict[str, Any]:
    x, y = _io(graph, op)
    _need_int8(x, y)
    _same_size(x, y)
    s_in, z_in = _per_tensor(x)
    s_out, z_out = _per_tensor(y)
    p = fp.hard_swish_params(s_in, s_out)
    if p["output_exponent"] > 0:
        # TFLM refuses these too: the output stage only shifts right
        raise UnsupportedOp(
            f"int8 HARD_SWISH needs output scale >= input scale / 128 (got {s_out:g} for "
            f"input {s_in:g})"
        )
    if p["reluish_exponent"] > 16:
        # shifts that far saturate every input; the C kernel keeps its products in int32
        raise UnsupportedOp(f"int8 HARD_SWISH input scale {s_in:g} is too large")
    return {"input_zero_point": z_in, "output_zero_point": z_out, **p}
