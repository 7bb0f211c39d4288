"""A numpy float32 executor of the float IR: calibration statistics and the float side of SQNR.

Every activation carries a leading batch axis in front of its IR shape, so a whole calibration
chunk runs through each op at once; convolutions are an im2col matrix product. Constant int8
weights with quantization (weight-only "hybrid" TFLite models) are dequantized once, so the float
model means the dequantized weights, not TFLite's hybrid kernels (which also quantize inputs).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from numpy.lib.stride_tricks import as_strided

from edgekit.errors import EdgekitError
from edgekit.ir.graph import Graph, Op, Tensor
from edgekit.passes.lower import strided_slice_indices

Observer = Callable[[str, np.ndarray], None]

_ACT: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "none": lambda x: x,
    "relu": lambda x: np.maximum(x, np.float32(0)),
    "relu6": lambda x: np.clip(x, np.float32(0), np.float32(6)),
    "relu_n1_to_1": lambda x: np.clip(x, np.float32(-1), np.float32(1)),
}


def dequantized(t: Tensor) -> np.ndarray:
    """A constant's real values as float32 (integer data is read through its quantization)."""
    assert t.data is not None
    if t.quant is None or t.dtype in ("float32", "float16"):
        return t.data.astype(np.float32)
    q = t.quant
    shape = [1] * t.data.ndim
    if q.per_channel:
        assert q.axis is not None
        shape[q.axis] = -1
    scale = q.scale.astype(np.float64).reshape(shape)
    zp = q.zero_point.astype(np.float64).reshape(shape)
    return (scale * (t.data.astype(np.float64) - zp)).astype(np.float32)


def _windows(x: np.ndarray, op: Op, out_hw: tuple[int, int], kernel: tuple[int, int],
             fill: float) -> np.ndarray:
    """(B, OH, OW, KH, KW, C) view of the taps of every output position, padded with `fill`."""
    b, h, w, ch = x.shape
    sh, sw = op.attrs["stride"]
    dh, dw = op.attrs.get("dilation", [1, 1])
    pt, pl = op.attrs["pad"]
    oh, ow = out_hw
    kh, kw = kernel
    pb = max(0, (oh - 1) * sh + (kh - 1) * dh + 1 - h - pt)
    pr = max(0, (ow - 1) * sw + (kw - 1) * dw + 1 - w - pl)
    if pt or pl or pb or pr:
        x = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)), constant_values=fill)
    s = x.strides
    return as_strided(
        x, (b, oh, ow, kh, kw, ch), (s[0], s[1] * sh, s[2] * sw, s[1] * dh, s[2] * dw, s[3]),
        writeable=False,
    )


