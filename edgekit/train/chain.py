"""Small float32 graphs built layer by layer, for the training example, benchmark and tests.

Every layer reads the previous one's output; weights are random with variance 1/fan_in (the
values do not matter to bit-exactness or instruction counts, only that activations keep a
sensible range so ReLUs neither all die nor all pass).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgekit.ir.graph import Graph, Op, Tensor


def _out(size: int, k: int, stride: int, pad: int) -> int:
    return (size + 2 * pad - k) // stride + 1


class FloatChain:
    """A chain of float32 layers from one NHWC (or [1, features]) input."""

    def __init__(self, shape: tuple[int, ...], seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.tensors: dict[str, Tensor] = {"x": Tensor("x", tuple(shape), "float32", None, None)}
        self.ops: list[Op] = []
        self.cur = "x"

    @property
    def shape(self) -> tuple[int, ...]:
        return self.tensors[self.cur].shape

    def _const(self, shape: tuple[int, ...], fan_in: int, data: Any = None) -> str:
        name = f"c{len(self.tensors)}"
        if data is None:
            data = self.rng.normal(0.0, fan_in**-0.5, shape).astype(np.float32)
        self.tensors[name] = Tensor(name, tuple(shape), "float32", None, data)
        return name

    def _op(self, kind: str, ins: list[str], shape: tuple[int, ...], attrs: dict) -> None:
        y = f"a{len(self.ops)}"
        self.tensors[y] = Tensor(y, tuple(shape), "float32", None, None)
        self.ops.append(Op(kind, f"{kind}{len(self.ops)}", [self.cur, *ins], [y], attrs))
        self.cur = y

    def _window(self, k: int, stride: int, pad: int) -> tuple[int, int, dict[str, Any]]:
        _, h, w, _ = self.shape
        attrs = {"stride": [stride, stride], "dilation": [1, 1], "pad": [pad, pad]}
        return _out(h, k, stride, pad), _out(w, k, stride, pad), attrs

    def conv(
        self, oc: int, k: int | tuple[int, int], stride: int = 1, pad: int = 0, act: str = "relu"
    ) -> FloatChain:
        """conv2d, k x k (or kh x kw with pad applied to both), OHWI weights."""
        kh, kw = (k, k) if isinstance(k, int) else k
        n, h, w, ic = self.shape
        oh, ow = _out(h, kh, stride, pad), _out(w, kw, stride, pad)
        fan = kh * kw * ic
        ins = [self._const((oc, kh, kw, ic), fan), self._const((oc,), fan * 10)]
        attrs = {"stride": [stride, stride], "dilation": [1, 1], "pad": [pad, pad],
                 "activation": act}  # fmt: skip
        self._op("conv2d", ins, (n, oh, ow, oc), attrs)
        return self

    def dwconv(
        self, k: int, mult: int = 1, stride: int = 1, pad: int = 0, act: str = "relu"
    ) -> FloatChain:
        n, _, _, c = self.shape
        oh, ow, attrs = self._window(k, stride, pad)
        ins = [self._const((1, k, k, c * mult), k * k), self._const((c * mult,), k * k * 10)]
        attrs.update(activation=act, depth_multiplier=mult)
        self._op("depthwise_conv2d", ins, (n, oh, ow, c * mult), attrs)
        return self

    def pool(self, kind: str, k: int, stride: int, pad: int = 0, act: str = "none") -> FloatChain:
        """avg_pool2d or max_pool2d over k x k windows (`act`: a fused clamp after it)."""
        n, _, _, c = self.shape
        oh, ow, attrs = self._window(k, stride, pad)
        del attrs["dilation"]
        attrs.update(filter=[k, k], activation=act)
        self._op(kind, [], (n, oh, ow, c), attrs)
        return self

    def global_pool(self, act: str = "none") -> FloatChain:
        n, h, w, c = self.shape
        attrs = {"filter": [h, w], "stride": [1, 1], "pad": [0, 0], "activation": act}
        self._op("avg_pool2d", [], (n, 1, 1, c), attrs)
        return self

    def flatten(self) -> FloatChain:
        size = int(np.prod(self.shape))
        # the new shape as an attribute only (TFLite's options form): kernels read activations
        self._op("reshape", [], (1, size), {"shape": [1, size]})
        return self

    def fc(self, units: int, act: str = "none") -> FloatChain:
        depth = self.shape[-1]
        ins = [self._const((units, depth), depth), self._const((units,), depth * 10)]
        self._op("fully_connected", ins, (self.shape[0], units), {"activation": act})
        return self

    def softmax(self) -> FloatChain:
        self._op("softmax", [], self.shape, {"beta": 1.0})
        return self

    def graph(self, name: str) -> Graph:
        g = Graph(name, self.tensors, self.ops, ["x"], [self.cur], {"source_format": "edgekit"})
        g.validate()
        return g
