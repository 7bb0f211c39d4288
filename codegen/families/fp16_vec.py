"""Portable vector-extension float kernels: GCC/clang generic vectors of 16 bytes.

For cores with scalar FP16 arithmetic but no vector intrinsics family here (RV32 + Zfh): the
same outer-product tiles as the Arm families, written with `vector_size(16)` types. On a scalar
core the compiler unrolls each vector into registers, which gives a register-blocked scalar
kernel (8 channels x P rows per weight load) instead of one load pair per multiply-add.
"""

from __future__ import annotations

from codegen.families.fp16_arm import prepare_conv, prepare_fc
from codegen.families.fp16_common import FAMILY, is_float

REQUIRES = ["fp16"]
MATMUL = "fp16/matmul128.c.j2"


def register_variants() -> None:
    # imported here: codegen.kernels imports every family while it loads
    from codegen.kernels import register

    vec = {"arm_isa": "vec"}
    register(FAMILY, "conv2d", MATMUL, REQUIRES, accepts=is_float, prepare=prepare_conv("vec"),
             tag=vec)  # fmt: skip
    register(FAMILY, "fully_connected", MATMUL, REQUIRES, accepts=is_float,
             prepare=prepare_fc("vec"), tag=vec)  # fmt: skip
