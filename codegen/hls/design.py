"""The HLS view of a lowered graph: layers, their reuse factors and the buffers between them.

A layer computes `lanes` outputs per step (a dense row's units, a pixel's channels, a stream
word's elements). With reuse factor R the same hardware serves the lanes in R rounds of
ceil(lanes / R), so the layer needs about 1/R of the multipliers and takes R cycles per step.
A dense layer can go further: past one lane per round its dot product is split over rounds too.

Everything here is decided from shapes and constants alone, so the renderer, the resource
estimate and the lint all read the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from math import ceil
from typing import Any

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.ir.graph import Graph, Op, Tensor

IO_STYLES = ("parallel", "stream")

_ELTWISE = {"add", "sub", "mul", "quantize", "relu", "relu6", "logistic", "tanh"}
_WINDOWED = {"conv2d": "conv", "depthwise_conv2d": "dwconv", "max_pool2d": "maxpool",
             "avg_pool2d": "avgpool"}


@dataclass
class Value:
    """Data flowing between layers: one IR tensor, or several that share storage (reshapes)."""

    vid: str
    size: int
    word: int  # elements per stream beat and per memory word: the innermost dimension
    tensor: str

    @property
    def words(self) -> int:
        return self.size // self.word


@dataclass
class Layer:
    kind: str  # fc, conv, dwconv, maxpool, avgpool, eltwise, softmax, repack, fork
    name: str
    op: Op | None
    ins: list[str]  # value ids
    outs: list[str]
    p: dict[str, Any]  # shapes and integer constants for the templates and the estimate
    lanes: int = 1
    reuse: int = 1
    mult: str = "dsp"  # dsp | fabric: where the products go (fabric needs constant weights)
    cache: dict[str, Any] = field(default_factory=dict)  # estimate figures that do not change

    @property
    def has_weights(self) -> bool:
        return self.kind in ("fc", "conv", "dwconv")

    @property
    def constant_weights(self) -> bool:
        """At reuse 1 every weight is a constant of the unrolled datapath, not a ROM word."""
        return self.has_weights and self.reuse == 1

    # --- reuse ----------------------------------------------------------------------------

    def reuse_options(self) -> list[int]:
        """Every distinct reuse factor, ascending; others round to the next one down."""
        if self.kind in ("repack", "fork"):
            return [1]
        opts = {ceil(self.lanes / ceil(self.lanes / r)) for r in range(1, self.lanes + 1)}
        if self.kind == "fc":
            k = self.p["K"]
            opts |= {self.lanes * ceil(k / kb) for kb in range(1, k + 1)}
        return sorted(opts)

    def set_reuse(self, requested: int) -> None:
        opts = self.reuse_options()
        self.reuse = max([r for r in opts if r <= max(1, requested)] or [1])
        if self.mult == "fabric" and not self.constant_weights:
            self.mult = "dsp"

    @property
    def rounds_lanes(self) -> int:
        """RL: rounds over the output lanes."""
        return min(self.reuse, self.lanes)

    @property
    def rounds_depth(self) -> int:
        """RK: rounds over a dense layer's dot product (1 unless reuse exceeds the lanes)."""
        return self.reuse // self.rounds_lanes if self.kind == "fc" else 1

    @property
    def ub(self) -> int:
        """Lanes computed per round."""
        return ceil(self.lanes / self.rounds_lanes)

    @property
    def kb(self) -> int:
        """Dot-product terms per lane per round (dense layers)."""
        return ceil(self.p["K"] / self.rounds_depth) if self.kind == "fc" else 0

    @property
    def tb(self) -> int:
        """Window taps gathered per round (windowed layers)."""
        return ceil(self.p["TAPS"] / self.reuse) if self.kind in _WINDOWED.values() else 0

    @property
    def mem_ii(self) -> int:
        """Cycles per round forced by reading the window: two pixels per cycle, dual port."""
        if self.kind not in _WINDOWED.values():
            return 1
        return max(1, ceil(self.tb / 2))

    @property
    def products_per_lane(self) -> int:
        if self.kind == "fc":
            return self.kb
        if self.kind == "conv":
            return self.p["TAPS"] * self.p["IC"]
        if self.kind == "dwconv":
            return self.p["TAPS"]
        return 0


@dataclass
class Design:
    name: str
    graph: Graph
    io: str
    layers: list[Layer]
    values: dict[str, Value]
    inputs: list[str]  # value ids, in graph input order
    outputs: list[str]


