"""Data-free activation ranges: per-channel mean and variance pushed through the float graph.

Where a BatchNormalization was folded into a layer, that layer's pre-activation output is
N(beta, gamma^2) per channel, straight from the BN parameters (the frontend records them in
`graph.meta["bn_stats"]`). Elsewhere the moments are propagated assuming independent inputs:
a layer's output mean is W·mean + b and its variance W²·var. A ReLU turns a Gaussian into a
rectified one (closed form). A tensor's range is mean ± k·std over its channels, clipped by its
activation. The input is taken as uniform over `input_range`.

Limits: independence makes variances shrink layer after layer where real activations are
correlated, so this is only trusted for short hops from a BatchNorm anchor (the quantizer uses
synthetic inputs instead when a graph has no BatchNorm statistics at all); pooling and padding
are treated as keeping the moments; real activations have heavier tails than a Gaussian, so k is
large (6) and resolution is lost to the tails. With real data, calibration is better.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from edgekit.ir.graph import Graph, Op
from edgekit.reference.float_ref import dequantized

_erf = np.frompyfunc(math.erf, 1, 1)


@dataclass
class Moments:
    mean: np.ndarray  # per channel (last axis), or one value for all
    var: np.ndarray

    def aggregate(self) -> Moments:
        """One mean and variance for all channels (a reshape that mixes channels)."""
        m = float(np.mean(self.mean))
        v = float(np.mean(self.var) + np.var(self.mean))
        return Moments(np.array([m]), np.array([v]))

    def channels(self, n: int) -> Moments:
        if self.mean.size == n:
            return self
        a = self if self.mean.size == 1 else self.aggregate()
        return Moments(np.full(n, a.mean[0]), np.full(n, a.var[0]))


def _phi(x: np.ndarray) -> np.ndarray:
    return np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)


def _cdf(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + _erf(x / math.sqrt(2)).astype(np.float64))


def _rectified(m: Moments) -> Moments:
    """Mean and variance of max(0, X) for X ~ N(mean, var), per channel."""
    sd = np.sqrt(np.maximum(m.var, 0.0))
    safe = np.where(sd > 0, sd, 1.0)
    # beyond 40 standard deviations the Gaussian tail is 0 in double precision anyway
    a = np.where(sd > 0, np.clip(m.mean / safe, -40.0, 40.0), np.sign(m.mean) * 40.0)
    cdf, pdf = _cdf(a), _phi(a)
    mean = m.mean * cdf + sd * pdf
    second = (m.mean**2 + m.var) * cdf + m.mean * sd * pdf
    return Moments(mean, np.maximum(second - mean**2, 0.0))


_CLAMP = {"none": (-np.inf, np.inf), "relu": (0.0, np.inf), "relu6": (0.0, 6.0),
          "relu_n1_to_1": (-1.0, 1.0)}


class _Propagation:
    def __init__(self, graph: Graph, sigmas: float) -> None:
        self.g = graph
        self.k = sigmas
        self.moments: dict[str, Moments] = {}
        self.ranges: dict[str, tuple[float, float]] = {}
        self.bn = graph.meta.get("bn_stats", {})

    def const(self, name: str) -> np.ndarray:
        return dequantized(self.g.tensor(name)).astype(np.float64)

    def set(self, name: str, pre: Moments, act: str) -> None:
        sd = np.sqrt(np.maximum(pre.var, 0.0))
        lo, hi = float(np.min(pre.mean - self.k * sd)), float(np.max(pre.mean + self.k * sd))
        a_lo, a_hi = _CLAMP[act]
        self.ranges[name] = (min(max(lo, a_lo), a_hi), max(min(hi, a_hi), a_lo))
        post = _rectified(pre) if act in ("relu", "relu6") else pre
        self.moments[name] = post

    def op(self, op: Op) -> None:
        x = self.moments.get(op.inputs[0]) if op.inputs[0] in self.moments else None
        out = op.outputs[0]
        act = op.attrs.get("activation", "none")
        k = op.kind
        if k in ("conv2d", "depthwise_conv2d", "fully_connected", "transpose_conv"):
            assert x is not None
            pre = self.bn_moments(op) or self.linear(op, x)
            self.set(out, pre, act)
        elif k in ("add", "sub", "mul"):
            a, b = (self.operand(n, out) for n in op.inputs[:2])
            if k == "mul":
                mean = a.mean * b.mean
                var = a.var * b.var + a.var * b.mean**2 + b.var * a.mean**2
            else:
                mean = a.mean + b.mean if k == "add" else a.mean - b.mean
                var = a.var + b.var
            self.set(out, self.bn_moments(op) or Moments(mean, var), act)
        elif k in ("relu", "relu6"):
            assert x is not None
            self.set(out, x, k)
        elif k == "softmax":
            n = self.g.tensor(out).shape[-1]
            self.set(out, Moments(np.full(n, 1.0 / n), np.zeros(n)), "none")
            self.ranges[out] = (0.0, 1.0)
        elif k in ("logistic", "tanh"):
            assert x is not None
            f = (lambda v: 1 / (1 + np.exp(-v))) if k == "logistic" else np.tanh
            slope = 0.25 if k == "logistic" else 1.0
            self.set(out, Moments(f(x.mean), x.var * slope**2), "none")
            self.ranges[out] = (0.0, 1.0) if k == "logistic" else (-1.0, 1.0)
        elif k == "concat":
            parts = [self.operand(n, out) for n in op.inputs]
            rank = len(self.g.tensor(out).shape)
            if int(op.attrs["axis"]) == rank - 1:
                sizes = [self.g.tensor(n).shape[-1] for n in op.inputs]
                mom = Moments(np.concatenate([p.channels(s).mean for p, s in zip(parts, sizes,
                                                                                  strict=True)]),
                              np.concatenate([p.channels(s).var for p, s in zip(parts, sizes,
                                                                                 strict=True)]))
            else:
                n = self.g.tensor(out).shape[-1]
                chans = [p.channels(n) for p in parts]
                mom = Moments(np.mean([c.mean for c in chans], axis=0),
                              np.mean([c.var for c in chans], axis=0))
            self.set(out, mom, act)
        else:
            # data movement and pooling: the moments go through; channels survive only when
            # the innermost axis does
            assert x is not None
            n = self.g.tensor(out).shape[-1] if self.g.tensor(out).shape else 1
            same = self.g.tensor(op.inputs[0]).shape[-1:] == self.g.tensor(out).shape[-1:]
            self.set(out, x if same else x.aggregate().channels(n), act)
            if act == "none" and op.inputs[0] in self.ranges:
                # values are copied (or averaged), never new: the input's range holds
                self.ranges[out] = self.ranges[op.inputs[0]]

    def operand(self, name: str, out: str) -> Moments:
        if name in self.moments:
            return self.moments[name]
        c = self.const(name)
        n = self.g.tensor(out).shape[-1] if self.g.tensor(out).shape else 1
        if c.ndim and c.shape[-1] == n:
            per = c.reshape(-1, n)
            return Moments(per.mean(axis=0), per.var(axis=0))
        return Moments(np.array([c.mean()]), np.array([c.var()]))

    def bn_moments(self, op: Op) -> Moments | None:
        st = self.bn.get(op.name)
        if not st:
            return None
        return Moments(np.asarray(st["mean"], np.float64), np.asarray(st["std"], np.float64) ** 2)

    def linear(self, op: Op, x: Moments) -> Moments:
        w = self.const(op.inputs[1])
        b = self.const(op.inputs[2]) if len(op.inputs) > 2 and op.inputs[2] else 0.0
        if op.kind == "conv2d":
            xi = x.channels(w.shape[3])
            return Moments(w.sum(axis=(1, 2)) @ xi.mean + b, (w**2).sum(axis=(1, 2)) @ xi.var)
        if op.kind == "transpose_conv":
            # each output pixel receives about kh * kw / (sh * sw) of the taps
            xi = x.channels(w.shape[3])
            share = 1.0 / float(np.prod(op.attrs["stride"]))
            return Moments(share * w.sum(axis=(1, 2)) @ xi.mean + b,
                           share * (w**2).sum(axis=(1, 2)) @ xi.var)
        if op.kind == "depthwise_conv2d":
            mult = int(op.attrs.get("depth_multiplier", 1))
            xi = x.channels(w.shape[3] // mult)
            mean, var = np.repeat(xi.mean, mult), np.repeat(xi.var, mult)
            return Moments(w.sum(axis=(0, 1, 2)) * mean + b, (w**2).sum(axis=(0, 1, 2)) * var)
        xi = x.channels(w.shape[1])
        return Moments(w @ xi.mean + b, (w**2) @ xi.var)


def propagate(graph: Graph, input_range: tuple[float, float] = (-1.0, 1.0), sigmas: float = 6.0
              ) -> tuple[dict[str, tuple[float, float]], dict[str, np.ndarray]]:
    """Ranges of every activation tensor and per-channel means (for bias correction)."""
    p = _Propagation(graph, sigmas)
    lo, hi = float(input_range[0]), float(input_range[1])
    for name in graph.inputs:
        p.moments[name] = Moments(np.array([(lo + hi) / 2]), np.array([(hi - lo) ** 2 / 12]))
        p.ranges[name] = (lo, hi)
    for op in graph.ops:
        p.op(op)
    return p.ranges, {n: m.mean for n, m in p.moments.items()}
