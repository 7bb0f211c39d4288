"""What a training build trains: the tail of a compiled float model that ends in its last N
weighted layers.

`training_spec` reads a float graph that the fp16 pass has converted (and the memory planner
has placed), walks back from the output over the trainable tail and checks everything the
generated train step relies on. The tail is a chain of

* dense layers: fully_connected, and conv2d of any kernel, stride, dilation and padding (im2col
  turns it into the same matmul over the OH*OW output pixels; a 1x1 conv with stride 1 and no
  padding needs no im2col), with a fused activation none, relu or relu6 -- these are trained;
* depthwise_conv2d of any kernel, stride, dilation, padding and depth multiplier, with the same
  activations -- trained too;
* avg_pool2d and max_pool2d (a global average pool has its own cheaper kernel) and reshape --
  these have no weights but pass the gradient back;

optionally followed by the model's final softmax (the loss replaces it). Everything before the
first trained layer stays frozen and runs through the inference layers of <name>.c.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.ir.graph import Graph, Op
from edgekit.passes.fp16 import FLOAT_PRECISIONS

LOSSES = ("cross-entropy", "mse")
OPTIMIZERS = ("sgd",)
TRAINABLE_ACTIVATIONS = ("none", "relu", "relu6")
TAIL_KINDS = (
    "fully_connected, conv2d and depthwise_conv2d (any kernel, batch 1), avg_pool2d, "
    "max_pool2d, reshape, with fused activations none, relu or relu6"
)
WEIGHTED = ("fully_connected", "conv2d", "depthwise_conv2d")


@dataclass
class Optimizer:
    kind: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.0


@dataclass
class ConvGeom:
    """The im2col of a conv2d: input h x w x c, kernel kh x kw, stride, dilation, top/left pad,
    output oh x ow; row r = oy * ow + ox, column (ky * kw + kx) * c + ic (the filter order)."""

    h: int
    w: int
    c: int
    kh: int
    kw: int
    sh: int
    sw: int
    dh: int
    dw: int
    pt: int
    pl: int
    oh: int
    ow: int


@dataclass
class TailOp:
    """One op of the trainable tail, on flattened rows.

    dense:   x [rows][depth] -> y [rows][units], weights [units][depth] (the model's layout);
             with `conv` set, x is the image [h][w][c] and [rows][depth] its im2col
    depthwise: x the image [h][w][c] -> y [rows][units], rows = output pixels, units = c *
             multiplier, depth = the kh*kw taps, weights [units][taps]
    avgpool: x [rows][units] -> y [units], rows = the pooled pixels (a global pool)
    pool:    `pool` "avg" or "max" over a window: x [h][w][c] -> y [rows][units], depth = taps
    reshape: x [units] -> y [units], a copy
    """

    kind: str  # "dense", "depthwise", "avgpool", "pool" or "reshape"
    index: int  # position in graph.ops
    name: str
    rows: int
    depth: int
    units: int
    activation: str = "none"
    weights: np.ndarray | None = None  # dense: [units][depth], storage dtype, initial values
    bias: np.ndarray | None = None  # dense: [units]
    source: str = ""  # the model op kind it came from
    conv: ConvGeom | None = None  # dense: set when the input needs im2col; depthwise, pool: set
    mult: int = 1  # depthwise: the depth multiplier
    pool: str = ""  # pool: "avg" or "max"

    @property
    def in_size(self) -> int:
        if self.conv is not None:
            return self.conv.h * self.conv.w * self.conv.c
        if self.kind == "dense":
            return self.rows * self.depth
        if self.kind == "avgpool":
            return self.rows * self.units
        return self.units

    @property
    def out_size(self) -> int:
        return self.units if self.kind in ("avgpool", "reshape") else self.rows * self.units

    @property
    def trained(self) -> bool:
        return self.kind in ("dense", "depthwise")

    @property
    def macs(self) -> int:
        return self.rows * self.depth * self.units if self.trained else 0


@dataclass
class TrainSpec:
    graph: Graph
    precision: str
    loss: str
    optimizer: Optimizer
    tail: list[TailOp]
    feature: str  # tensor feeding the first trained layer
    frozen_ops: int  # graph ops before the first trained layer
    frozen_active: int  # of those, layers that generate code (run_layer indices)
    feature_offset: int  # byte offset of `feature` in the inference arena
    trailing_softmax: bool
    dtype: Any = field(default=None)

    @property
    def layers(self) -> list[TailOp]:
        """The trained layers (dense, depthwise), in model order."""
        return [t for t in self.tail if t.trained]

    @property
    def outputs(self) -> int:
        return self.tail[-1].out_size

    @property
    def parameter_count(self) -> int:
        return sum(t.units * (t.depth + 1) for t in self.layers)


def parse_optimizer(text: str) -> Optimizer:
    """`sgd`, `sgd:lr=0.01`, `sgd:lr=0.05,momentum=0.9`."""
    where = f"--optimizer {text}"
    kind, _, rest = text.partition(":")
    kind = kind.strip().lower()
    if kind not in OPTIMIZERS:
        raise EdgekitError(
            f"unknown optimizer '{kind}'", where, "use sgd, e.g. sgd:lr=0.01,momentum=0.9"
        )
    opt = Optimizer(kind)
    seen: set[str] = set()
    for item in (p.strip() for p in rest.split(",")) if rest else ():
        key, eq, value = item.partition("=")
        key = key.strip().lower()
        if not eq or key not in ("lr", "momentum") or key in seen:
            raise EdgekitError(
                f"bad optimizer option '{item}'",
                where,
                "sgd takes lr=<float> and momentum=<float>, each at most once",
            )
        seen.add(key)
        try:
            v = float(value)
        except ValueError:
            raise EdgekitError(f"{key} must be a number, not '{value.strip()}'", where) from None
        setattr(opt, key, v)
    if not (np.isfinite(opt.lr) and opt.lr > 0):
        raise EdgekitError(f"learning rate {opt.lr:g} must be a positive number", where)
    if not (np.isfinite(opt.momentum) and 0 <= opt.momentum < 1):
        raise EdgekitError(f"momentum {opt.momentum:g} must lie in [0, 1)", where)
    return opt


def check_constants(opt: Optimizer, dtype: Any, where: str) -> None:
    """The update rule's constants are rounded once to the storage format; they must not
    vanish there (an lr below 2^-24 is 0 in binary16 and the step would train nothing)."""
    for key in ("lr", "momentum"):
        v = getattr(opt, key)
        if v and np.asarray(v).astype(dtype) == 0:
            raise EdgekitError(
                f"{key} {v:g} rounds to 0 in {np.dtype(dtype).name}", where, "use a larger value"
            )


def _params(graph: Graph, op: Op, where: str) -> tuple[str, np.ndarray, np.ndarray]:
    """(activation, weights, bias) of a layer that will be trained."""
    act = op.attrs.get("activation", "none")
    if act not in TRAINABLE_ACTIVATIONS:
        raise EdgekitError(
            f"layer {op.name}: activation '{act}' has no backward kernel",
            where,
            f"trained layers may use {', '.join(TRAINABLE_ACTIVATIONS)}; use a smaller "
            "--train-last",
        )
    w = graph.tensor(op.inputs[1]).data
    b = graph.tensor(op.attrs["q"]["bias"]).data
    assert w is not None and b is not None
    return act, w, b


def _geom(graph: Graph, op: Op, kh: int, kw: int, where: str) -> ConvGeom:
    n, h, w, c = graph.tensor(op.inputs[0]).shape
    _, oh, ow, _ = graph.tensor(op.outputs[0]).shape
    if n != 1:
        raise EdgekitError(
            f"layer {op.name}: a {op.kind} can be trained with batch 1 only, not {n}", where
        )
    sh, sw = op.attrs.get("stride", [1, 1])
    dh, dw = op.attrs.get("dilation", [1, 1])
    pt, pl = op.attrs.get("pad", [0, 0])
    return ConvGeom(h, w, c, kh, kw, sh, sw, dh, dw, pt, pl, oh, ow)


def _dense(graph: Graph, op: Op, where: str) -> TailOp:
    act, w, b = _params(graph, op, where)
    geom: ConvGeom | None = None
    if op.kind == "fully_connected":
        q = op.attrs["q"]
        rows, depth, units = int(q["batches"]), int(q["depth"]), int(q["units"])
    else:
        units, kh, kw, c = w.shape
        conv = _geom(graph, op, kh, kw, where)
        rows, depth = conv.oh * conv.ow, kh * kw * c
        # a 1x1 conv with stride 1 and no padding reads its input rows as they are
        if (kh, kw, conv.sh, conv.sw, conv.pt, conv.pl) != (1, 1, 1, 1, 0, 0):
            geom = conv
    return TailOp(
        "dense", -1, op.name, rows, depth, units, act,
        np.ascontiguousarray(w.reshape(units, depth)), b.reshape(-1).copy(), op.kind, geom,
    )  # fmt: skip


def _depthwise(graph: Graph, op: Op, where: str) -> TailOp:
    act, w, b = _params(graph, op, where)
    _, kh, kw, oc = w.shape
    geom = _geom(graph, op, kh, kw, where)
    mult = int(op.attrs.get("depth_multiplier", 1))
    return TailOp(
        "depthwise", -1, op.name, geom.oh * geom.ow, kh * kw, oc, act,
        np.ascontiguousarray(w.reshape(kh * kw, oc).T), b.reshape(-1).copy(), op.kind, geom,
        mult,
    )  # fmt: skip


def _pool(graph: Graph, op: Op, where: str) -> TailOp:
    n, h, w, c = graph.tensor(op.inputs[0]).shape
    out = graph.tensor(op.outputs[0]).shape
    act = op.attrs.get("activation", "none")  # a standalone ReLU after a pool is fused here
    if act not in TRAINABLE_ACTIVATIONS:
        raise EdgekitError(
            f"layer {op.name}: activation '{act}' on {op.kind} has no backward kernel",
            where,
            f"the tail may use {', '.join(TRAINABLE_ACTIVATIONS)}; use a smaller --train-last",
        )
    kind = "max" if op.kind == "max_pool2d" else "avg"
    if kind == "avg" and list(op.attrs["filter"]) == [h, w] and tuple(out[1:3]) == (1, 1):
        if n != 1:
            raise EdgekitError(f"layer {op.name}: pools can be trained with batch 1 only", where)
        return TailOp("avgpool", -1, op.name, h * w, c, c, act, source=op.kind)
    fh, fw = op.attrs["filter"]
    geom = _geom(graph, op, fh, fw, where)
    geom.dh = geom.dw = 1
    rows = geom.oh * geom.ow
    return TailOp("pool", -1, op.name, rows, fh * fw, c, act, source=op.kind, conv=geom, pool=kind)


def training_spec(
    graph: Graph, offsets: dict[str, int], active: list[bool], train_last: int, loss: str,
    optimizer: Optimizer, where: str = "",
) -> TrainSpec:  # fmt: skip
    """The trainable tail of a converted float graph; `active[i]`: op i generates code."""
    where = where or graph.name
    precision = graph.meta.get("precision", "int8")
    if precision not in FLOAT_PRECISIONS:
        raise EdgekitError(
            "training needs a float build", where, "pass --precision fp16 or --precision fp32"
        )
    if loss not in LOSSES:
        raise EdgekitError(f"unknown loss '{loss}'", where, f"use one of: {', '.join(LOSSES)}")
    if isinstance(train_last, bool) or not isinstance(train_last, int) or train_last < 1:
        raise EdgekitError(f"--train-last must be a positive integer, not {train_last!r}", where)
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise EdgekitError("training needs a model with one input and one output", where)
    ops = graph.ops
    end = len(ops)
    trailing_softmax = bool(ops) and ops[-1].kind == "softmax"
    if trailing_softmax:
        end -= 1
    n_dense_total = sum(op.kind in WEIGHTED for op in ops[:end])
    tail: list[TailOp] = []
    dense = 0
    i = end - 1
    while i >= 0 and dense < train_last:
        op = ops[i]
        if op.kind in ("fully_connected", "conv2d"):
            t = _dense(graph, op, where)
            dense += 1
        elif op.kind == "depthwise_conv2d":
            t = _depthwise(graph, op, where)
            dense += 1
        elif op.kind in ("avg_pool2d", "max_pool2d"):
            t = _pool(graph, op, where)
        elif op.kind == "reshape":
            t = TailOp("reshape", -1, op.name, 1, graph.tensor(op.inputs[0]).size,
                       graph.tensor(op.inputs[0]).size, source=op.kind)  # fmt: skip
        else:
            if dense == 0:
                hint = (
                    "on-device training covers a tail of dense layers (" + TAIL_KINDS + ") "
                    "before the output"
                )
            else:
                hint = f"use --train-last {dense} (the tail starts after {op.name})"
            raise EdgekitError(
                f"--train-last {train_last}: layer {op.name} ({op.kind}) lies in the trainable "
                "tail and has no backward kernel",
                where,
                hint + f"; the tail may hold {TAIL_KINDS}",
            )
        t.index = i
        tail.append(t)
        i -= 1
    if dense < train_last:
        raise EdgekitError(
            f"--train-last {train_last} is larger than the {n_dense_total} trainable layer(s) "
            "of the model",
            where,
            f"use --train-last {max(dense, 1)} or less",
        )
    tail.reverse()
    for prev, cur in zip(tail, tail[1:], strict=False):
        src = ops[cur.index].inputs[0]
        if src != ops[prev.index].outputs[0] or prev.out_size != cur.in_size:
            raise EdgekitError(
                f"layer {cur.name} does not read the output of {prev.name}: only a chain of "
                "layers can be trained",
                where,
            )
    last = tail[-1]
    if loss == "cross-entropy" and last.trained and last.activation != "none":
        raise EdgekitError(
            f"cross-entropy needs logits, but the last layer {last.name} applies {last.activation}",
            where,
            "train a model whose last layer has no activation, or use --loss mse",
        )
    first = tail[0].index
    feature = ops[first].inputs[0]
    assert tail[0].weights is not None
    dtype = tail[0].weights.dtype
    check_constants(optimizer, dtype, where)
    return TrainSpec(
        graph, precision, loss, optimizer, tail, feature, first,
        sum(active[:first]), offsets[feature], trailing_softmax, dtype,
    )  # fmt: skip


def c_safe(name: str) -> str:
    return re.sub(r"[^0-9A-Za-z_]", "_", name)
