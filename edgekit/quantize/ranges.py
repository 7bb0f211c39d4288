"""Range estimators (statistics -> [lo, hi]) and int8 quantization parameters from a range."""

from __future__ import annotations

import numpy as np

from edgekit.quantize.observers import TensorStats

METHODS = ("minmax", "percentile", "mse")
QMIN, QMAX = -128, 127
# A range narrower than this is widened: a scale of 0 is not a quantization.
MIN_SPAN = 1e-6


def asymmetric_params(lo: float, hi: float) -> tuple[float, int]:
    """(scale, zero point) covering [lo, hi] with real 0 exactly representable (TFLite's rule)."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    if hi - lo < MIN_SPAN:
        hi = lo + MIN_SPAN
    scale = float(np.float32((hi - lo) / (QMAX - QMIN)))
    zp = int(np.clip(np.round(QMIN - lo / scale), QMIN, QMAX))
    return scale, zp


def minmax(st: TensorStats) -> tuple[float, float]:
    return st.lo, st.hi


def percentile(st: TensorStats, pct: float = 99.99) -> tuple[float, float]:
    """Clip the extreme (100 - pct)% at each end, but never beyond the observed min and max."""
    cdf = np.cumsum(st.hist)
    total = cdf[-1]
    if total == 0 or st.radius == 0:
        return st.lo, st.hi
    width = 2.0 * st.radius / st.hist.size
    tail = total * (100.0 - pct) / 100.0
    lo_bin = int(np.searchsorted(cdf, tail, side="right"))
    hi_bin = int(np.searchsorted(cdf, total - tail, side="left"))
    lo = -st.radius + lo_bin * width
    hi = -st.radius + (hi_bin + 1) * width
    return max(st.lo, lo), min(st.hi, hi)


def mse(st: TensorStats, steps: int = 100) -> tuple[float, float]:
    """The range, shrunk from min/max by a common factor, with the least expected squared error
    after int8 rounding and clipping (estimated on histogram bin centres)."""
    if st.radius == 0 or st.count == 0:
        return st.lo, st.hi
    nz = np.nonzero(st.hist)[0]
    v = st.centers()[nz]
    n = st.hist[nz].astype(np.float64)
    best, best_err = (st.lo, st.hi), np.inf
    for alpha in np.linspace(1.0, 0.05, steps):
        lo, hi = st.lo * alpha, st.hi * alpha
        scale, zp = asymmetric_params(lo, hi)
        q = np.clip(np.round(v / scale) + zp, QMIN, QMAX)
        err = float(np.dot(n, (scale * (q - zp) - v) ** 2))
        if err < best_err:
            best, best_err = (lo, hi), err
    return best


def estimate(st: TensorStats, method: str, pct: float = 99.99) -> tuple[float, float]:
    if method == "minmax":
        return minmax(st)
    if method == "percentile":
        return percentile(st, pct)
    if method == "mse":
        return mse(st)
    raise ValueError(f"unknown range method '{method}' (use one of {', '.join(METHODS)})")