class FloatModel:
    """Runs a float IR graph. Inputs and outputs are batches: arrays of shape (B, *IR shape)."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.consts: dict[str, np.ndarray] = {
            n: dequantized(t) for n, t in graph.tensors.items() if t.is_const
        }
        problems = [f"  #{i} {op.name}" for i, op in enumerate(graph.ops) if op.kind not in _OPS]
        if problems:
            raise EdgekitError(
                "the float reference cannot run these op(s):\n" + "\n".join(problems),
                graph.name,
            )
        last: dict[str, int] = {}
        for i, op in enumerate(graph.ops):
            for t in op.inputs:
                if t:
                    last[t] = i
        keep = set(graph.outputs)
        self._free_after: list[list[str]] = [[] for _ in graph.ops]
        for t, i in last.items():
            if t not in keep and t not in self.consts:
                self._free_after[i].append(t)

    def run(self, inputs: Sequence[np.ndarray], observe: Observer | None = None
            ) -> list[np.ndarray]:
        g = self.graph
        if len(inputs) != len(g.inputs):
            raise EdgekitError(f"model takes {len(g.inputs)} input(s), got {len(inputs)}")
        env: dict[str, np.ndarray] = {}
        batch = None
        for name, arr in zip(g.inputs, inputs, strict=True):
            t = g.tensor(name)
            a = np.asarray(arr, dtype=np.float32)
            if a.shape[1:] != t.shape:
                raise EdgekitError(
                    f"input '{name}' must be a batch of shape (N, {', '.join(map(str, t.shape))})"
                    f", got {list(a.shape)}"
                )
            batch = a.shape[0]
            env[name] = a
            if observe is not None:
                observe(name, a)
        assert batch is not None
        for i, op in enumerate(g.ops):
            y = _OPS[op.kind](self, op, env, batch)
            out = g.tensor(op.outputs[0])
            y = np.asarray(y, dtype=np.float32).reshape((batch, *out.shape))
            env[op.outputs[0]] = y
            if observe is not None:
                observe(op.outputs[0], y)
            for t in self._free_after[i]:
                env.pop(t, None)
        return [env[t] for t in g.outputs]

    def value(self, name: str, env: dict[str, np.ndarray], batch: int, rank: int) -> np.ndarray:
        """An operand as (B or 1, *shape) of the given rank (without the batch axis)."""
        if name in self.consts:
            c = self.consts[name]
            return c.reshape((1,) * (rank - c.ndim + 1) + c.shape)
        a = env[name]
        return a.reshape((a.shape[0],) + (1,) * (rank - a.ndim + 1) + a.shape[1:])


def _shape(m: FloatModel, name: str) -> tuple[int, ...]:
    return m.graph.tensor(name).shape


def _x4(m: FloatModel, op: Op, env: dict[str, np.ndarray], batch: int) -> np.ndarray:
    x = env[op.inputs[0]]
    s = _shape(m, op.inputs[0])
    return x.reshape((batch * s[0], s[1], s[2], s[3]))


def _bias(m: FloatModel, op: Op, n: int) -> np.ndarray:
    if len(op.inputs) > 2 and op.inputs[2]:
        return m.consts[op.inputs[2]].reshape(-1)
    return np.zeros(n, np.float32)


def _conv(m: FloatModel, op: Op, env: dict[str, np.ndarray], batch: int) -> np.ndarray:
    x = _x4(m, op, env, batch)
    w = m.consts[op.inputs[1]]
    o, kh, kw, ci = w.shape
    ys = _shape(m, op.outputs[0])
    if (kh, kw) == (1, 1) and op.attrs["stride"] == [1, 1] and op.attrs["pad"] == [0, 0] and \
            ys[1:3] == x.shape[1:3]:
        cols = x.reshape(-1, ci)
    else:
        cols = _windows(x, op, (ys[1], ys[2]), (kh, kw), 0.0).reshape(-1, kh * kw * ci)
    y = cols @ w.reshape(o, -1).T + _bias(m, op, o)
    return _ACT[op.attrs.get("activation", "none")](y)


def _depthwise(m: FloatModel, op: Op, env: dict[str, np.ndarray], batch: int) -> np.ndarray:
    x = _x4(m, op, env, batch)
    w = m.consts[op.inputs[1]]
    _, kh, kw, co = w.shape
    mult = co // x.shape[3]
    if mult > 1:
        x = np.repeat(x, mult, axis=3)
    ys = _shape(m, op.outputs[0])
    win = _windows(x, op, (ys[1], ys[2]), (kh, kw), 0.0)
    y = np.zeros((x.shape[0], ys[1], ys[2], co), np.float32)
    for i in range(kh):
        for j in range(kw):
            y += win[:, :, :, i, j, :] * w[0, i, j]
    y += _bias(m, op, co)
    return _ACT[op.attrs.get("activation", "none")](y)


def _pool(m: FloatModel, op: Op, env: dict[str, np.ndarray], batch: int) -> np.ndarray:
    x = _x4(m, op, env, batch)
    ys = _shape(m, op.outputs[0])
    kernel = tuple(op.attrs["filter"])
    out_hw = (ys[1], ys[2])
    if op.kind == "max_pool2d":
        y = _windows(x, op, out_hw, kernel, -np.inf).max(axis=(3, 4))
    else:
        # taps in the padding are excluded from both the sum and the count, as in TFLite
        total = _windows(x, op, out_hw, kernel, 0.0).sum(axis=(3, 4), dtype=np.float32)
        ones = np.ones((1, x.shape[1], x.shape[2], 1), np.float32)
        count = _windows(ones, op, out_hw, kernel, 0.0).sum(axis=(3, 4))
        y = total / count
    return _ACT[op.attrs.get("activation", "none")](y)


def _fully_connected(m: FloatModel, op: Op, env: dict[str, np.ndarray], batch: int
                     ) -> np.ndarray:
    w = m.consts[op.inputs[1]]
    x = env[op.inputs[0]].reshape(-1, w.shape[1])
    y = x @ w.T + _bias(m, op, w.shape[0])
    return _ACT[op.attrs.get("activation", "none")](y)


def _binary(m: FloatModel, op: Op, env: dict[str, np.ndarray], batch: int) -> np.ndarray:
    rank = len(_shape(m, op.outputs[0]))
    a = m.value(op.inputs[0], env, batch, rank)
    b = m.value(op.inputs[1], env, batch, rank)
    y = a + b if op.kind == "add" else a - b if op.kind == "sub" else a * b
    return _ACT[op.attrs.get("activation", "none")](np.broadcast_to(y, (batch, *y.shape[1:])))


def _reshape(m: FloatModel, op: Op, env: dict[str, np.ndarray], batch: int) -> np.ndarray:
    return env[op.inputs[0]]


def _softmax(m: FloatModel, op: Op, env: dict[str, np.ndarray], batch: int) -> np.ndarray:
    x = env[op.inputs[0]] * np.float32(op.attrs.get("beta", 1.0))
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _unary(fn: Callable[[np.ndarray], np.ndarray]) -> Callable[..., np.ndarray]:
    def run(m: FloatModel, op: Op, env: dict[str, np.ndarray], batch: int) -> np.ndarray:
        return fn(env[op.inputs[0]])

    return run


def _logistic(x: np.ndarray) -> np.ndarray:
    # exp(-logaddexp(0, -x)) does not overflow for large |x|
    return np.exp(-np.logaddexp(np.float32(0), -x))


def _hard_swish(x: np.ndarray) -> np.ndarray:
    return x * np.clip(x + np.float32(3), 0, 6) / np.float32(6)


def _leaky_relu(m: FloatModel, op: Op, env: dict[str, np.ndarray], batch: int) -> np.ndarray:
    x = env[op.inputs[0]]
    return np.where(x >= 0, x, x * np.float32(op.attrs["alpha"]))


def _transpose_conv(m: FloatModel, op: Op, env: dict[str, np.ndarray], batch: int
                    ) -> np.ndarray:
    """Scatter each tap's products into an output large enough for every tap, then crop the
    window that starts at the leading pad."""
    x = _x4(m, op, env, batch)
    w = m.consts[op.inputs[1]]
    o, kh, kw, _ = w.shape
    n, h, wd, _ = x.shape
    ys = _shape(m, op.outputs[0])
    (sh, sw), (pt, pl) = op.attrs["stride"], op.attrs["pad"]
    full = np.zeros((n, max((h - 1) * sh + kh, pt + ys[1]), max((wd - 1) * sw + kw, pl + ys[2]), o),
                    np.float32)
    for i in range(kh):
        for j in range(kw):
            rows, cols = slice(i, i + (h - 1) * sh + 1, sh), slice(j, j + (wd - 1) * sw + 1, sw)
            full[:, rows, cols] += x @ w[:, i, j].T
    y = full[:, pt : pt + ys[1], pl : pl + ys[2]] + _bias(m, op, o)
    return _ACT[op.attrs.get("activation", "none")](y)


def _pad(m: FloatModel, op: Op, env: dict[str, np.ndarray], batch: int) -> np.ndarray:
    value = 0.0
    if len(op.inputs) > 2 and op.inputs[2]:
        value = float(m.consts[op.inputs[2]].reshape(-1)[0])
    pads = [(0, 0)] + [tuple(p) for p in op.attrs["paddings"]]
    return np.pad(env[op.inputs[0]], pads, constant_values=value)


def _concat(m: FloatModel, op: Op, env: dict[str, np.ndarray], batch: int) -> np.ndarray:
    parts = []
    for name in op.inputs:
        if name in m.consts:
            c = m.consts[name]
            parts.append(np.broadcast_to(c, (batch, *c.shape)))
        else:
            parts.append(env[name])
    y = np.concatenate(parts, axis=int(op.attrs["axis"]) + 1)
    return _ACT[op.attrs.get("activation", "none")](y)


def _mean(m: FloatModel, op: Op, env: dict[str, np.ndarray], batch: int) -> np.ndarray:
    axes = tuple(int(a) + 1 for a in op.attrs["axes"])
    return env[op.inputs[0]].mean(axis=axes, keepdims=bool(op.attrs.get("keep_dims")))


def _strided_slice(m: FloatModel, op: Op, env: dict[str, np.ndarray], batch: int) -> np.ndarray:
    x = env[op.inputs[0]]
    ranges, _ = strided_slice_indices(list(_shape(m, op.inputs[0])), op.attrs)
    for d, r in enumerate(ranges):
        x = np.take(x, np.asarray(list(r), dtype=np.int64), axis=d + 1)
    return x


def _dequantize(m: FloatModel, op: Op, env: dict[str, np.ndarray], batch: int) -> np.ndarray:
    t = m.graph.tensor(op.inputs[0])
    if t.is_const:
        return np.broadcast_to(m.consts[t.name], (batch, *t.shape))
    assert t.quant is not None
    return (env[t.name].astype(np.float64) - t.quant.scalar_zero_point()) * \
        t.quant.scalar_scale()


_OPS: dict[str, Callable[[FloatModel, Op, dict[str, np.ndarray], int], np.ndarray]] = {
    "conv2d": _conv,
    "depthwise_conv2d": _depthwise,
    "fully_connected": _fully_connected,
    "avg_pool2d": _pool,
    "max_pool2d": _pool,
    "add": _binary,
    "sub": _binary,
    "mul": _binary,
    "reshape": _reshape,
    "softmax": _softmax,
    "logistic": _unary(_logistic),
    "tanh": _unary(np.tanh),
    "relu": _unary(_ACT["relu"]),
    "relu6": _unary(_ACT["relu6"]),
    "pad": _pad,
    "concat": _concat,
    "mean": _mean,
    "strided_slice": _strided_slice,
    "dequantize": _dequantize,
    "leaky_relu": _leaky_relu,
    "hard_swish": _unary(_hard_swish),
    "transpose_conv": _transpose_conv,
}

SUPPORTED_KINDS = frozenset(_OPS)


def run_float(graph: Graph, inputs: Sequence[np.ndarray], chunk: int = 64) -> list[np.ndarray]:
    """Run batches through `graph` in chunks of `chunk` samples (bounded memory)."""
    model = FloatModel(graph)
    n = int(np.asarray(inputs[0]).shape[0])
    parts: list[list[np.ndarray]] = []
    for s in range(0, n, chunk):
        parts.append(model.run([np.asarray(a)[s : s + chunk] for a in inputs]))
    return [np.concatenate([p[k] for p in parts]) for k in range(len(graph.outputs))]
