"""Weights and biases: symmetric int8 weights (per channel or per tensor), int32 biases.

TFLite conventions: weights use [-127, 127] with zero point 0, so that -w is representable; the
bias scale is input scale x weight scale as a float32 product, and the bias zero point is 0.
"""

from __future__ import annotations

import numpy as np

from edgekit.ir.graph import Quant

WMAX = 127
# Below this a weight scale is treated as zero: such scales (denormal weights) make biases and
# multipliers meaningless.
TINY = 1e-20


def quantize_weights(w: np.ndarray, axis: int | None, min_scale: np.ndarray | float = 0.0,
                     wmax: int = WMAX) -> tuple[np.ndarray, Quant]:
    """int8 weights and their quantization; per channel along `axis`, or per tensor if None.
    wmax=7 gives int4 values ([-7, 7], stored in int8 until packed).

    `min_scale` (per channel or one value) floors the scales; the caller uses it so that the
    bias, whose scale is in_scale * w_scale, fits in int32.
    """
    w = np.asarray(w, dtype=np.float32)
    moved = w.reshape(1, -1) if axis is None else np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1)
    m = np.abs(moved).max(axis=1).astype(np.float64) if moved.size else np.zeros(len(moved))
    live = m / wmax > TINY
    # an all-zero (or denormal) channel quantizes to zeros at any scale; borrowing the largest
    # other scale keeps its bias (whose scale follows) as precise as its neighbours'
    fallback = float(m[live].max()) / wmax if np.any(live) else 1.0
    floor = np.asarray(min_scale, dtype=np.float64).reshape(-1)
    floor = np.full(m.shape, floor.max()) if floor.size != m.size else floor
    scale = np.maximum(np.where(live, m / wmax, fallback), floor).astype(np.float32)
    shape = [1] * w.ndim
    if axis is not None:
        shape[axis] = -1
    q = np.clip(np.round(w / scale.reshape(shape)), -wmax, wmax).astype(np.int8)
    return q, Quant(scale, np.zeros(scale.size, np.int64), axis)


def dequantize_weights(q: np.ndarray, quant: Quant) -> np.ndarray:
    shape = [1] * q.ndim
    if quant.axis is not None and quant.scale.size > 1:
        shape[quant.axis] = -1
    return (q.astype(np.float64) * quant.scale.astype(np.float64).reshape(shape)).astype(
        np.float32
    )


def bias_scale(input_scale: float, weight_quant: Quant) -> np.ndarray:
    """Bias scales (one per weight scale), the float32 product TFLite's quantizer computes."""
    return (np.float32(input_scale) * weight_quant.scale.astype(np.float32)).astype(np.float32)


def quantize_bias(b: np.ndarray, scale: np.ndarray, bits: int = 32) -> tuple[np.ndarray, Quant]:
    """int32 biases, or int64 (bits=64) for 16x8 layers."""
    q = np.round(b.astype(np.float64) / scale.astype(np.float64))
    # float64 holds integers exactly only up to 2^53; 16x8 biases stay far below that
    lim = 2.0 ** (bits - 1) - 1 if bits == 32 else 2.0**53
    q = np.clip(q, -lim, lim).astype(np.int32 if bits == 32 else np.int64)
    axis = 0 if scale.size > 1 else None
    return q, Quant(scale.astype(np.float32), np.zeros(scale.size, np.int64), axis)


def bias_floor(b: np.ndarray, input_scale: float, bits: int = 31) -> np.ndarray:
    """The smallest weight scales at which each bias still fits in int32 (or, bits=40, the
    int64 bias of a 16x8 layer with room left under TFLite's 2^47 accumulator limit)."""
    return np.abs(b.astype(np.float64)) / (float(input_scale) * (2.0**bits - 1)) * 1.001


def bias_correction(kind: str, w: np.ndarray, wq: np.ndarray, input_mean: np.ndarray,
                    depth_multiplier: int = 1) -> np.ndarray | None:
    """The mean output shift that weight rounding causes, E[(Wq - W) x], per output channel.

    Subtracting it from the bias re-centres each channel (Nagel et al., "Data-Free Quantization",
    2019). Border taps of padded convolutions see zeros, which this ignores.
    """
    err = wq.astype(np.float64) - w.astype(np.float64)
    mean = np.asarray(input_mean, dtype=np.float64)
    if kind == "conv2d":
        if mean.size != err.shape[3]:
            return None
        return err.sum(axis=(1, 2)) @ mean
    if kind == "depthwise_conv2d":
        per_out = np.repeat(mean, depth_multiplier) if mean.size * depth_multiplier == \
            err.shape[3] else None
        return None if per_out is None else err.sum(axis=(0, 1, 2)) * per_out
    if kind == "fully_connected":
        return err @ mean if mean.size == err.shape[1] else None
    return None
