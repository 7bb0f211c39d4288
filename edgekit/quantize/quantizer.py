"""Post-training quantization: float IR graph + activation ranges -> int8 IR graph.

The result is what the TFLite frontend produces for a converter-quantized int8 model, so `lower`
and the code generator take it unchanged. TFLite conventions are followed: per-channel symmetric
convolution weights, asymmetric per-tensor int8 activations, int32 biases at scale
in_scale * w_scale, fixed output quantization for softmax/logistic/tanh, and ops that copy bytes
(pooling, reshape, pad, slice, concat, RELU6) sharing one quantization between input and output,
because their kernels do not rescale.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.ir.graph import Graph, Op, Quant, Tensor
from edgekit.progress import Progress
from edgekit.quantize import precision as prec
from edgekit.quantize import weights as wq
from edgekit.quantize.datafree import propagate
from edgekit.quantize.dataset import Calibration, Source
from edgekit.quantize.observers import Collector
from edgekit.quantize.ranges import METHODS, asymmetric_params, estimate
from edgekit.reference.float_ref import FloatModel, dequantized

LINEAR = {"conv2d", "depthwise_conv2d", "fully_connected", "transpose_conv"}
# Kernels that copy or compare stored values, so input and output must mean the same thing.
SAME_QUANT = {"avg_pool2d", "max_pool2d", "reshape", "pad", "strided_slice", "relu6", "concat"}
# TFLite's fixed output quantization: the int8 kernels write these formats whatever is declared.
FIXED = {"softmax": (1.0 / 256, -128), "logistic": (1.0 / 256, -128), "tanh": (1.0 / 128, 0)}
QUANTIZABLE = LINEAR | SAME_QUANT | set(FIXED) | {"add", "sub", "mul", "relu", "mean",
                                                   "leaky_relu", "hard_swish"}
WEIGHT_MODES = ("conv", "all", "none")  # which layers get per-channel weights


@dataclass
class QuantConfig:
    method: str = "minmax"
    percentile: float = 99.99
    # "conv": per-channel convolutions, per-tensor dense layers (what the TFLite converter
    # does); "all": dense layers per channel too; "none": per tensor everywhere
    per_channel: str = "conv"
    bias_correction: bool = False
    # data-free mode only
    sigmas: float = 6.0
    input_range: tuple[float, float] | None = None
    chunk: int = 32
    limit: int | None = None
    # cross-layer weight equalisation: "auto" tries it in data-free mode and keeps it when it
    # scores better on synthetic inputs; "on" always, "off" never (edgekit/quantize/equalize.py)
    equalize: str = "auto"
    # activation precision: "int8" everywhere, or "int16" (TFLite 16x8) on every layer that has
    # a 16x8 kernel; int16_layers picks layers for int16 on top of an int8 model
    act: str = "int8"
    int16_layers: tuple[str, ...] = ()
    # weight type of conv/depthwise/dense layers: "int8", or "int4" (packed two per byte,
    # symmetric [-7, 7] per channel) everywhere; int4_layers picks layers for int4
    weights: str = "int8"
    int4_layers: tuple[str, ...] = ()

    def check(self) -> None:
        if self.act not in ("int8", "int16"):
            raise EdgekitError(f"unknown activation type '{self.act}'", hint="int8 or int16")
        if self.weights not in ("int8", "int4"):
            raise EdgekitError(f"unknown weight type '{self.weights}'", hint="int8 or int4")
        if self.method not in METHODS:
            raise EdgekitError(f"unknown method '{self.method}'", hint="use " + ", ".join(METHODS))
        if self.per_channel not in WEIGHT_MODES:
            raise EdgekitError(f"unknown per-channel mode '{self.per_channel}'")
        if self.equalize not in ("auto", "on", "off"):
            raise EdgekitError(f"unknown equalize mode '{self.equalize}'", hint="auto, on or off")
        if not 50.0 < self.percentile <= 100.0:
            raise EdgekitError("the percentile must be in (50, 100]")


# --- the float graph ---------------------------------------------------------------------------


def prepare(graph: Graph, where: str = "") -> Graph:
    """A float copy ready for calibration; refuses quantized models and ops we cannot quantize."""
    g = copy.deepcopy(graph)
    problems: list[str] = []
    for t in g.activations():
        if t.dtype != "float32":
            raise EdgekitError(
                f"tensor '{t.name}' is {t.dtype}: the model is already quantized",
                where or g.name,
                "quantize takes float models; compile an int8 model directly with generate",
            )
    for idx, op in enumerate(list(g.ops)):
        if op.kind == "dequantize" and g.tensor(op.inputs[0]).is_const:
            # fp16 or int8 weights stored with a DEQUANTIZE: the float constant it makes
            out = g.tensor(op.outputs[0])
            out.data = dequantized(g.tensor(op.inputs[0])).reshape(out.shape)
            out.dtype = "float32"
            g.ops.remove(op)
            continue
        if op.kind not in QUANTIZABLE:
            problems.append(f"  #{idx} {op.name} ({op.kind})")
    if problems:
        raise EdgekitError(
            f"{len(problems)} operator(s) cannot be quantized:\n" + "\n".join(problems),
            where or g.name,
            "quantizable: " + ", ".join(sorted(QUANTIZABLE)),
        )
    for t in g.tensors.values():
        if t.is_const and t.dtype in ("int8", "uint8", "int16") and t.quant is not None:
            t.data, t.dtype, t.quant = dequantized(t), "float32", None
    return g


# --- activation ranges -------------------------------------------------------------------------


def calibrate(graph: Graph, data: Source | Calibration, cfg: QuantConfig,
              progress: bool | None = None
              ) -> tuple[dict[str, tuple[float, float]], dict[str, np.ndarray], int]:
    """Run the float graph over the data: (ranges, per-channel means, sample count)."""
    wanted = {op.inputs[0] for op in graph.ops if op.kind in LINEAR} if cfg.bias_correction \
        else set()
    collector = Collector(wanted)
    model = FloatModel(graph)
    cal = data if isinstance(data, Calibration) else Calibration(graph, data, cfg.chunk, cfg.limit)
    bar = Progress("calibrating", cal.total, progress, unit="samples")
    done = 0
    for batch in cal:
        try:
            model.run(batch, observe=collector)
        except ValueError as exc:
            raise EdgekitError(f"calibration failed: {exc}", cal.where) from None
        done += batch[0].shape[0]
        bar.update(done)
    bar.update(done, final=True)
    ranges: dict[str, tuple[float, float]] = {}
    for name, st in collector.stats.items():
        # inputs keep their full range: clipping them loses information no layer can restore
        method = "minmax" if name in graph.inputs else cfg.method
        ranges[name] = estimate(st, method, cfg.percentile)
    means = {n: st.channel_mean for n, st in collector.stats.items() if st.channel_mean is not None}
    return ranges, means, done


# --- quantization classes ------------------------------------------------------------------------


class _Classes:
    """Union-find over tensors that must share one quantization."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}
        self.fixed: dict[str, tuple[float, int]] = {}

    def find(self, t: str) -> str:
        self.parent.setdefault(t, t)
        while self.parent[t] != t:
            self.parent[t] = self.parent[self.parent[t]]
            t = self.parent[t]
        return t

    def union(self, a: str, b: str) -> bool:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return True
        fa, fb = self.fixed.get(ra), self.fixed.get(rb)
        if fa is not None and fb is not None and fa != fb:
            return False
        self.parent[rb] = ra
        if fb is not None:
            self.fixed[ra] = fb
        return True