# --- buffers and storage ------------------------------------------------------------------------


@dataclass(frozen=True)
class Storage:
    impl: str  # reg | lutram | srl | bram
    bram18: int = 0
    lut: int = 0


# 18 Kb block RAM aspect ratios (depth, width); a wider or deeper memory uses several.
_BRAM18_SHAPES = ((16384, 1), (8192, 2), (4096, 4), (2048, 9), (1024, 18), (512, 36))


def bram18_count(width: int, depth: int) -> int:
    return min(ceil(depth / d) * ceil(width / w) for d, w in _BRAM18_SHAPES)


def memory_storage(width: int, depth: int) -> Storage:
    """Where an array of `depth` words of `width` bits goes: registers, LUT RAM or block RAM."""
    if depth <= 1:
        return Storage("reg")
    if depth <= 64 or width * depth <= 1024:
        return Storage("lutram", lut=width * ceil(depth / 64))
    return Storage("bram", bram18=bram18_count(width, depth))


def fifo_storage(width: int, depth: int) -> Storage:
    if depth <= 2:
        return Storage("reg")
    if depth <= 128:
        return Storage("srl", lut=width * ceil(depth / 32))
    return Storage("bram", bram18=bram18_count(width, depth))


@dataclass
class Buf:
    var: str  # C identifier
    value: Value
    role: str  # input | output | local
    depth: int = 2  # FIFO depth (stream style)


@dataclass
class Step:
    layer: Layer
    ins: list[Buf]
    outs: list[Buf]
    fn: str


@dataclass
class Assembly:
    design: Design
    schedule: str  # pipeline (one II=1 pipeline, layers inlined) | dataflow
    steps: list[Step]
    bufs: list[Buf]

    @property
    def top_inputs(self) -> list[Buf]:
        return [b for b in self.bufs if b.role == "input"]

    @property
    def top_outputs(self) -> list[Buf]:
        return [b for b in self.bufs if b.role == "output"]

    @property
    def locals(self) -> list[Buf]:
        return [b for b in self.bufs if b.role == "local"]


# --- building the design ------------------------------------------------------------------------


def _word(t: Tensor) -> int:
    return int(t.shape[-1]) if t.shape and t.shape[-1] > 0 else 1


def _const(graph: Graph, q: dict[str, Any], key: str, n: int) -> np.ndarray:
    """A lowered per-channel constant, or the scalar broadcast to n channels."""
    v = q[key]
    if isinstance(v, str):
        data = graph.tensor(v).data
        assert data is not None
        return data.astype(np.int64).reshape(-1)
    return np.full(n, int(v), dtype=np.int64)


def _acc_bits(bound: int) -> int:
    """Bits of a signed accumulator that holds every partial sum exactly, at most 32.

    Any partial sum is bounded by the sum of the absolute values of its terms, so no order of
    accumulation overflows it. Past 32 bits the int32 of the MCU code would wrap, and so does
    a 32-bit accumulator, identically.
    """
    return min(32, int(bound).bit_length() + 1)


