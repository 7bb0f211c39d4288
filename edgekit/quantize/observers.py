"""Per-tensor statistics gathered while the float model runs over the calibration data.

One pass is enough for every range estimator: exact min/max, plus a histogram whose range grows
by doubling (adjacent bins merge exactly), so no second pass over the data is needed once the
true extent is known. Tensors read by convolutions and dense layers also keep per-channel means,
which bias correction uses.
"""

from __future__ import annotations

import math

import numpy as np

BINS = 8192  # over [-R, R]; a bin is at most 1/2048 of the largest |value|, ~1/8 of an int8 step


class TensorStats:
    def __init__(self, channel_means: bool = False) -> None:
        self.lo = math.inf
        self.hi = -math.inf
        self.radius = 0.0
        self.hist = np.zeros(BINS, dtype=np.int64)
        self.count = 0
        self._chan_sum: np.ndarray | None = None
        self._chan_n = 0
        self._want_channels = channel_means

    def update(self, a: np.ndarray) -> None:
        flat = np.asarray(a, dtype=np.float32).reshape(-1)
        if flat.size == 0:
            return
        lo, hi = float(flat.min()), float(flat.max())
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise ValueError("the float model produced NaN or infinity")
        self.lo, self.hi = min(self.lo, lo), max(self.hi, hi)
        self._grow(max(abs(lo), abs(hi)))
        if self.radius > 0:
            scale = BINS / (2.0 * self.radius)
            idx = ((flat.astype(np.float64) + self.radius) * scale).astype(np.int64)
            np.clip(idx, 0, BINS - 1, out=idx)
            self.hist += np.bincount(idx, minlength=BINS)
        else:
            self.hist[BINS // 2] += flat.size
        self.count += flat.size
        if self._want_channels and a.ndim >= 2:
            chans = np.asarray(a, dtype=np.float64).reshape(-1, a.shape[-1])
            s = chans.sum(axis=0)
            self._chan_sum = s if self._chan_sum is None else self._chan_sum + s
            self._chan_n += chans.shape[0]

    def _grow(self, m: float) -> None:
        if m <= 0:
            return
        if self.radius == 0.0:
            if self.count:  # only zeros so far: they sit in the middle bin at any radius
                zeros = int(self.hist.sum())
                self.hist[:] = 0
                self.hist[BINS // 2] = zeros
            self.radius = 2.0 ** math.ceil(math.log2(m))
            return
        while m > self.radius:
            # bin i of [-R, R] is exactly half of bin (BINS/2 + i) // 2 of [-2R, 2R]
            merged = np.zeros(BINS, dtype=np.int64)
            merged[BINS // 4 : 3 * BINS // 4] = self.hist.reshape(-1, 2).sum(axis=1)
            self.hist = merged
            self.radius *= 2.0

    def centers(self) -> np.ndarray:
        width = 2.0 * self.radius / BINS
        return -self.radius + (np.arange(BINS) + 0.5) * width

    @property
    def channel_mean(self) -> np.ndarray | None:
        if self._chan_sum is None or self._chan_n == 0:
            return None
        return self._chan_sum / self._chan_n


class Collector:
    """The observe hook for FloatModel.run: one TensorStats per activation tensor."""

    def __init__(self, channel_tensors: set[str] | None = None) -> None:
        self.stats: dict[str, TensorStats] = {}
        self._channels = channel_tensors or set()

    def __call__(self, name: str, value: np.ndarray) -> None:
        st = self.stats.get(name)
        if st is None:
            st = self.stats[name] = TensorStats(name in self._channels)
        st.update(value)