def _assign(g: Graph, ranges: dict[str, tuple[float, float]], wide: frozenset[str] = frozenset()
            ) -> tuple[dict[str, Quant], dict[str, list[tuple[int, str]]]]:
    """Activation quantization per tensor, and requantizations to insert (op -> [(input index,
    new tensor name)]) where a shared quantization is impossible (two fixed formats meet)."""
    cls = _Classes()
    for op in g.ops:
        if op.kind in FIXED:
            cls.fixed[cls.find(op.outputs[0])] = FIXED[op.kind]
    requant: dict[str, list[tuple[int, str]]] = {}
    for op in g.ops:
        if op.kind not in SAME_QUANT:
            continue
        out = op.outputs[0]
        for i, name in enumerate(op.inputs if op.kind == "concat" else op.inputs[:1]):
            if g.tensor(name).is_const:
                continue
            if not cls.union(out, name):
                copy_name = f"{name}/requant_{op.name}"
                ranges[copy_name] = ranges.get(name, (0.0, 0.0))
                cls.union(out, copy_name)
                requant.setdefault(op.name, []).append((i, copy_name))
    members: dict[str, list[str]] = {}
    names = [t.name for t in g.activations()] + [c for v in requant.values() for _, c in v]
    for name in names:
        members.setdefault(cls.find(name), []).append(name)
    quant: dict[str, Quant] = {}
    for root, group in members.items():
        if root in cls.fixed:
            s, z = cls.fixed[root]
        else:
            known = [ranges[m] for m in group if m in ranges]
            if not known:
                raise EdgekitError(f"no range was observed for tensor '{group[0]}'", g.name)
            lo, hi = min(r[0] for r in known), max(r[1] for r in known)
            # int16 tensors (in `wide`) are symmetric: TFLite's 16x8 kernels have no zero points
            s, z = prec.symmetric_int16(lo, hi) if wide & set(group) else \
                asymmetric_params(lo, hi)
        q = Quant(np.array([s], np.float32), np.array([z], np.int64), None)
        for m in group:
            quant[m] = q
    _widen_add_outputs(g, quant, cls, wide)
    return quant, requant


