"""int8 IR graph -> QDQ ONNX, so onnxruntime (or any ONNX tool) can run our quantized model.

The QDQ form (what `onnxruntime.quantization.quantize_static` writes) keeps every op in float
and marks each int8 tensor with a QuantizeLinear -> DequantizeLinear pair carrying its scale and
zero point. Weights are stored as int8 initializers behind a DequantizeLinear (per channel along
the output-channel axis), biases as int32 at scale s_in * s_w.

Layout: the IR is NHWC, ONNX's Conv and pools are NCHW. Each conv and pool is wrapped in a pair
of Transposes (exact on float values), so every other op keeps the IR's axes and attributes as
they are. Graph inputs and outputs take the source model's layout back when the frontend recorded
one (`meta.layout`, docs/onnx.md): the exported model takes the same NCHW arrays the float ONNX
model took.

Semantics: onnxruntime evaluates each op in float and rounds once at the QuantizeLinear (half to
even); the int8 kernels (and TFLite Micro) requantize with a fixed-point multiplier (half away
from zero). So the two agree up to rounding, which can propagate; docs/quantize.md states the
bound and tests/test_quantizer.py checks it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.ir.graph import Graph, Op, Quant, Tensor

OPSET = 13  # per-axis DequantizeLinear needs 13
NHWC_TO_NCHW = [0, 3, 1, 2]
NCHW_TO_NHWC = [0, 2, 3, 1]
_POINTWISE = {"add": "Add", "sub": "Sub", "mul": "Mul", "logistic": "Sigmoid", "tanh": "Tanh"}


class _QdqExporter:
    def __init__(self, graph: Graph, where: str) -> None:
        import onnx  # the [onnx] dependency is only needed here and in the frontend

        self.onnx = onnx
        self.helper = onnx.helper
        self.g = graph
        self.where = where or graph.name
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self.value: dict[str, str] = {}  # IR tensor -> the ONNX value holding its float meaning
        self.count = 0

    def error(self, what: str) -> EdgekitError:
        return EdgekitError(what, self.where, "export --format tflite covers every int8 op")

    def fresh(self, base: str) -> str:
        self.count += 1
        return f"{base}#{self.count}"

    def node(self, kind: str, inputs: list[str], base: str, **attrs: Any) -> str:
        out = self.fresh(base)
        self.nodes.append(self.helper.make_node(kind, inputs, [out], name=out, **attrs))
        return out

    def init(self, base: str, data: np.ndarray) -> str:
        name = self.fresh(base)
        # np.array, not ascontiguousarray: that one turns a 0-d scale into shape [1]
        self.inits.append(self.onnx.numpy_helper.from_array(np.array(data, order="C"), name))
        return name

    def qparams(self, base: str, q: Quant, dtype: type = np.int8) -> tuple[str, str]:
        per_axis = q.per_channel
        scale = q.scale.astype(np.float32).reshape(-1)
        zp = q.zero_point.astype(dtype).reshape(-1)
        if not per_axis:
            scale, zp = scale[:1].reshape(()), zp[:1].reshape(())
        return self.init(f"{base}/scale", scale), self.init(f"{base}/zero_point", zp)

    def qdq(self, x: str, t: Tensor) -> str:
        """Float value x rounded to t's int8 format and back: the meaning of IR tensor t."""
        assert t.quant is not None
        s, z = self.qparams(t.name, t.quant)
        q = self.node("QuantizeLinear", [x, s, z], f"{t.name}/q")
        return self.node("DequantizeLinear", [q, s, z], f"{t.name}/dq")

    def const(self, t: Tensor, to_onnx: Any = None, axis: int | None = None) -> str:
        """A constant: int8/int32 data behind a DequantizeLinear, float32 as it is."""
        assert t.data is not None
        data = t.data if to_onnx is None else to_onnx(t.data)
        if t.quant is None or t.dtype == "float32":
            return self.init(t.name, data.astype(np.float32))
        dtype = {"int8": np.int8, "int32": np.int32, "uint8": np.uint8}.get(t.dtype)
        if dtype is None:
            raise self.error(f"constant '{t.name}' is {t.dtype}, which QDQ export lacks")
        s, z = self.qparams(t.name, t.quant, dtype)
        attrs = {"axis": axis} if t.quant.per_channel and axis is not None else {}
        if t.quant.per_channel and axis is None:
            raise self.error(f"constant '{t.name}' is quantized per channel where ONNX takes "
                             "one scale")
        return self.node("DequantizeLinear", [self.init(t.name, data.astype(dtype)), s, z],
                         f"{t.name}/dq", **attrs)

    def operand(self, name: str) -> str:
        t = self.g.tensor(name)
        return self.const(t) if t.is_const else self.value[name]

    # -- graph -------------------------------------------------------------------------------

    def run(self) -> bytes:
        g, h = self.g, self.helper
        if g.meta.get("lowered"):
            raise EdgekitError(
                "this graph is lowered (fused activations live only in its integer parameters)",
                self.where, "export the .ekir written by `edgekit quantize` instead")
        layout = g.meta.get("layout", {})
        graph_inputs = []
        for name in g.inputs:
            t = g.tensor(name)
            perm = layout.get("inputs", {}).get(name)
            x = name
            shape = list(t.shape)
            if perm is not None and list(perm) != list(range(len(perm))):
                shape = [0] * len(perm)
                for i, p in enumerate(perm):
                    shape[p] = t.shape[i]
                x = self.node("Transpose", [name], f"{name}/to_ir", perm=list(perm))
            graph_inputs.append(h.make_tensor_value_info(name, self.onnx.TensorProto.FLOAT,
                                                         shape))
            self.value[name] = self.qdq(x, t) if t.quant is not None else x
        for op in g.ops:
            self.op(op)
        graph_outputs = []
        for name in g.outputs:
            t = g.tensor(name)
            perm = layout.get("outputs", {}).get(name)
            y = self.value[name]
            shape = list(t.shape)
            if perm is not None and list(perm) != list(range(len(perm))):
                inverse = list(np.argsort(perm))
                y = self.node("Transpose", [y], f"{name}/from_ir", perm=inverse)
                shape = [t.shape[i] for i in inverse]
            self.nodes.append(h.make_node("Identity", [y], [f"{name}:out"], name=f"{name}:out"))
            graph_outputs.append(h.make_tensor_value_info(f"{name}:out",
                                                          self.onnx.TensorProto.FLOAT, shape))
        model = h.make_model(
            h.make_graph(self.nodes, g.name, graph_inputs, graph_outputs, self.inits),
            opset_imports=[h.make_opsetid("", OPSET)],
            producer_name="edgekit",
            doc_string=f"edgekit QDQ export of {g.name}",
        )
        model.ir_version = 8
        self.onnx.checker.check_model(model)
        return model.SerializeToString()

    def op(self, op: Op) -> None:
        k, a = op.kind, op.attrs
        if len(op.outputs) != 1:
            raise self.error(f"op {op.name}: {len(op.outputs)} outputs")
        out = self.g.tensor(op.outputs[0])
        if k in ("conv2d", "depthwise_conv2d"):
            y = self.conv(op)
        elif k in ("avg_pool2d", "max_pool2d"):
            y = self.pool(op)
        elif k == "fully_connected":
            y = self.dense(op)
        elif k == "transpose_conv":
            y = self.transpose_conv(op)
        elif k == "leaky_relu":
            y = self.node("LeakyRelu", [self.operand(op.inputs[0])], op.name,
                          alpha=float(a["alpha"]))
        elif k == "hard_swish":
            # HardSwish needs opset 14; x * HardSigmoid(x; 1/6, 1/2) is the same function in 13
            x = self.operand(op.inputs[0])
            gate = self.node("HardSigmoid", [x], f"{op.name}/gate", alpha=1.0 / 6.0, beta=0.5)
            y = self.node("Mul", [x, gate], op.name)
        elif k in _POINTWISE:
            y = self.node(_POINTWISE[k], [self.operand(n) for n in op.inputs], op.name)
        elif k in ("relu", "relu6"):
            y = self.activation(self.operand(op.inputs[0]), k, op.name)
        elif k in ("quantize", "dequantize"):
            y = self.operand(op.inputs[0])
        elif k == "reshape":
            y = self.node("Reshape", [self.operand(op.inputs[0]),
                                      self.init(f"{op.name}/shape", np.array(out.shape, np.int64))],
                          op.name)
        elif k == "softmax":
            if float(a.get("beta", 1.0)) != 1.0:
                raise self.error(f"op {op.name}: softmax beta {a['beta']} has no ONNX Softmax")
            y = self.node("Softmax", [self.operand(op.inputs[0])], op.name, axis=-1)
        elif k == "concat":
            y = self.node("Concat", [self.operand(n) for n in op.inputs], op.name,
                          axis=int(a["axis"]))
        elif k == "pad":
            y = self.pad(op)
        elif k == "mean":
            y = self.mean(op)
        elif k == "strided_slice":
            y = self.slice(op)
        else:
            raise self.error(f"op {op.name}: '{k}' has no QDQ ONNX export")
        if k not in ("relu", "relu6"):
            y = self.activation(y, str(a.get("activation", "none")), op.name)
        self.value[out.name] = self.qdq(y, out) if out.quant is not None and \
            out.dtype != "float32" else y

    def activation(self, x: str, act: str, base: str) -> str:
        if act == "none":
            return x
        if act == "relu":
            return self.node("Relu", [x], f"{base}/relu")
        bounds = {"relu6": (0.0, 6.0), "relu_n1_to_1": (-1.0, 1.0)}.get(act)
        if bounds is None:
            raise self.error(f"op {base}: activation '{act}' has no QDQ ONNX export")
        lo = self.init(f"{base}/min", np.array(bounds[0], np.float32))
        hi = self.init(f"{base}/max", np.array(bounds[1], np.float32))
        return self.node("Clip", [x, lo, hi], f"{base}/clip")

    def window_pads(self, op: Op, kernel: tuple[int, int], dilation: list[int]) -> list[int]:
        """ONNX pads [top, left, bottom, right] from the IR's leading pad and the output size."""
        x, y = self.g.tensor(op.inputs[0]), self.g.tensor(op.outputs[0])
        stride, pad = op.attrs["stride"], op.attrs["pad"]
        after = []
        for i in range(2):
            need = (y.shape[1 + i] - 1) * stride[i] + (kernel[i] - 1) * dilation[i] + 1
            after.append(max(0, need - x.shape[1 + i] - pad[i]))
        return [pad[0], pad[1], after[0], after[1]]

    def nchw(self, op: Op, kind: str, inputs: list[str], **attrs: Any) -> str:
        x = self.node("Transpose", [self.operand(op.inputs[0])], f"{op.name}/nchw",
                      perm=NHWC_TO_NCHW)
        y = self.node(kind, [x, *inputs], op.name, **attrs)
        return self.node("Transpose", [y], f"{op.name}/nhwc", perm=NCHW_TO_NHWC)

    def conv(self, op: Op) -> str:
        a = op.attrs
        w = self.g.tensor(op.inputs[1])
        dil = list(a.get("dilation", [1, 1]))
        if op.kind == "conv2d":
            weights = self.const(w, lambda d: d.transpose(0, 3, 1, 2), axis=0)  # OHWI -> OIHW
            group = 1
        else:  # [1, H, W, C*M] -> [C*M, 1, H, W], group = C
            weights = self.const(w, lambda d: d.transpose(3, 0, 1, 2), axis=0)
            group = self.g.tensor(op.inputs[0]).shape[3]
        ins = [weights]
        if len(op.inputs) > 2 and op.inputs[2]:
            ins.append(self.const(self.g.tensor(op.inputs[2]), axis=0))
        kernel = (w.shape[1], w.shape[2])
        return self.nchw(op, "Conv", ins, strides=list(a["stride"]), dilations=dil,
                         pads=self.window_pads(op, kernel, dil), group=group,
                         kernel_shape=list(kernel))

    def transpose_conv(self, op: Op) -> str:
        """OHWI -> ONNX's (C_in, C_out, kH, kW); trailing pads and output_padding are whatever
        makes ONNX's output size the IR's (only the leading pad shapes the values)."""
        a = op.attrs
        x, y = self.g.tensor(op.inputs[0]), self.g.tensor(op.outputs[0])
        w = self.g.tensor(op.inputs[1])
        ins = [self.const(w, lambda d: d.transpose(3, 0, 1, 2), axis=1)]
        if len(op.inputs) > 2 and op.inputs[2]:
            ins.append(self.const(self.g.tensor(op.inputs[2]), axis=0))
        end, extra = [], []
        for i in range(2):
            full = a["stride"][i] * (x.shape[1 + i] - 1) + w.shape[1 + i] - a["pad"][i]
            end.append(max(0, full - y.shape[1 + i]))
            extra.append(y.shape[1 + i] - (full - end[-1]))
        return self.nchw(op, "ConvTranspose", ins, strides=list(a["stride"]),
                         pads=[a["pad"][0], a["pad"][1], end[0], end[1]], output_padding=extra,
                         kernel_shape=[w.shape[1], w.shape[2]])

    def pool(self, op: Op) -> str:
        a = op.attrs
        kernel = (int(a["filter"][0]), int(a["filter"][1]))
        pads = self.window_pads(op, kernel, [1, 1])
        kind = "AveragePool" if op.kind == "avg_pool2d" else "MaxPool"
        # TFLite's average excludes padded taps, ONNX's count_include_pad=0 does the same
        return self.nchw(op, kind, [], kernel_shape=list(kernel), strides=list(a["stride"]),
                         pads=pads)

    def dense(self, op: Op) -> str:
        x = self.operand(op.inputs[0])
        w = self.g.tensor(op.inputs[1])
        src, out = self.g.tensor(op.inputs[0]), self.g.tensor(op.outputs[0])
        # Gemm takes [N, depth]; reshapes only where the IR's shapes are not already that
        flat = x if len(src.shape) == 2 else self.node(
            "Reshape", [x, self.init(f"{op.name}/flat", np.array([-1, w.shape[1]], np.int64))],
            f"{op.name}/flatten")
        ins = [flat, self.const(w, axis=0)]
        if len(op.inputs) > 2 and op.inputs[2]:
            ins.append(self.const(self.g.tensor(op.inputs[2]), axis=0))
        y = self.node("Gemm", ins, op.name, transB=1)
        if len(out.shape) == 2:
            return y
        return self.node("Reshape", [y, self.init(f"{op.name}/shape",
                                                  np.array(out.shape, np.int64))],
                         f"{op.name}/unflatten")

    def pad(self, op: Op) -> str:
        paddings = op.attrs.get("paddings")
        if paddings is None:
            paddings = self.g.tensor(op.inputs[1]).data.tolist()  # type: ignore[union-attr]
        pairs = np.asarray(paddings, np.int64).reshape(-1, 2)
        ins = [self.operand(op.inputs[0]),
               self.init(f"{op.name}/pads", np.concatenate([pairs[:, 0], pairs[:, 1]]))]
        if len(op.inputs) > 2 and op.inputs[2]:
            ins.append(self.node("Squeeze", [self.operand(op.inputs[2])], f"{op.name}/value"))
        # without a value an int8 PAD fills with the zero point: real 0, ONNX's default too
        return self.node("Pad", ins, op.name)

    def mean(self, op: Op) -> str:
        axes = op.attrs.get("axes")
        if axes is None:
            axes = self.g.tensor(op.inputs[1]).data.reshape(-1).tolist()  # type: ignore[union-attr]
        return self.node("ReduceMean", [self.operand(op.inputs[0])], op.name,
                         axes=[int(v) for v in axes], keepdims=int(bool(op.attrs.get("keep_dims"))))

    def slice(self, op: Op) -> str:
        a = op.attrs
        if any(a.get(m, 0) for m in ("ellipsis_mask", "new_axis_mask", "shrink_axis_mask")):
            raise self.error(f"op {op.name}: strided slice masks other than begin/end")
        rank = len(self.g.tensor(op.inputs[0]).shape)
        begin, end, strides = (list(a[key]) for key in ("begin", "end", "strides"))
        big = np.iinfo(np.int64).max
        for i in range(rank):
            if a.get("begin_mask", 0) >> i & 1:
                begin[i] = 0 if strides[i] > 0 else big
            if a.get("end_mask", 0) >> i & 1:
                end[i] = big if strides[i] > 0 else -big
        ins = [self.operand(op.inputs[0])] + [
            self.init(f"{op.name}/{role}", np.array(v, np.int64))
            for role, v in (("starts", begin), ("ends", end), ("axes", list(range(rank))),
                            ("steps", strides))
        ]
        return self.node("Slice", ins, op.name)


def export_onnx_qdq(graph: Graph, where: str = "") -> bytes:
    """Serialise an int8 (not lowered) IR graph as a QDQ ONNX model (opset 13)."""
    return _QdqExporter(graph, where).run()
