"""Already-quantized ONNX models -> the int8 IR: QDQ graphs and QOperator (QLinear*) graphs.

Both forms say the same thing differently. QDQ (what `onnxruntime.quantization.quantize_static`
writes by default) keeps float ops and marks every int8 tensor with a QuantizeLinear /
DequantizeLinear pair; weights are int8 initializers behind a DequantizeLinear. QOperator graphs
use integer ops (QLinearConv, QLinearMatMul, QLinearAdd, ...) whose inputs carry their scales.

The import has three steps:

1. **Strip** (this module): a float ONNX model is written where every int8 value becomes the float
   value it means (`scale * (q - zero_point)`), QLinear ops become their float ops, and the scale
   and zero point of every such value are recorded. Weights become float initializers, and their
   int8 data, scales and int32 biases are kept aside per node.
2. **Float IR**: the float frontend (`edgekit/frontends/onnx.py`) reads the stripped model, with its
   layout handling, fusion and constant folding, and tells which IR tensor each ONNX value became.
3. **Int8 IR**: the quantizer's graph builder makes the int8 graph from the recorded activation
   quantizations (instead of calibration ranges). Then each conv/dense layer's weights are set to
   the model's own int8 values and scales, and its bias to the model's int32 bias, so nothing is
   re-rounded.

uint8 tensors (QOperator's default) become int8 with zero point - 128, which means the same real
values. Where our kernels need a format the model does not use (softmax, logistic and tanh write
fixed formats; pooling, reshape, pad, slice and concat copy bytes without rescaling), a
requantizing op is inserted. Ops without an int8 kernel are one error naming them.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.ir.graph import Graph, Op, Quant, Tensor

QDQ_OPS = {"QuantizeLinear", "DequantizeLinear"}
# QLinear op -> (float op, positions of the (value, scale, zero point) input triples, position of
# the output's scale and zero point)
_QLINEAR: dict[str, tuple[str, list[int], int]] = {
    "QLinearConv": ("Conv", [0, 3], 6),
    "QLinearMatMul": ("MatMul", [0, 3], 6),
    "QGemm": ("Gemm", [0, 3], 7),  # com.microsoft; C (input 6) is the int32 bias
    "QLinearAdd": ("Add", [0, 3], 6),
    "QLinearMul": ("Mul", [0, 3], 6),
    "QLinearGlobalAveragePool": ("GlobalAveragePool", [0], 3),
    "QLinearAveragePool": ("AveragePool", [0], 3),
    "QLinearSigmoid": ("Sigmoid", [0], 3),
    "QLinearSoftmax": ("Softmax", [0], 3),
}
# ops that move or compare stored values: their output means what their input's format says
_TRANSPARENT = {"MaxPool", "Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Slice",
                "Pad", "Identity", "Relu", "Clip", "Concat", "GlobalMaxPool"}
_LINEAR_ONNX = {"Conv", "Gemm", "MatMul"}
# producers whose output can be negative in float, so a format starting at 0 acts as a ReLU
_CLAMPABLE = {"Conv", "ConvTranspose", "Gemm", "MatMul", "Add", "Sub", "Mul",
              "BatchNormalization"}


def is_quantized(model: Any) -> bool:
    return any(n.op_type in QDQ_OPS or n.op_type in _QLINEAR or n.op_type == "QLinearConcat"
               for n in model.graph.node)


@dataclass
class _Q:
    scale: np.ndarray  # float32, 1 or per channel
    zero_point: np.ndarray  # int64, in the int8 domain (uint8 zero points minus 128)
    axis: int | None

    def same(self, other: _Q) -> bool:
        return (self.axis == other.axis and np.array_equal(self.scale, other.scale)
                and np.array_equal(self.zero_point, other.zero_point))

    def quant(self) -> Quant:
        return Quant(self.scale.astype(np.float32).reshape(-1),
                     self.zero_point.astype(np.int64).reshape(-1),
                     self.axis if self.scale.size > 1 else None)


@dataclass
class _Weights:
    """What a conv/dense node's weights and bias were in the quantized model."""
    q: _Q
    bias: np.ndarray | None  # int32 at scale s_in * s_w, when the model had one