def _widen_add_outputs(g: Graph, quant: dict[str, Quant], cls: _Classes,
                       wide: frozenset[str] = frozenset()) -> None:
    """TFLM's ADD asserts 2 * max(input scales) < 2^20 * output scale; a nearly constant output
    (a tiny range) can break it, so such an output's scale is raised to the limit."""
    for op in g.ops:
        if op.kind not in ("add", "sub"):
            continue
        scales = [quant[n].scalar_scale() if n in quant else 0.0 for n in op.inputs[:2]]
        out = op.outputs[0]
        shift = 15 if out in wide else 20  # TFLM pre-shifts int16 add inputs by 15 bits
        need = 2.0 * max(scales) / (1 << shift) * 1.01
        if quant[out].scalar_scale() < need and cls.find(out) not in cls.fixed:
            zp = quant[out].scalar_zero_point()
            new = Quant(np.array([need], np.float32), np.array([zp], np.int64), None)
            root = cls.find(out)
            for name in list(quant):
                if name in cls.parent and cls.find(name) == root:
                    quant[name] = new


# --- the int8 graph ------------------------------------------------------------------------------


class _Builder:
    def __init__(self, fg: Graph, quant: dict[str, Quant], means: dict[str, np.ndarray],
                 cfg: QuantConfig, dtypes: dict[str, str] | None = None) -> None:
        self.fg = fg
        self.dtypes = dtypes or {}
        self.quant = quant
        self.means = means
        self.cfg = cfg
        self.tensors: dict[str, Tensor] = {}
        self.ops: list[Op] = []

    def act(self, name: str, like: str | None = None) -> str:
        if name not in self.tensors:
            shape = self.fg.tensor(like or name).shape
            dtype = self.dtypes.get(like or name, "int8")
            self.tensors[name] = Tensor(name, shape, dtype, copy.deepcopy(self.quant[name]))
        return name

    def const(self, base: str, data: np.ndarray, dtype: str, q: Quant | None) -> str:
        name, k = base, 1
        while name in self.tensors:
            k += 1
            name = f"{base}_{k}"
        arr = np.ascontiguousarray(data)
        self.tensors[name] = Tensor(name, tuple(arr.shape), dtype, q, arr)
        return name

    def keep_const(self, name: str) -> str:
        """A constant the kernels read as it is (a reshape's shape, a pad's paddings)."""
        if name not in self.tensors:
            self.tensors[name] = copy.deepcopy(self.fg.tensor(name))
        return name

    def build(self, requant: dict[str, list[tuple[int, str]]]) -> Graph:
        for name in self.fg.inputs:
            self.act(name)
        for op in self.fg.ops:
            ins = list(op.inputs)
            for i, copy_name in requant.get(op.name, []):
                src = ins[i]
                self.act(copy_name, like=src)
                self.ops.append(Op("quantize", f"{op.name}_requant{i}", [src], [copy_name], {}))
                ins[i] = copy_name
            if op.kind in LINEAR:
                ins = self.linear(op, ins)
            else:
                ins = [self.operand(op, i, n) for i, n in enumerate(ins)]
            outs = [self.act(n) for n in op.outputs]
            self.ops.append(Op(op.kind, op.name, ins, outs, copy.deepcopy(op.attrs)))
        return Graph(self.fg.name, self.tensors, self.ops, list(self.fg.inputs),
                     list(self.fg.outputs), {})

    def operand(self, op: Op, i: int, name: str) -> str:
        if not name:
            return name
        t = self.fg.tensors.get(name)
        if t is None or not t.is_const:
            return self.act(name)
        if t.dtype != "float32":
            return self.keep_const(name)
        if op.kind == "concat":
            q = self.quant[op.outputs[0]]
        else:
            assert t.data is not None
            s, z = (prec.symmetric_int16 if self._wide(op) else asymmetric_params)(
                float(t.data.min()), float(t.data.max()))
            q = Quant(np.array([s], np.float32), np.array([z], np.int64), None)
        assert t.data is not None
        s, z = q.scalar_scale(), q.scalar_zero_point()
        dtype = "int16" if self._wide(op) else "int8"
        info = np.iinfo(dtype)
        data = np.clip(np.round(t.data.astype(np.float64) / s) + z, info.min, info.max)
        data = data.astype(dtype)
        return self.const(f"{name}@{op.name}" if name in self.tensors else name, data, dtype,
                          copy.deepcopy(q))

    def _wide(self, op: Op) -> bool:
        return self.dtypes.get(op.outputs[0]) == "int16"

    def linear(self, op: Op, ins: list[str]) -> list[str]:
        x = self.act(ins[0])
        w = self.fg.tensor(ins[1])
        assert w.data is not None
        mode = self.cfg.per_channel
        if op.kind in ("conv2d", "transpose_conv"):  # both OHWI
            axis: int | None = 0 if mode != "none" else None
        elif op.kind == "depthwise_conv2d":
            axis = 3 if mode != "none" else None
        else:
            axis = 0 if mode == "all" else None
        channels = w.shape[0] if op.kind != "depthwise_conv2d" else w.shape[3]
        has_bias = len(ins) > 2 and bool(ins[2])
        bias = np.zeros(channels)
        if has_bias:
            b = self.fg.tensor(ins[2])
            assert b.data is not None
            bias = b.data.astype(np.float64).reshape(-1)
        in_s = self.quant[x].scalar_scale()
        wide = self.tensors[x].dtype == "int16"  # 16x8: int64 bias
        four = self.cfg.weights == "int4" or op.name in self.cfg.int4_layers
        wdata, wquant = wq.quantize_weights(w.data, axis,
                                            wq.bias_floor(bias, in_s, 40 if wide else 31),
                                            7 if four else wq.WMAX)
        if self.cfg.bias_correction and ins[0] in self.means:
            shift = wq.bias_correction(op.kind, w.data, wq.dequantize_weights(wdata, wquant),
                                       self.means[ins[0]], int(op.attrs.get("depth_multiplier", 1)))
            if shift is not None:
                bias = bias - shift
        # names are never "<op name>/<role>": lower adds its own constants under those
        new = [x, self.const(f"{ins[1]}@{op.name}" if ins[1] in self.tensors else ins[1], wdata,
                             "int4" if four else "int8", wquant)]
        # TFLM's depthwise kernel crashes without a bias, so convolutions always get one
        if has_bias or bias.any() or op.kind != "fully_connected":
            bdata, bquant = wq.quantize_bias(bias, wq.bias_scale(in_s, wquant), 64 if wide else 32)
            base = ins[2] if has_bias and ins[2] not in self.tensors else f"{op.name}@bias"
            new.append(self.const(base, bdata, "int64" if wide else "int32", bquant))
        return new


