"""Float kernels (FP16, and FP32 for comparison): one family, variants chosen by capability.

Every variant computes exactly docs/numerics-fp16.md, so which one a target gets changes the
instruction count and never a bit of the result. Within the family the first registered variant
that the target can run wins, so all variants are registered here, in this order (the other
fp16_* modules register nothing when imported, so importing one first cannot reorder them):
the intrinsic paths (fp16_rvv, then fp16_mve and fp16_neon, which share fp16_arm), the portable
vector-extension path (fp16_vec), and last the portable scalar C, which runs anywhere (natively
on FP16 hardware, in exact integer emulation elsewhere).
"""

from __future__ import annotations

from codegen import kernels
from codegen.families import fp16_mve, fp16_neon, fp16_rvv, fp16_vec
from codegen.families.fp16_common import FAMILY, is_float

_SCALAR = {
    "conv2d": "conv2d",
    "depthwise_conv2d": "depthwise_conv2d",
    "fully_connected": "fully_connected",
    "transpose_conv": "transpose_conv",
    "avg_pool2d": "pool2d",
    "max_pool2d": "pool2d",
    "add": "elementwise",
    "relu": "elementwise",
    "relu6": "elementwise",
    "leaky_relu": "elementwise",
    "hard_swish": "elementwise",
    "reshape": "reshape",
    "softmax": "softmax",
}
for _module in (fp16_rvv, fp16_mve, fp16_neon, fp16_vec):
    _module.register_variants()
for _kind, _template in _SCALAR.items():
    kernels.register(FAMILY, _kind, f"fp16/{_template}.c.j2", accepts=is_float)