class _Builder:
    def __init__(self, graph: Graph, name: str, io: str) -> None:
        self.graph = graph
        self.name = name
        self.io = io
        self.values: dict[str, Value] = {}
        self.of_tensor: dict[str, str] = {}
        self.layers: list[Layer] = []
        self.problems: list[str] = []

    def new_value(self, tensor: str, size: int, word: int) -> str:
        vid = f"v{len(self.values)}"
        self.values[vid] = Value(vid, size, word, tensor)
        return vid

    def value_of(self, tname: str) -> str:
        if tname not in self.of_tensor:
            t = self.graph.tensor(tname)
            self.of_tensor[tname] = self.new_value(tname, t.size, _word(t))
        return self.of_tensor[tname]

    def with_word(self, vid: str, word: int, name: str) -> str:
        """The value re-laid out with `word` elements per beat (a repack layer), if needed."""
        v = self.values[vid]
        if v.word == word:
            return vid
        out = self.new_value(v.tensor, v.size, word)
        self.layers.append(Layer("repack", f"{name}_repack", None, [vid], [out], {}))
        return out

    def build(self) -> Design:
        g = self.graph
        for tname in g.inputs + g.outputs:
            t = g.tensor(tname)
            if t.dtype != "int8":
                self.problems.append(
                    f"  graph {'input' if tname in g.inputs else 'output'} '{tname}' is "
                    f"{t.dtype}; HLS designs take and return int8"
                )
        inputs = [self.value_of(t) for t in g.inputs]
        for idx, op in enumerate(g.ops):
            try:
                self.add_op(op)
            except _Unsupported as exc:
                self.problems.append(f"  #{idx} {op.name}: {exc}")
        if self.problems:
            raise EdgekitError(
                f"{len(self.problems)} part(s) of the model have no HLS kernel:\n"
                + "\n".join(self.problems),
                self.graph.name,
                "see docs/hls.md for the operators the hls-vitis target supports",
            )
        outputs = [self.of_tensor[t] for t in g.outputs]
        return Design(self.name, g, self.io, self.layers, self.values, inputs, outputs)

    def add_op(self, op: Op) -> None:
        q = op.attrs.get("q", {})
        kind = op.kind
        # the HLS kernels are int8 throughout: 16x8 layers and packed int4 weights would be
        # generated as int8 arithmetic and silently differ from the reference
        for t in (self.graph.tensor(n) for n in op.inputs + op.outputs if n):
            if t.dtype in ("int16", "int4") and (t.dtype == "int4" or not t.is_const):
                raise _Unsupported(f"{t.dtype} tensor '{t.name}': HLS designs are int8 only")
        if q.get("acc64"):  # widened by the overflow pass: HLS accumulators are int32
            raise _Unsupported(f"layer {op.name} needs an int64 accumulator (docs/reliability.md)")
        if q.get("sum_cap"):  # split by the overflow pass: the HLS softmax has no row cap
            raise _Unsupported(f"softmax {op.name} sums over 511 terms (docs/reliability.md)")
        if kind == "fully_connected":
            self.add_fc(op, q)
        elif kind in _WINDOWED:
            self.add_windowed(op, q, _WINDOWED[kind])
        elif kind in _ELTWISE:
            self.add_eltwise(op, q)
        elif kind == "softmax":
            x = self.value_of(op.inputs[0])
            out = self.out_value(op)
            self.layers.append(Layer("softmax", op.name, op, [x], [out], dict(q),
                                     lanes=int(q["depth"])))
        elif kind == "reshape":
            self.add_reshape(op)
        else:
            raise _Unsupported(f"'{kind}' has no HLS kernel yet")

    def out_value(self, op: Op) -> str:
        t = op.outputs[0]
        if t in self.of_tensor:
            raise _Unsupported(f"tensor '{t}' is produced twice")
        return self.value_of(t)

    def add_reshape(self, op: Op) -> None:
        x = self.value_of(op.inputs[0])
        y = self.graph.tensor(op.outputs[0])
        word = _word(y)
        if self.values[x].word == word and op.outputs[0] not in self.graph.outputs:
            self.of_tensor[op.outputs[0]] = x  # same bytes, same beats: nothing to do
            return
        out = self.out_value(op)
        self.layers.append(Layer("repack", op.name, op, [x], [out], {}))

    def add_fc(self, op: Op, q: dict[str, Any]) -> None:
        g = self.graph
        w = g.tensor(op.inputs[1]).data
        assert w is not None
        b_, k, u = int(q["batches"]), int(q["depth"]), int(q["units"])
        x = self.with_word(self.value_of(op.inputs[0]), k, op.name)
        out = self.out_value(op)
        if self.values[out].word != u:
            raise _Unsupported(f"output rows of {self.values[out].word} values, expected {u}")
        weights = w.astype(np.int64) + int(q["filter_offset"])
        bias = _const(g, q, "bias", u)
        bound = int(np.max(np.abs(bias) + np.abs(weights).sum(axis=1) * 128))
        p = {
            "B": b_, "K": k, "U": u,
            "weights": weights,
            "wbits": 8 if q["filter_offset"] == 0 else 9,
            "bias": bias,
            "per_channel": bool(q["per_channel"]),
            "mult": _const(g, q, "multiplier", u),
            "shift": _const(g, q, "shift", u),
            "out_off": int(q["output_offset"]),
            "lo": int(q["act_min"]), "hi": int(q["act_max"]),
            "acc_bits": _acc_bits(bound),
            "xbits": 8,
        }
        self.layers.append(Layer("fc", op.name, op, [x], [out], p, lanes=u))

    def add_windowed(self, op: Op, q: dict[str, Any], kind: str) -> None:
        g = self.graph
        xt, yt = g.tensor(op.inputs[0]), g.tensor(op.outputs[0])
        if len(xt.shape) != 4 or len(yt.shape) != 4:
            raise _Unsupported("expects NHWC tensors")
        n, ih, iw, ic = (int(d) for d in xt.shape)
        _, oh, ow, oc = (int(d) for d in yt.shape)
        if kind in ("conv", "dwconv"):
            wt = g.tensor(op.inputs[1]).data
            assert wt is not None
            kh, kw = int(wt.shape[1]), int(wt.shape[2])
        else:
            kh, kw = (int(v) for v in op.attrs["filter"])
        sh, sw = (int(v) for v in op.attrs["stride"])
        dh, dw = (int(v) for v in op.attrs.get("dilation", (1, 1)))
        pt, pl = (int(v) for v in op.attrs["pad"])
        p: dict[str, Any] = {
            "N": n, "IH": ih, "IW": iw, "IC": ic, "OH": oh, "OW": ow, "OC": oc,
            "KH": kh, "KW": kw, "SH": sh, "SW": sw, "DH": dh, "DW": dw, "PT": pt, "PL": pl,
            "TAPS": kh * kw,
            "lo": int(q["act_min"]), "hi": int(q["act_max"]),
            # input rows a streaming line buffer must hold for one output row's windows
            "NR": min(ih, (kh - 1) * dh + 1),
        }
        if kind in ("conv", "dwconv"):
            in_off = int(q["input_offset"])
            xmax = max(abs(-128 + in_off), abs(127 + in_off))
            bias = _const(g, q, "bias", oc)
            if kind == "conv":
                weights = wt.astype(np.int64).reshape(oc, kh * kw * ic)
            else:
                weights = wt.astype(np.int64).reshape(kh * kw, oc).T.copy()
                p["M"] = int(op.attrs.get("depth_multiplier", 1)) or 1
            bound = int(np.max(np.abs(bias) + np.abs(weights).sum(axis=1) * xmax))
            p.update(
                weights=weights, wbits=8, bias=bias,
                mult=_const(g, q, "multiplier", oc), shift=_const(g, q, "shift", oc),
                per_channel=True, in_off=in_off, out_off=int(q["output_offset"]),
                acc_bits=_acc_bits(bound), xbits=9,
            )
        elif kind == "avgpool":
            p["acc_bits"] = _acc_bits(128 * kh * kw)
        x = self.value_of(op.inputs[0])
        out = self.out_value(op)
        if self.values[x].word != ic:
            x = self.with_word(x, ic, op.name)
        covers = kh - 1 - pt >= ih - 1 and kw - 1 - pl >= iw - 1 and dh == dw == 1
        if kind in ("maxpool", "avgpool") and oh == ow == 1 and covers:
            # every pixel is in the one window: a running per-channel sum or max, no window
            p.update(mode=kind[:3], count=ih * iw, acc_bits=_acc_bits(128 * ih * iw))
            kind = "gpool"
        self.layers.append(Layer(kind, op.name, op, [x], [out], p, lanes=oc))

    def add_eltwise(self, op: Op, q: dict[str, Any]) -> None:
        g = self.graph
        mode = {"relu6": "clamp"}.get(op.kind, op.kind)
        if op.kind in ("quantize", "relu"):
            if q.get("mode") != "requant":
                raise _Unsupported("only int8 -> int8 requantisation has an HLS kernel")
            mode = "requant"
        if op.kind in ("add", "sub", "mul") and q.get("broadcast") is not None:
            raise _Unsupported("broadcasting elementwise ops have no HLS kernel yet")
        y = g.tensor(op.outputs[0])
        ins: list[str] = []
        consts: list[np.ndarray | None] = []
        for tname in op.inputs[:2] if op.kind in ("add", "sub", "mul") else op.inputs[:1]:
            t = g.tensor(tname)
            if t.size != y.size:
                raise _Unsupported("operands of different sizes")
            if t.is_const:
                assert t.data is not None
                consts.append(t.data.astype(np.int64).reshape(-1))
            else:
                consts.append(None)
                ins.append(self.value_of(tname))
        if not ins:
            raise _Unsupported("every operand is a constant")
        out = self.out_value(op)
        word = self.values[out].word
        ins = [self.with_word(v, word, op.name) for v in ins]
        p = dict(q, mode=mode, consts=consts, word=word)
        self.layers.append(Layer("eltwise", op.name, op, ins, [out], p, lanes=word))