SYNTHETIC_SAMPLES = 64


def synthetic_inputs(graph: Graph, cfg: QuantConfig, seed: int = 0) -> list[np.ndarray]:
    """Inputs drawn uniformly over the data-free input range (seeded: results are repeatable)."""
    lo, hi = cfg.input_range or (-1.0, 1.0)
    rng = np.random.default_rng(seed)
    return [rng.uniform(lo, hi, (SYNTHETIC_SAMPLES, *graph.tensor(n).shape)).astype(np.float32)
            for n in graph.inputs]


def quantize(
    graph: Graph,
    data: Source | Calibration | None = None,
    config: QuantConfig | None = None,
    data_free: bool = False,
    progress: bool | None = None,
    where: str = "",
) -> Graph:
    """The int8 IR graph of a float graph, from calibration data or (data_free) BN statistics."""
    cfg = config or QuantConfig()
    cfg.check()
    fg = prepare(graph, where)
    if cfg.equalize == "off" or (cfg.equalize == "auto" and not data_free):
        return _quantize_float(fg, data, cfg, data_free, progress, where, None)
    from edgekit.quantize.equalize import equalize

    efg = copy.deepcopy(fg)
    pairs = equalize(efg)
    info: dict[str, Any] = {"pairs": pairs, "applied": bool(pairs)}
    if not pairs or cfg.equalize == "on":
        return _quantize_float(efg, data, cfg, data_free, progress, where, info)
    # "auto": the one that scores better on inputs no calibration saw
    plain = _quantize_float(fg, data, cfg, data_free, progress, where, None)
    equal = _quantize_float(efg, data, cfg, data_free, progress, where, None)
    probe = [x[:EQUALIZE_PROBE] for x in synthetic_inputs(fg, cfg, seed=1)]
    without, with_ = _score(fg, plain, probe), _score(fg, equal, probe)
    info.update(applied=with_ > without, sqnr_db_without=round(without, 2),
                sqnr_db_with=round(with_, 2),
                scored_on=f"{EQUALIZE_PROBE} synthetic inputs over the input range")
    best = equal if with_ > without else plain
    best.meta["quantization"]["equalization"] = info
    return best


