"""Arm 128-bit vector float kernels, shared by Helium (MVE, Cortex-M55) and AArch64 Advanced SIMD.

Both ISAs have 128-bit registers of 8 binary16 (4 binary32) lanes, a fused multiply-add by a
scalar (`vfmaq_n`), and maxNum/minNum with the contract's -0 < +0 and NaN-loses rules, so one
template serves both; they differ in register count (8 Q registers vs 32 V registers) and in how
a partial channel block is stored (MVE tail predication vs a bounce buffer). The kernels are the
same outer products as the RVV family: each lane is one output channel accumulating its own
reduction in order, so the result is the contract's sequential fused sum.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from codegen.families.fp16_common import (
    FAMILY,
    blocked_weights,
    blocking,
    is_float,
    lanes_per_register,
    padded,
    precision,
)
from edgekit.ir.graph import Graph, Op

if TYPE_CHECKING:
    from codegen.kernels import Predicate, Prepare

# isa -> (vector registers, largest Q); "vec" is the generic-vector path on a scalar FPU of 32
# registers, where one 8-lane vector takes 8 of them
_REGISTERS = {"mve": (8, 2), "neon": (32, 4), "vec": (4, 1)}


def _matmul(isa: str, graph: Graph, op: Op, w2d: np.ndarray, rows: int) -> None:
    lanes = lanes_per_register(op, 128)
    channels = w2d.shape[0]
    blocks = -(-channels // lanes)
    registers, max_q = _REGISTERS[isa]
    # MVE keeps one register spare for the compiler's temporaries (it has only eight)
    groups = {"mve": registers - 1, "neon": registers - 2, "vec": registers - 1}[isa]
    p, q = blocking(lanes, groups, blocks, rows, max_q)
    bias = graph.tensor(op.attrs["q"]["bias"]).data
    assert bias is not None
    qd = op.attrs["q"]
    qd["arm_weights"] = graph.add_const(f"{op.name}/arm_weights", blocked_weights(w2d, lanes))
    qd["arm_bias"] = graph.add_const(f"{op.name}/arm_bias", padded(bias, blocks * lanes))
    qd.update(arm_isa=isa, arm_lanes=lanes, arm_blocks=blocks, arm_p=p, arm_q=q)


def _pointwise(graph: Graph, op: Op) -> bool:
    w = graph.tensor(op.inputs[1])
    return w.shape[1] == w.shape[2] == 1 and list(op.attrs["pad"]) == [0, 0]


def prepare_conv(isa: str) -> Prepare:
    def prepare(graph: Graph, op: Op) -> None:
        w = graph.tensor(op.inputs[1]).data
        y = graph.tensor(op.outputs[0])
        assert w is not None
        _matmul(isa, graph, op, w.reshape(w.shape[0], -1), y.size // y.shape[3])
        im2col = not _pointwise(graph, op)
        op.attrs["q"]["arm_im2col"] = im2col
        if im2col:
            esize = 2 if precision(op) == "fp16" else 4
            op.attrs["scratch_bytes"] = op.attrs["q"]["arm_p"] * w[0].size * esize

    return prepare


def prepare_fc(isa: str) -> Prepare:
    def prepare(graph: Graph, op: Op) -> None:
        w = graph.tensor(op.inputs[1]).data
        assert w is not None
        _matmul(isa, graph, op, w, op.attrs["q"]["batches"])

    return prepare


def prepare_depthwise(isa: str) -> Prepare:
    def prepare(graph: Graph, op: Op) -> None:
        registers = _REGISTERS[isa][0]
        y = graph.tensor(op.outputs[0])
        # P accumulators plus a weight and an input vector
        p = max(1, min(4, registers - 3, y.shape[2]))
        op.attrs["q"].update(arm_isa=isa, arm_lanes=lanes_per_register(op, 128), arm_p=p)

    return prepare


def accepts_depthwise(graph: Graph, op: Op) -> bool:
    """Whole vectors of channels only (no tail predication on the input loads), multiplier 1."""
    if not is_float(graph, op) or int(op.attrs.get("depth_multiplier", 1)) != 1:
        return False
    return graph.tensor(op.outputs[0]).shape[3] % lanes_per_register(op, 128) == 0


def register_isa(isa: str, requires: list[str]) -> None:
    # imported here: codegen.kernels imports every family while it loads
    from codegen.kernels import register

    accepts: Predicate = is_float
    variants: list[tuple[str, str, Predicate, Callable[[str], Prepare]]] = [
        ("conv2d", "fp16/matmul128.c.j2", accepts, prepare_conv),
        ("fully_connected", "fp16/matmul128.c.j2", accepts, prepare_fc),
        ("depthwise_conv2d", "fp16/arm_depthwise.c.j2", accepts_depthwise, prepare_depthwise),
    ]
    for kind, template, pred, make in variants:
        register(FAMILY, kind, template, requires, accepts=pred, prepare=make(isa),
                 tag={"arm_isa": isa})  # fmt: skip