class _Stripper:
    def __init__(self, model: Any, where: str) -> None:
        from onnx import numpy_helper

        self.model = model
        self.where = where
        self.np = numpy_helper
        self.consts: dict[str, np.ndarray] = {
            i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
        self.alias: dict[str, str] = {}
        self.act: dict[str, _Q] = {}  # what a QuantizeLinear/DequantizeLinear/QLinear op says
        self.weak: dict[str, _Q] = {}  # carried through ops that move values (QOperator graphs)
        self.const_q: dict[str, tuple[_Q, np.ndarray]] = {}  # float init -> (quant, int data)
        self.nodes: list[Any] = []
        self.new_inits: dict[str, np.ndarray] = {}
        self.weights: dict[int, _Weights] = {}
        self.unsupported: list[str] = []

    def error(self, what: str, hint: str | None = None) -> EdgekitError:
        return EdgekitError(what, self.where, hint)

    def name(self, n: str) -> str:
        while n in self.alias:
            n = self.alias[n]
        return n

    def value(self, n: str) -> np.ndarray | None:
        return self.consts.get(n, self.new_inits.get(n))

    def qparams(self, scale: str, zp: str | None, data_dtype: np.dtype | None,
                axis: int | None) -> _Q:
        s = self.value(scale)
        if s is None:
            raise self.error(f"scale '{scale}' is not a constant")
        z = self.value(zp) if zp else None
        z = np.zeros(s.shape, np.int64) if z is None else z
        dtype = z.dtype if zp else (data_dtype or np.dtype(np.uint8))
        zi = z.astype(np.int64)
        if dtype == np.uint8:
            zi = zi - 128
        elif dtype not in (np.int8, np.int32):
            raise self.error(f"zero point '{zp}' is {dtype}; edgekit reads int8 and uint8 models")
        s = s.astype(np.float32).reshape(-1)
        zi = zi.reshape(-1)
        return _Q(s, zi, axis if s.size > 1 else None)

    def dequantized_const(self, data: np.ndarray, q: _Q) -> tuple[np.ndarray, np.ndarray]:
        """(float32 value, int data in the int8 domain) of an integer initializer."""
        ints = data.astype(np.int64) - (128 if data.dtype == np.uint8 else 0)
        shape = [1] * data.ndim
        if q.axis is not None:
            shape[q.axis] = -1
        real = (ints - q.zero_point.reshape(shape)) * q.scale.astype(np.float64).reshape(shape)
        return real.astype(np.float32), ints

    def float_const(self, base: str, data: np.ndarray, q: _Q) -> str:
        real, ints = self.dequantized_const(data, q)
        name = base
        k = 1
        while name in self.consts or name in self.new_inits:
            k += 1
            name = f"{base}/{k}"
        self.new_inits[name] = real
        self.const_q[name] = (q, ints)
        return name

    def mark(self, v: str, q: _Q, node: Any) -> None:
        old = self.act.get(v)
        if old is not None and not old.same(q):
            raise self.error(
                f"node {node.op_type} '{node.name}': '{v}' is quantized twice with different "
                "scales (a requantizing Q/DQ chain), which edgekit does not import yet")
        self.act[v] = q

    # -- the pass ------------------------------------------------------------------------------

    def run(self) -> Any:
        import onnx
        from onnx import helper

        g = self.model.graph
        for node in g.node:
            if node.op_type == "Constant" and node.attribute:
                a = node.attribute[0]
                if a.name == "value":
                    self.consts[node.output[0]] = self.np.to_array(a.t)
                    self.new_inits[node.output[0]] = self.consts[node.output[0]]
                    continue
            self.node(node)
        if self.unsupported:
            raise self.error(
                f"{len(self.unsupported)} quantized operator(s) edgekit cannot import:\n"
                + "\n".join(self.unsupported),
                "supported: QuantizeLinear/DequantizeLinear around float ops, and "
                + ", ".join(sorted(_QLINEAR) + ["QLinearConcat"]))
        inputs = []
        for vi in g.input:
            if vi.name in self.consts:
                continue
            t = vi.type.tensor_type
            shape = [d.dim_value if d.HasField("dim_value") else 1 for d in t.shape.dim]
            inputs.append(helper.make_tensor_value_info(vi.name, onnx.TensorProto.FLOAT, shape))
        outputs = []
        for vi in g.output:
            outputs.append(helper.make_tensor_value_info(self.name(vi.name),
                                                         onnx.TensorProto.FLOAT, None))
        used = {i for n in self.nodes for i in n.input} | {o.name for o in outputs}
        inits = [self.np.from_array(np.asarray(v), k) for k, v in
                 {**{k: v for k, v in self.consts.items() if k in used}, **self.new_inits}.items()
                 if k in used]
        graph = helper.make_graph(self.nodes, g.name or "model", inputs, outputs, inits)
        model = helper.make_model(graph, opset_imports=[o for o in self.model.opset_import
                                                        if o.domain in ("", "ai.onnx")])
        model.ir_version = self.model.ir_version
        return model

    def node(self, node: Any) -> None:
        from onnx import helper

        ins = [self.name(i) if i else "" for i in node.input]
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        op = node.op_type
        if op == "DequantizeLinear":
            axis = int(attrs.get("axis", 1))
            data = self.value(ins[0])
            q = self.qparams(ins[1], ins[2] if len(ins) > 2 else None,
                             None if data is None else data.dtype, axis)
            if data is not None:
                if q.axis is not None and q.axis < 0:
                    q.axis += data.ndim
                real, ints = self.dequantized_const(data, q)
                self.new_inits[node.output[0]] = real
                self.const_q[node.output[0]] = (q, ints)
            else:
                self.mark(ins[0], q, node)
                self.alias[node.output[0]] = ins[0]
            return
        if op == "QuantizeLinear":
            if self.value(ins[0]) is not None:
                raise self.error(f"QuantizeLinear '{node.name}' of a constant: fold it first")
            q = self.qparams(ins[1], ins[2] if len(ins) > 2 else None, None,
                             int(attrs.get("axis", 1)))
            if q.axis is not None:
                raise self.error(f"QuantizeLinear '{node.name}': per-axis activations")
            self.mark(ins[0], q, node)
            self.alias[node.output[0]] = ins[0]
            if int(q.zero_point[0]) == -128:
                self.clamp_at_zero(ins[0])
            return
        if op in _QLINEAR or op == "QLinearConcat":
            self.qlinear(node, ins, attrs)
            return
        if node.domain not in ("", "ai.onnx"):
            self.unsupported.append(f"  {node.domain}.{op} '{node.name}'")
            return
        if op in _TRANSPARENT and ins:
            src = self.act.get(ins[0], self.weak.get(ins[0]))
            if src is not None:
                for o in node.output:  # a later QuantizeLinear may still say otherwise
                    self.weak[o] = src
        if op in _LINEAR_ONNX and len(ins) > 1 and ins[1] in self.const_q:
            wq, _ = self.const_q[ins[1]]
            bias = None
            if len(ins) > 2 and ins[2] in self.const_q:
                bias = self.const_q[ins[2]][1]
            self.weights[len(self.nodes)] = _Weights(wq, bias)
        new = copy.deepcopy(node)
        del new.input[:]
        new.input.extend(ins)
        self.nodes.append(new)

    def clamp_at_zero(self, v: str) -> None:
        """A format whose lowest value is real 0 clamps like a ReLU: exporters (onnxruntime's
        quantizer among them) drop the ReLU for that reason. Put it back in the float model, so
        the float frontend fuses it, and so knows the value is non-negative (a max pool's zero
        padding is exact then). The int8 semantics do not change: the clamp was there anyway."""
        from onnx import helper

        at = next((i for i, n in enumerate(self.nodes) if v in n.output), None)
        if at is None or self.nodes[at].op_type not in _CLAMPABLE:
            return
        pre = f"{v}/before_relu"
        producer = self.nodes[at]
        producer.output[list(producer.output).index(v)] = pre
        self.nodes.insert(at + 1, helper.make_node("Relu", [pre], [v], name=f"{v}/relu"))
        self.weights = {(k + 1 if k > at else k): w for k, w in self.weights.items()}

    def qlinear(self, node: Any, ins: list[str], attrs: dict[str, Any]) -> None:
        from onnx import helper

        op = node.op_type
        if op == "QLinearConcat":  # Y_scale, Y_zp, then (X, X_scale, X_zp) per input
            float_op, triples, out_at = "Concat", list(range(2, len(ins), 3)), 0
        else:
            float_op, triples, out_at = _QLINEAR[op]
        if attrs.pop("channels_last", 0):
            self.unsupported.append(f"  {op} '{node.name}' with channels_last=1")
            return
        float_ins = []
        for k in triples:
            v, s, z = ins[k], ins[k + 1], ins[k + 2] if k + 2 < len(ins) else None
            data = self.value(v)
            axis = None
            if k == 3:  # the weights: per output channel
                axis = {"QLinearConv": 0, "QLinearMatMul": 1,
                        "QGemm": 0 if attrs.get("transB", 0) else 1}.get(op)
            q = self.qparams(s, z, None if data is None else data.dtype, axis)
            if data is not None:
                float_ins.append(self.float_const(f"{node.name or op}/in{k}", data, q))
            else:
                self.mark(v, q, node)
                float_ins.append(v)
        weights = None
        bias_at = {"QLinearConv": 8, "QGemm": 6}.get(op)
        if bias_at is not None:
            wq = self.const_q[float_ins[1]][0]
            bias = None
            if len(ins) > bias_at and ins[bias_at]:
                b = self.value(ins[bias_at])
                if b is None:
                    raise self.error(f"{op} '{node.name}': the bias is not a constant")
                xs = self.act[float_ins[0]].scale.astype(np.float64)
                real = (b.astype(np.float64) * xs * wq.scale.astype(np.float64)).astype(np.float32)
                name = f"{node.name or op}/bias"
                self.new_inits[name] = real
                float_ins.append(name)
                bias = b.astype(np.int64)
            weights = _Weights(wq, bias)
        elif op == "QLinearMatMul":
            weights = _Weights(self.const_q[float_ins[1]][0], None) \
                if float_ins[1] in self.const_q else None
        if out_at >= len(ins) or not ins[out_at]:
            self.unsupported.append(f"  {op} '{node.name}' with a float output")
            return
        out_q = self.qparams(ins[out_at], ins[out_at + 1] if out_at + 1 < len(ins) else None,
                             None, None)
        if op == "QLinearSoftmax":
            attrs.pop("opset", None)
        if weights is not None:
            self.weights[len(self.nodes)] = weights
        self.nodes.append(helper.make_node(float_op, float_ins, list(node.output),
                                           name=node.name, **attrs))
        self.mark(node.output[0], out_q, node)
        if int(out_q.zero_point[0]) == -128 and float_op in ("Conv", "MatMul", "Add", "Mul"):
            self.clamp_at_zero(node.output[0])


def read_quantized_onnx(model: Any, where: str, name: str) -> Graph:
    """The int8 IR graph of a QDQ or QOperator ONNX model."""
    from edgekit.frontends.onnx import _Converter
    from edgekit.quantize.quantizer import FIXED, SAME_QUANT, QuantConfig, _Builder

    strip = _Stripper(model, where)
    float_model = strip.run()
    conv = _Converter(float_model, where, name)
    conv.prepare()
    fg = conv.convert()
    # ONNX value -> IR tensor, for every recorded activation quantization
    quant: dict[str, Quant] = {}
    for onnx_name, q in {**strip.weak, **strip.act}.items():
        v = conv.vals.get(onnx_name)
        if v is not None and v.ir in fg.tensors:
            quant.setdefault(v.ir, q.quant())
    for n in fg.inputs:
        if n not in quant:
            raise EdgekitError(f"graph input '{n}' is never quantized", where,
                               "a QDQ model quantizes each input with a QuantizeLinear")
    # A float stretch the frontend folded away (an unquantized BatchNorm after a QLinearConv)
    # leaves a tensor without a format; a value-moving op after it gives it its own.
    for op in reversed(fg.ops):
        src = op.inputs[0] if op.inputs else ""
        if op.kind in SAME_QUANT and op.kind != "concat" and op.outputs[0] in quant and src \
                and src not in quant and not fg.tensor(src).is_const:
            quant[src] = quant[op.outputs[0]]
    requant: dict[str, list[tuple[int, str]]] = {}
    for op in fg.ops:
        out = op.outputs[0]
        first = op.inputs[0] if op.inputs else ""
        if op.kind in SAME_QUANT or op.kind == "relu":
            sources = [n for n in (op.inputs if op.kind == "concat" else [first])
                       if n and not fg.tensor(n).is_const]
            if out not in quant and sources and sources[0] in quant:
                quant[out] = quant[sources[0]]
            if op.kind == "avg_pool2d":
                pass  # requantized after the pool, below: before it would clip before averaging
            elif op.kind in SAME_QUANT:
                for i, src in enumerate(op.inputs if op.kind == "concat" else [first]):
                    if src in quant and out in quant and quant[src] != quant[out]:
                        copy_name = f"{src}/requant_{op.name}"
                        quant[copy_name] = quant[out]
                        requant.setdefault(op.name, []).append((i, copy_name))
        if out not in quant:
            raise EdgekitError(
                f"op {op.name} ({op.kind}): its output '{out}' has no quantization in the model",
                where, "quantize every op output (QuantizeLinear after each op)")
    per_dense = any(w.q.axis is not None for w in strip.weights.values())
    cfg = QuantConfig(per_channel="all" if per_dense else "conv")
    g = _Builder(fg, quant, {}, cfg).build(requant)
    _restore_weights(g, fg, strip.weights, where)
    _fixed_formats(g, FIXED)
    _requant_after_pools(g)
    g.meta = {
        "source_format": "onnx",
        "quantization": {"imported": "QOperator" if any(n.op_type in _QLINEAR or
                                                        n.op_type == "QLinearConcat"
                                                        for n in model.graph.node) else "QDQ"},
        "tflite_tensor_names": list(g.tensors),
    }
    if "layout" in fg.meta:
        g.meta["layout"] = copy.deepcopy(fg.meta["layout"])
    try:
        g.validate()
    except ValueError as exc:
        raise EdgekitError(f"internal: imported graph is malformed: {exc}", where) from None
    return g


def _node_index(op_name: str) -> int | None:
    head = op_name.split("_", 1)[0]
    return int(head[2:]) if head.startswith("op") and head[2:].isdigit() else None


def _restore_weights(g: Graph, fg: Graph, weights: dict[int, _Weights], where: str) -> None:
    """The model's own int8 weights, scales and int32 biases, instead of re-rounded ones."""
    from edgekit.quantize.weights import bias_scale

    for op in g.ops:
        if op.kind not in ("conv2d", "depthwise_conv2d", "fully_connected"):
            continue
        idx = _node_index(op.name)
        rec = weights.get(idx) if idx is not None else None
        if rec is None:
            continue
        if np.any(rec.q.zero_point != 0):
            raise EdgekitError(f"op {op.name}: weights with a non-zero zero point", where,
                               "int8 kernels take symmetric weights (zero point 0)")
        w = g.tensor(op.inputs[1])
        fw = fg.tensor(_float_name(op.inputs[1]))
        axis = {"conv2d": 0, "depthwise_conv2d": 3, "fully_connected": 0}[op.kind]
        channels = w.shape[axis]
        scale = rec.q.scale.astype(np.float32).reshape(-1)
        if scale.size not in (1, channels):
            continue  # the frontend reshaped the weights (a flatten's permuted columns)
        shape = [1] * len(w.shape)
        if scale.size > 1:
            shape[axis] = -1
        assert fw.data is not None
        ints = np.round(fw.data.astype(np.float64) / scale.astype(np.float64).reshape(shape))
        if np.abs(ints).max(initial=0) > 127:
            continue
        w.data = ints.astype(np.int8)
        w.quant = Quant(scale, np.zeros(scale.size, np.int64), axis if scale.size > 1 else None)
        if len(op.inputs) < 3 or not op.inputs[2]:
            continue
        b = g.tensor(op.inputs[2])  # the builder gives every conv one, zeros if need be
        in_s = g.tensor(op.inputs[0]).quant.scalar_scale()  # type: ignore[union-attr]
        bs = bias_scale(in_s, w.quant)
        if bs.size == 1 and channels > 1:
            bs = np.full(channels, bs[0], np.float32)
        fb = fg.tensors.get(_float_name(op.inputs[2]))
        real = fb.data.astype(np.float64).reshape(-1) if fb is not None and fb.data is not None \
            else np.zeros(channels)
        # the model's int32 bias when the float frontend kept it as it was; a bias the frontend
        # changed (a following Add folded in) is re-rounded at the model's scales instead
        want = np.round(real / bs.astype(np.float64))
        if rec.bias is not None and rec.bias.size == channels and \
                np.all(np.abs(want - rec.bias.reshape(-1)) <= 1 + 1e-7 * np.abs(rec.bias)):
            want = rec.bias.reshape(-1).astype(np.float64)
        b.data = np.clip(want, -(2**31) + 1, 2**31 - 1).astype(np.int32)
        b.quant = Quant(bs.astype(np.float32), np.zeros(bs.size, np.int64),
                        0 if bs.size > 1 else None)
        b.shape = tuple(b.data.shape)


def _float_name(name: str) -> str:
    """The quantizer names a copied constant '<float name>@<op>'."""
    return name.split("@", 1)[0]


def _requant_after_pools(g: Graph) -> None:
    """An average pool keeps its input's format (the kernel does not rescale); a different
    output format is reached by a requantizing op after it, as the model averages first."""
    new_ops: list[Op] = []
    for op in g.ops:
        new_ops.append(op)
        if op.kind != "avg_pool2d":
            continue
        x, y = g.tensor(op.inputs[0]), g.tensor(op.outputs[0])
        if x.quant == y.quant:
            continue
        mid = f"{y.name}/pooled"
        g.tensors[mid] = Tensor(mid, y.shape, "int8", copy.deepcopy(x.quant))
        op.outputs[0] = mid
        new_ops.append(Op("quantize", f"{op.name}_to_model_format", [mid], [y.name], {}))
    g.ops = new_ops


def _fixed_formats(g: Graph, fixed: dict[str, tuple[float, int]]) -> None:
    """softmax/logistic/tanh write a fixed format; requantize to the model's when it differs."""
    new_ops: list[Op] = []
    for op in g.ops:
        new_ops.append(op)
        if op.kind not in fixed:
            continue
        t = g.tensor(op.outputs[0])
        s, z = fixed[op.kind]
        assert t.quant is not None
        if np.isclose(t.quant.scalar_scale(), s, rtol=1e-6) and t.quant.scalar_zero_point() == z:
            t.quant = Quant(np.array([s], np.float32), np.array([z], np.int64), None)
            continue
        mid = f"{t.name}/fixed"
        g.tensors[mid] = Tensor(mid, t.shape, "int8",
                                Quant(np.array([s], np.float32), np.array([z], np.int64), None))
        op.outputs[0] = mid
        new_ops.append(Op("quantize", f"{op.name}_to_model_format", [mid], [t.name], {}))
    g.ops = new_ops
