"""Small seeded int8 models for the HLS target's tests and benchmarks.

The network-intrusion-detection classifier is the kind of model FPGAs serve at line rate: a
dense 64-64-32-2 MLP over per-flow features, where the latency budget is tens of nanoseconds.
Weights are random but normalised on calibration data, so every layer's activations span their
int8 range and outputs depend on the input, as in a trained network.
"""

from __future__ import annotations

import numpy as np

from edgekit.frontends.tflite_writer import TFLiteBuilder

_CALIBRATION = 256


def _qparams(lo: float, hi: float) -> tuple[float, int]:
    """Asymmetric int8 scale and zero point for [lo, hi], widened to contain zero."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = float(np.float32(max(hi - lo, 1e-8) / 255.0))
    return scale, int(np.clip(np.round(-128 - lo / scale), -128, 127))


def build_ids_mlp(seed: int = 0, sizes: tuple[int, ...] = (64, 64, 32, 2)) -> bytes:
    """An int8 intrusion-detection-style MLP: features -> ReLU layers -> class logits."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 1.0, (_CALIBRATION, sizes[0])) * rng.uniform(0.5, 2.0, (_CALIBRATION, 1))
    b = TFLiteBuilder("edgekit intrusion-detection MLP")
    scale, zp = _qparams(float(x.min()), float(x.max()))
    cur = b.tensor("features", (1, sizes[0]), np.int8, scale=scale, zero_point=zp)
    first = cur
    last = len(sizes) - 2
    for n, (fan_in, units) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        w = rng.normal(0.0, np.sqrt(2.0 / fan_in), (units, fan_in))
        z = x @ w.T
        # folded batch-norm: unit-variance pre-activations, mostly (not all) positive
        gain = 1.0 / (z.std(axis=0) + 1e-6)
        w *= gain[:, None]
        bias = -z.mean(axis=0) * gain + rng.normal(0.3, 0.3, units) * (n < last)
        x = x @ w.T + bias
        if n < last:
            x = np.maximum(x, 0.0)
        w_scale = np.float32(max(np.abs(w).max(), 1e-12) / 127.0)
        wq = np.clip(np.round(w / w_scale), -127, 127).astype(np.int8)
        bias_scale = np.float32(np.float32(b.scale(cur)[0]) * w_scale)
        bq = np.round(bias / bias_scale).astype(np.int32)
        wt = b.const(f"dense_{n}/weights", wq, scale=w_scale, zero_point=0)
        bt = b.const(f"dense_{n}/bias", bq, scale=bias_scale, zero_point=0)
        s, z_ = _qparams(float(x.min()), float(x.max()))
        out = b.tensor(f"dense_{n}", (1, units), np.int8, scale=s, zero_point=z_)
        b.op("FULLY_CONNECTED", [cur, wt, bt], [out], activation="RELU" if n < last else "NONE")
        cur = out
    b.inputs([first])
    b.outputs([cur])
    return b.finish()