class _Unsupported(ValueError):
    pass


def build_design(graph: Graph, name: str, io: str = "parallel") -> Design:
    """The HLS layers of a lowered, fused graph; one error lists every unsupported op."""
    if io not in IO_STYLES:
        raise EdgekitError(f"unknown I/O style '{io}'", hint="use parallel or stream")
    if not graph.meta.get("lowered"):
        raise EdgekitError("the graph must be lowered first", graph.name)
    return _Builder(graph, name, io).build()


# --- assembly: schedule, forks and buffers --------------------------------------------------


def pipelined_top(design: Design) -> bool:
    """Whether the whole design can be one II=1 pipeline (layers inlined, no DATAFLOW).

    That needs parallel I/O, every value in one word (one register bank) and every layer doing
    its whole job in one step at reuse 1: small dense networks, the latency-critical case.
    """
    return (
        design.io == "parallel"
        and all(
            design.values[v].words == 1 for layer in design.layers for v in layer.ins + layer.outs
        )
        and all(
            layer.kind in ("fc", "eltwise", "softmax", "repack") and layer.reuse == 1
            for layer in design.layers
        )
    )


def assemble(design: Design) -> Assembly:
    """Decide the schedule, add forks where a value has several readers, name every buffer."""
    values = design.values
    schedule = "pipeline" if pipelined_top(design) else "dataflow"

    readers: dict[str, list[tuple[int, int]]] = {}
    for li, layer in enumerate(design.layers):
        for slot, v in enumerate(layer.ins):
            readers.setdefault(v, []).append((li, slot))
    out_slots: dict[str, list[int]] = {}
    for k, v in enumerate(design.outputs):
        out_slots.setdefault(v, []).append(k)

    bufs: list[Buf] = []
    counter = [0]

    def local(v: str) -> Buf:
        b = Buf(f"t{counter[0]}", values[v], "local")
        counter[0] += 1
        bufs.append(b)
        return b

    in_buf: dict[tuple[int, int], Buf] = {}  # (layer, slot) -> buffer the layer reads
    out_buf: dict[str, Buf] = {}  # value -> buffer its producer (or the top input) writes
    forks: dict[str, Step] = {}  # value -> fork that follows its producer

    for k, v in enumerate(design.inputs):
        out_buf[v] = Buf(f"in{k}", values[v], "input")
        bufs.append(out_buf[v])
    output_bufs = {k: Buf(f"out{k}", values[v], "output") for k, v in enumerate(design.outputs)}
    bufs.extend(output_bufs[k] for k in sorted(output_bufs))

    produced = {v for layer in design.layers for v in layer.outs}
    for v in list(values):
        rs, outs = readers.get(v, []), out_slots.get(v, [])
        if not rs and not outs:
            if v in produced:
                # a FIFO nobody reads would stall its producer in hardware
                raise EdgekitError(
                    f"tensor '{values[v].tensor}' is computed but never used",
                    design.graph.name,
                    "remove the dead operator from the model, or make the tensor an output",
                )
            continue
        if v in produced and not rs and len(outs) == 1:
            out_buf[v] = output_bufs[outs[0]]
            continue
        need_fork = bool(outs) or (schedule == "dataflow" and len(rs) > 1)
        if v in produced:
            out_buf[v] = local(v)
        if not need_fork:
            for r in rs:
                in_buf[r] = out_buf[v]
            continue
        fork_outs: list[Buf] = []
        for r in rs:
            b = local(v)
            # a branch may have to hold the whole value while the other one fills its window
            b.depth = max(2, values[v].words) if len(rs) + len(outs) > 1 else 2
            in_buf[r] = b
            fork_outs.append(b)
        fork_outs.extend(output_bufs[k] for k in outs)
        layer = Layer("fork", f"fork_{values[v].vid}", None, [v], [], {"copies": len(fork_outs)})
        forks[v] = Step(layer, [out_buf[v]], fork_outs, "")

    steps: list[Step] = []
    for v in design.inputs:
        if v in forks:
            steps.append(forks.pop(v))
    for li, layer in enumerate(design.layers):
        ins = [in_buf[(li, s)] for s in range(len(layer.ins))]
        outs = [out_buf[v] for v in layer.outs]
        steps.append(Step(layer, ins, outs, ""))
        for v in layer.outs:
            if v in forks:
                steps.append(forks.pop(v))
    for i, step in enumerate(steps):
        step.fn = f"layer_{i}_{step.layer.kind}"
    used = {id(b) for s in steps for b in s.ins + s.outs}
    bufs = [b for b in bufs if id(b) in used or b.role != "local"]
    return Assembly(design, schedule, steps, bufs)