EQUALIZE_PROBE = 16


def _score(fg: Graph, q: Graph, batch: list[np.ndarray]) -> float:
    """Worst output SQNR of the int8 graph (run by TFLM) against the float graph."""
    from edgekit.export.tflite import export_tflite
    from edgekit.quantize.metrics import dequantize_array, quantize_array, sqnr_db
    from edgekit.reference.tflm import run_tflm

    n = batch[0].shape[0]
    ref = FloatModel(fg).run(batch)
    ins = [q.tensor(t) for t in q.inputs]
    got = run_tflm(export_tflite(q), [[quantize_array(b[k], t.quant, t.dtype) for b, t in
                                       zip(batch, ins, strict=True)] for k in range(n)])
    worst = float("inf")
    for j, name in enumerate(q.outputs):
        t = q.tensor(name)
        test = np.stack([dequantize_array(np.asarray(r[j]).reshape(t.shape), t.quant)
                         for r in got])
        worst = min(worst, sqnr_db(ref[j].reshape(n, -1), test.reshape(n, -1)))
    return worst


def _quantize_float(fg: Graph, data: Source | Calibration | None, cfg: QuantConfig,
                    data_free: bool, progress: bool | None, where: str,
                    equalization: dict[str, Any] | None) -> Graph:
    """quantize() after prepare (and equalisation)."""
    source = "data"
    if data_free and fg.meta.get("bn_stats"):
        ranges, means = propagate(fg, cfg.input_range or (-1.0, 1.0), cfg.sigmas)
        samples, source = 0, "batchnorm"
    elif data_free:
        # no BatchNorm statistics to anchor on (a float TFLite has them folded away): moments
        # propagated through many layers drift, so measure on synthetic inputs instead
        ranges, means, samples = calibrate(fg, [synthetic_inputs(fg, cfg)], cfg, progress)
        source = "synthetic"
    else:
        if data is None:
            raise EdgekitError("no calibration data", where or fg.name,
                               "pass --calib data.npz, or --data-free")
        ranges, means, samples = calibrate(fg, data, cfg, progress)
    dtypes: dict[str, str] = {}
    if cfg.int4_layers:
        prec.check_int4_layers(fg, cfg.int4_layers, where)
    if cfg.act == "int16" or cfg.int16_layers:
        fg = copy.deepcopy(fg)
        wanted = None if cfg.act == "int16" else prec.check_layers(fg, cfg.int16_layers, where)
        dtypes = prec.insert_boundaries(fg, ranges, prec.plan(fg, wanted))
    wide = frozenset(n for n, d in dtypes.items() if d == "int16")
    quant, requant = _assign(fg, ranges, wide)
    out = _Builder(fg, quant, means, cfg, dtypes).build(requant)
    info: dict[str, Any] = asdict(cfg)
    info.update(data_free=data_free, samples=samples, ranges_from=source)
    info["int16_layers"] = sorted(op.name for op in out.ops if op.kind != "quantize" and
                                  out.tensor(op.outputs[0]).dtype == "int16")
    info["int4_layers"] = sorted(op.name for op in out.ops if len(op.inputs) > 1 and
                                 op.inputs[1] in out.tensors and
                                 out.tensor(op.inputs[1]).dtype == "int4")
    info.pop("chunk")
    if equalization is not None:
        info["equalization"] = equalization
    out.meta = {
        "source_format": fg.meta.get("source_format", "unknown"),
        "quantization": info,
        # the order edgekit.export writes tensors in, so TFLM tensor i is names[i]
        "tflite_tensor_names": list(out.tensors),
    }
    if "layout" in fg.meta:
        out.meta["layout"] = copy.deepcopy(fg.meta["layout"])
    try:
        out.validate()
    except ValueError as exc:
        raise EdgekitError(f"internal: quantized graph is malformed: {exc}", fg.name) from None
    return out
