"""SQNR, and the float <-> int8 conversions around a quantized model."""

from __future__ import annotations

import math

import numpy as np

from edgekit.ir.graph import Quant


def sqnr_db(reference: np.ndarray, test: np.ndarray) -> float:
    """10·log10(Σ ref² / Σ (ref − test)²) over all elements; inf when they are equal."""
    ref = np.asarray(reference, dtype=np.float64).reshape(-1)
    err = ref - np.asarray(test, dtype=np.float64).reshape(-1)
    noise = float(np.dot(err, err))
    signal = float(np.dot(ref, ref))
    if noise == 0.0:
        return math.inf
    if signal == 0.0:
        return -math.inf
    return 10.0 * math.log10(signal / noise)


def quantize_array(x: np.ndarray, quant: Quant, dtype: str = "int8") -> np.ndarray:
    """Float values to int8 (or int16, for a 16x8 model's input) with a per-tensor quantization
    (round half away from zero, as TFLite does, then clamp)."""
    s, z = quant.scalar_scale(), quant.scalar_zero_point()
    v = np.asarray(x, dtype=np.float32) / np.float32(s)
    q = np.sign(v) * np.floor(np.abs(v) + 0.5) + z
    info = np.iinfo(dtype)
    return np.clip(q, info.min, info.max).astype(dtype)


def dequantize_array(q: np.ndarray, quant: Quant) -> np.ndarray:
    s, z = quant.scalar_scale(), quant.scalar_zero_point()
    return ((np.asarray(q, dtype=np.float64) - z) * s).astype(np.float32)
