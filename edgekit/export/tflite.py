"""int8 IR graph -> .tflite, so TFLite Micro (or any TFLite runtime) can run the same model.

Only semantic attributes are written; the integer parameters are left to the runtime, which
derives them from the scales exactly as `lower` does. That is what makes running the exported
file in TFLM an independent check of our IR semantics. Tensors are written in the order of
`graph.meta["tflite_tensor_names"]` when present, so TFLM tensor i is that list's entry i.

IR paddings that SAME/VALID cannot express (ONNX allows any) become an explicit PAD in front of a
VALID convolution (padding with the zero point is what skipped taps mean), or a PADV2 with -128
in front of a max pool (taps below every int8 value change no maximum).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.frontends.tflite_writer import TFLiteBuilder
from edgekit.ir.graph import DTYPES, Graph, Op, Tensor

_SIMPLE = {
    "add": "ADD", "sub": "SUB", "mul": "MUL", "logistic": "LOGISTIC", "tanh": "TANH",
    "relu": "RELU", "relu6": "RELU6", "quantize": "QUANTIZE", "dequantize": "DEQUANTIZE",
}


def _same_valid(in_size: int, out_size: int, pad: int, k: int, stride: int, dil: int
                ) -> str | None:
    """Which TFLite padding mode gives this output size and leading pad, if any."""
    eff = (k - 1) * dil + 1
    same_out = (in_size + stride - 1) // stride
    same_pad = max(0, (same_out - 1) * stride + eff - in_size) // 2
    valid_out = (in_size - eff + stride) // stride
    if pad == 0 and out_size == valid_out:
        return "VALID"
    if out_size == same_out and pad == same_pad:
        return "SAME"
    return None


class _Exporter:
    def __init__(self, graph: Graph, where: str) -> None:
        self.g = graph
        self.where = where or graph.name
        self.b = TFLiteBuilder(description=f"edgekit export of {graph.name}")
        self.index: dict[str, int] = {}

    def error(self, what: str) -> EdgekitError:
        return EdgekitError(what, self.where)

    def tensor(self, t: Tensor) -> int:
        if t.dtype not in ("int8", "uint8", "int16", "int32", "int64", "float32", "int4"):
            raise self.error(f"tensor '{t.name}' has type {t.dtype}, which TFLite export lacks")
        q: dict[str, Any] = {}
        if t.quant is not None:
            q = {"scale": t.quant.scale, "zero_point": t.quant.zero_point,
                 "quantized_dimension": t.quant.axis or 0}
        if t.is_const:
            assert t.data is not None
            # TFLM unpacks INT4 filters for int8 activations only ("hybrid" otherwise), so a
            # 16x8 layer's int4 weights are written as int8 holding the same values
            if t.dtype == "int4" and not any(
                    t.name in op.inputs and self.g.tensor(op.inputs[0]).dtype == "int16"
                    for op in self.g.ops):
                return self.b.const_int4(t.name, t.data, **q)
            return self.b.const(t.name, t.data.astype(DTYPES[t.dtype]), **q)
        return self.b.tensor(t.name, t.shape, DTYPES[t.dtype], **q)

    def run(self) -> bytes:
        g = self.g
        if g.meta.get("lowered"):
            raise self.error(
                "this graph is lowered (fused activations live only in its integer parameters)"
            )
        used = set(g.inputs) | set(g.outputs)
        for op in g.ops:
            used.update(t for t in op.inputs + op.outputs if t)
        order = [n for n in g.meta.get("tflite_tensor_names", []) if n in used and n in g.tensors]
        order += [n for n in g.tensors if n in used and n not in set(order)]
        for name in order:
            self.index[name] = self.tensor(g.tensor(name))
        for op in g.ops:
            self.op(op)
        self.b.inputs([self.index[n] for n in g.inputs])
        self.b.outputs([self.index[n] for n in g.outputs])
        return self.b.finish()

    def ins(self, op: Op) -> list[int]:
        return [self.index[t] if t else -1 for t in op.inputs]

    def op(self, op: Op) -> None:
        k, a = op.kind, op.attrs
        ins, outs = self.ins(op), [self.index[t] for t in op.outputs]
        act = str(a.get("activation", "none")).upper()
        if k in ("conv2d", "depthwise_conv2d"):
            ins[0], padding = self.spatial_pad(op, tuple(self.g.tensor(op.inputs[1]).shape[1:3]),
                                               a.get("dilation", [1, 1]), 0)
            name = "CONV_2D" if k == "conv2d" else "DEPTHWISE_CONV_2D"
            extra = {"depth_multiplier": int(a["depth_multiplier"])} if k != "conv2d" else {}
            self.b.op(name, ins, outs, stride=a["stride"], dilation=a.get("dilation", [1, 1]),
                      padding=padding, activation=act, **extra)
        elif k in ("avg_pool2d", "max_pool2d"):
            ins[0], padding = self.spatial_pad(op, tuple(a["filter"]), [1, 1], -128)
            self.b.op("AVERAGE_POOL_2D" if k == "avg_pool2d" else "MAX_POOL_2D", ins, outs,
                      filter=a["filter"], stride=a["stride"], padding=padding, activation=act)
        elif k == "transpose_conv":
            self.b.op("TRANSPOSE_CONV", [ins[1], ins[0], *ins[2:3]], outs, stride=a["stride"],
                      padding=self.transpose_padding(op))
        elif k == "leaky_relu":
            self.b.op("LEAKY_RELU", ins, outs, alpha=float(a["alpha"]))
        elif k == "hard_swish":
            self.b.op("HARD_SWISH", ins, outs)
        elif k == "fully_connected":
            self.b.op("FULLY_CONNECTED", (ins + [-1])[:3], outs, activation=act,
                      keep_num_dims=bool(a.get("keep_num_dims", False)))
        elif k in ("add", "sub", "mul"):
            self.b.op(_SIMPLE[k], ins, outs, activation=act)
        elif k in _SIMPLE:
            self.b.op(_SIMPLE[k], ins, outs)
        elif k == "reshape":
            self.b.op("RESHAPE", ins[:2], outs)
        elif k == "softmax":
            self.b.op("SOFTMAX", ins, outs, beta=float(a.get("beta", 1.0)))
        elif k == "concat":
            self.b.op("CONCATENATION", ins, outs, axis=int(a["axis"]), activation=act)
        elif k == "pad":
            opts = {} if len(ins) > 1 else {"paddings": a["paddings"]}
            self.b.op("PAD" if len(ins) < 3 else "PADV2", ins, outs, **opts)
        elif k == "mean":
            opts = {} if len(ins) > 1 else {"axis": a["axes"]}
            self.b.op("MEAN", ins, outs, keep_dims=bool(a.get("keep_dims", False)), **opts)
        elif k == "strided_slice":
            opts = {} if len(ins) > 1 else {key: a[key] for key in ("begin", "end", "strides")}
            self.b.op("STRIDED_SLICE", ins, outs, begin_mask=a["begin_mask"],
                      end_mask=a["end_mask"], shrink_axis_mask=a["shrink_axis_mask"],
                      ellipsis_mask=a.get("ellipsis_mask", 0),
                      new_axis_mask=a.get("new_axis_mask", 0), **opts)
        else:
            raise self.error(f"op {op.name}: '{k}' has no TFLite export")

    def transpose_padding(self, op: Op) -> str:
        """SAME or VALID: TFLite derives TRANSPOSE_CONV's leading pad from the output size."""
        y, w = self.g.tensor(op.outputs[0]), self.g.tensor(op.inputs[1])
        for mode in ("SAME", "VALID"):
            ok = True
            for i in range(2):
                size, k, s = y.shape[1 + i], w.shape[1 + i], op.attrs["stride"][i]
                out = (size + s - 1) // s if mode == "SAME" else (size - k + s) // s
                ok &= max(0, (out - 1) * s + k - size) // 2 == op.attrs["pad"][i]
            if ok:
                return mode
        raise self.error(f"op {op.name}: transpose_conv padding {op.attrs['pad']} is neither "
                         "TFLite SAME nor VALID for its output size")

    def spatial_pad(self, op: Op, kernel: tuple[int, int], dilation: list[int], fill: int
                    ) -> tuple[int, str]:
        """(input tensor index, SAME/VALID), with an explicit pad op when neither fits."""
        x, y = self.g.tensor(op.inputs[0]), self.g.tensor(op.outputs[0])
        stride, pad = op.attrs["stride"], op.attrs["pad"]
        modes = {_same_valid(x.shape[1 + i], y.shape[1 + i], pad[i], kernel[i], stride[i],
                             dilation[i]) for i in range(2)}
        if len(modes) == 1 and None not in modes:
            return self.index[op.inputs[0]], modes.pop()  # type: ignore[return-value]
        if op.kind == "avg_pool2d":
            raise self.error(f"op {op.name}: average pooling with padding {pad} has no TFLite "
                             "SAME/VALID equivalent")
        after = []
        for i in range(2):
            need = (y.shape[1 + i] - 1) * stride[i] + (kernel[i] - 1) * dilation[i] + 1
            extra = need - x.shape[1 + i] - pad[i]
            if extra < 0:
                raise self.error(f"op {op.name}: output is smaller than a VALID window count")
            after.append(extra)
        paddings = [[0, 0], [pad[0], after[0]], [pad[1], after[1]], [0, 0]]
        shape = [x.shape[0], x.shape[1] + pad[0] + after[0], x.shape[2] + pad[1] + after[1],
                 x.shape[3]]
        assert x.quant is not None
        padded = self.b.tensor(f"{op.name}/padded", shape, np.int8, x.quant.scale,
                               x.quant.zero_point)
        pads = self.b.const(f"{op.name}/paddings", np.asarray(paddings, np.int32))
        if op.kind == "max_pool2d":
            value = self.b.const(f"{op.name}/pad_value", np.array([fill], np.int8),
                                 x.quant.scale, x.quant.zero_point)
            self.b.op("PADV2", [self.index[op.inputs[0]], pads, value], [padded])
        else:
            self.b.op("PAD", [self.index[op.inputs[0]], pads], [padded])
        return padded, "VALID"


def export_tflite(graph: Graph, where: str = "") -> bytes:
    """Serialise an int8 (not lowered) IR graph as a TFLite flatbuffer."""
    return _Exporter(graph, where).run()
