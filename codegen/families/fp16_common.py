"""Helpers shared by the float kernel variants: op predicates and build-time weight layouts."""

from __future__ import annotations

import numpy as np

from edgekit.ir.graph import Graph, Op
from edgekit.passes.fp16 import FLOAT_FAMILY, contract_of

FAMILY = FLOAT_FAMILY


def is_float(graph: Graph, op: Op) -> bool:
    """The op was converted by the float pass (integer ops never match a float variant)."""
    return contract_of(op) is not None


def precision(op: Op) -> str:
    found = contract_of(op)
    assert found is not None
    return found[0]


def lanes_per_register(op: Op, register_bits: int) -> int:
    """Elements of the op's storage type in one vector register."""
    return register_bits // (16 if precision(op) == "fp16" else 32)


def blocked_weights(w2d: np.ndarray, block: int) -> np.ndarray:
    """[rows][K] -> [blocks][K][block], rows zero-padded to whole blocks: one contiguous vector
    load per k fetches `block` output channels (padding lanes compute values nobody stores)."""
    rows, k = w2d.shape
    blocks = -(-rows // block)
    out = np.zeros((blocks * block, k), dtype=w2d.dtype)
    out[:rows] = w2d
    return np.ascontiguousarray(out.reshape(blocks, block, k).transpose(0, 2, 1))


def padded(values: np.ndarray, size: int) -> np.ndarray:
    out = np.zeros(size, dtype=values.dtype)
    out[: values.size] = values.reshape(-1)
    return out


def blocking(
    lanes: int, groups: int, blocks: int, rows: int, max_q: int, max_p: int = 8
) -> tuple[int, int]:
    """(P rows, Q channel blocks) of an outer-product register tile, by estimated MACs per
    instruction.

    Per reduction index k a P x Q tile costs Q vector weight loads, P scalar input loads, P*Q
    fused multiply-adds and about three instructions of pointer bumps and loop control, and does
    P*Q*lanes MACs; P*Q accumulators and Q weight vectors must fit `groups` registers.
    """
    best, best_score = (1, 1), 0.0
    for q in range(1, min(max_q, blocks) + 1):
        for p in range(1, min(rows, max_p) + 1):
            if p * q + q > groups:
                continue
            score = p * q * lanes / (q + p + p * q + 3)
            if score > best_score + 1e-9:
                best, best_score = (p, q), score
    return best
