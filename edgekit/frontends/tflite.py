"""TFLite flatbuffer -> IR graph.

Reads with the schema object API of ai_edge_litert (no interpreter is loaded). Every unsupported
operator is collected before failing, so the user sees the complete list in one message.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from edgekit.errors import EdgekitError
from edgekit.ir.graph import Graph, Op, Quant, Tensor

_TFL_TYPES = {
    schema.TensorType.INT8: "int8",
    schema.TensorType.UINT8: "uint8",
    schema.TensorType.INT16: "int16",
    schema.TensorType.INT32: "int32",
    schema.TensorType.INT64: "int64",
    schema.TensorType.FLOAT16: "float16",
    schema.TensorType.FLOAT32: "float32",
}

_OPCODE_NAMES = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
_TYPE_NAMES = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
_ACTIVATIONS = {
    schema.ActivationFunctionType.NONE: "none",
    schema.ActivationFunctionType.RELU: "relu",
    schema.ActivationFunctionType.RELU6: "relu6",
    schema.ActivationFunctionType.RELU_N1_TO_1: "relu_n1_to_1",
}

# Hard limits checked before any allocation, so a hostile file cannot ask for gigabytes.
MAX_TENSOR_ELEMENTS = 1 << 28
MAX_RANK = 6

# TFLite ops this frontend turns into IR ops (value: IR kind).
SUPPORTED = {
    "CONV_2D": "conv2d",
    "DEPTHWISE_CONV_2D": "depthwise_conv2d",
    "FULLY_CONNECTED": "fully_connected",
    "AVERAGE_POOL_2D": "avg_pool2d",
    "MAX_POOL_2D": "max_pool2d",
    "ADD": "add",
    "SUB": "sub",
    "MUL": "mul",
    "RESHAPE": "reshape",
    "SQUEEZE": "reshape",
    "SOFTMAX": "softmax",
    "LOGISTIC": "logistic",
    "TANH": "tanh",
    "RELU": "relu",
    "RELU6": "relu6",
    "QUANTIZE": "quantize",
    "DEQUANTIZE": "dequantize",
    "PAD": "pad",
    "CONCATENATION": "concat",
    "MEAN": "mean",
    "STRIDED_SLICE": "strided_slice",
}


def _opcode_name(code: Any) -> str:
    builtin = max(int(code.builtinCode), int(code.deprecatedBuiltinCode))
    return _OPCODE_NAMES.get(builtin, f"BUILTIN_{builtin}")


def _padding(mode: int, in_size: int, filt: int, stride: int, dilation: int) -> tuple[int, int]:
    """(output size, padding before) as TFLite computes them for SAME/VALID."""
    eff = (filt - 1) * dilation + 1
    if mode == schema.Padding.SAME:
        out = (in_size + stride - 1) // stride
    else:
        out = (in_size - eff + stride) // stride
    total = max(0, (out - 1) * stride + eff - in_size)
    return out, total // 2


class _Reader:
    def __init__(self, data: bytes, where: str) -> None:
        self.where = where
        try:
            if len(data) < 8 or data[4:8] != b"TFL3":
                raise ValueError("no TFL3 file identifier")
            self.model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(data, 0))
        except EdgekitError:
            raise
        except Exception as exc:  # the flatbuffer library raises bare Python errors on bad input
            raise EdgekitError(
                f"not a readable TFLite flatbuffer ({type(exc).__name__}: {exc})",
                where,
                "check the file is a .tflite model and was copied completely",
            ) from None
        if not self.model.subgraphs:
            raise EdgekitError("model has no subgraph", where)
        if len(self.model.subgraphs) > 1:
            raise EdgekitError(
                f"model has {len(self.model.subgraphs)} subgraphs; only single-subgraph models "
                "are supported",
                where,
                "control-flow ops (WHILE, IF, CALL_ONCE) are not supported yet",
            )
        self.sg = self.model.subgraphs[0]
        self.names: list[str] = []

    def error(self, what: str, hint: str | None = None) -> EdgekitError:
        return EdgekitError(what, self.where, hint)

    # --- tensors -----------------------------------------------------------------------------

    def read_tensors(self) -> dict[str, Tensor]:
        tensors: dict[str, Tensor] = {}
        buffers = self.model.buffers or []
        seen: set[str] = set()
        for i, t in enumerate(self.sg.tensors or []):
            raw_name = (
                t.name.decode("utf-8", "replace") if isinstance(t.name, bytes) else str(t.name)
            )
            name = raw_name or f"tensor_{i}"
            if name in seen:
                name = f"{name}#{i}"
            seen.add(name)
            self.names.append(name)
            if t.type not in _TFL_TYPES:
                raise self.error(
                    f"tensor {i} '{name}' has type {_TYPE_NAMES.get(t.type, t.type)}, which is not "
                    "supported",
                    "supported tensor types: " + ", ".join(sorted(set(_TFL_TYPES.values()))),
                )
            dtype = _TFL_TYPES[t.type]
            shape = tuple(int(d) for d in (t.shape if t.shape is not None else []))
            if len(shape) > MAX_RANK or any(d < 0 for d in shape):
                raise self.error(f"tensor {i} '{name}' has an invalid shape {list(shape)}")
            if int(np.prod(shape, dtype=np.float64)) > MAX_TENSOR_ELEMENTS:
                raise self.error(f"tensor {i} '{name}' declares {list(shape)}: too large")
            quant = self._quant(t, i, name)
            data = None
            if 0 < t.buffer < len(buffers) and buffers[t.buffer].data is not None:
                raw = np.asarray(buffers[t.buffer].data, dtype=np.uint8).tobytes()
                if len(raw) > 0:
                    expected = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
                    if len(raw) != expected:
                        raise self.error(
                            f"tensor {i} '{name}': buffer holds {len(raw)} bytes, shape "
                            f"{list(shape)} of {dtype} needs {expected}"
                        )
                    data = np.frombuffer(raw, dtype=dtype).reshape(shape).copy()
            elif t.buffer >= len(buffers) and t.buffer != 0:
                raise self.error(f"tensor {i} '{name}' refers to missing buffer {t.buffer}")
            tensors[name] = Tensor(name, shape, dtype, quant, data)
        return tensors

    def _quant(self, t: Any, i: int, name: str) -> Quant | None:
        q = t.quantization
        if q is None or q.scale is None or len(q.scale) == 0:
            return None
        scale = np.asarray(q.scale, dtype=np.float32)
        zp = np.asarray(
            q.zeroPoint if q.zeroPoint is not None else [0] * scale.size, dtype=np.int64
        )
        if zp.size != scale.size:
            raise self.error(f"tensor {i} '{name}': {scale.size} scales but {zp.size} zero points")
        if not np.all(np.isfinite(scale)) or np.any(scale <= 0):
            raise self.error(f"tensor {i} '{name}': quantization scales must be finite and > 0")
        axis = int(q.quantizedDimension) if scale.size > 1 else None
        return Quant(scale, zp, axis)

    # --- operators ---------------------------------------------------------------------------

    def read(self, graph_name: str) -> Graph:
        tensors = self.read_tensors()
        codes = self.model.operatorCodes or []
        unsupported: list[str] = []
        ops: list[Op] = []
        for idx, o in enumerate(self.sg.operators or []):
            if o.opcodeIndex >= len(codes):
                raise self.error(f"operator {idx} refers to missing operator code {o.opcodeIndex}")
            opname = _opcode_name(codes[o.opcodeIndex])
            if opname not in SUPPORTED:
                custom = codes[o.opcodeIndex].customCode
                if opname == "CUSTOM" and custom:
                    name = (
                        custom.decode("utf-8", "replace") if isinstance(custom, bytes) else custom
                    )
                    opname = f"CUSTOM ({name})"
                unsupported.append(f"  #{idx} {opname}")
                continue
            ins = [
                self.names[i] if i >= 0 else "" for i in (o.inputs if o.inputs is not None else [])
            ]
            outs = [self.names[i] for i in (o.outputs if o.outputs is not None else [])]
            for i in list(o.inputs if o.inputs is not None else []) + list(
                o.outputs if o.outputs is not None else []
            ):
                if i >= len(self.names):
                    raise self.error(f"operator {idx} ({opname}) refers to missing tensor {i}")
            try:
                attrs = self._attrs(opname, o, tensors, ins, outs)
            except EdgekitError:
                raise
            except (ValueError, IndexError, KeyError, TypeError) as exc:
                raise self.error(f"operator {idx} ({opname}): {exc}") from None
            ops.append(Op(SUPPORTED[opname], f"op{idx}_{SUPPORTED[opname]}", ins, outs, attrs))
        if unsupported:
            raise self.error(
                f"{len(unsupported)} unsupported operator(s):\n" + "\n".join(unsupported),
                "supported: " + ", ".join(sorted(SUPPORTED)),
            )
        inputs = [self.names[i] for i in (self.sg.inputs if self.sg.inputs is not None else [])]
        outputs = [self.names[i] for i in (self.sg.outputs if self.sg.outputs is not None else [])]
        # tensor index -> IR name, so reference values keyed by TFLite index can be matched
        meta = {"source_format": "tflite", "tflite_tensor_names": list(self.names)}
        graph = Graph(graph_name, tensors, ops, inputs, outputs, meta)
        try:
            graph.validate()
        except ValueError as exc:
            raise self.error(f"malformed graph: {exc}") from None
        return graph

    def _attrs(
        self, opname: str, o: Any, tensors: dict[str, Tensor], ins: list[str], outs: list[str]
    ) -> dict[str, Any]:
        opt = o.builtinOptions
        x = tensors[ins[0]] if ins and ins[0] else None
        y = tensors[outs[0]]
        if opname in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            w = tensors[ins[1]]
            if x is None or len(x.shape) != 4 or len(w.shape) != 4:
                raise ValueError("expects 4-D input and filter (NHWC, OHWI)")
            fh, fw = w.shape[1], w.shape[2]
            dh, dw = int(opt.dilationHFactor or 1), int(opt.dilationWFactor or 1)
            sh, sw = int(opt.strideH), int(opt.strideW)
            if min(sh, sw, dh, dw) < 1:
                raise ValueError("strides and dilations must be >= 1")
            oh, pt = _padding(opt.padding, x.shape[1], fh, sh, dh)
            ow, pl = _padding(opt.padding, x.shape[2], fw, sw, dw)
            if (oh, ow) != tuple(y.shape[1:3]):
                raise ValueError(
                    f"output shape {list(y.shape)} does not match the computed {oh}x{ow}"
                )
            attrs: dict[str, Any] = {
                "stride": [sh, sw],
                "dilation": [dh, dw],
                "pad": [pt, pl],
                "activation": self._act(opt.fusedActivationFunction),
            }
            if opname == "DEPTHWISE_CONV_2D":
                mult = y.shape[3] // x.shape[3]
                if mult * x.shape[3] != y.shape[3]:
                    raise ValueError("output channels are not a multiple of input channels")
                attrs["depth_multiplier"] = mult
            elif w.shape[3] != x.shape[3]:
                raise ValueError(
                    "grouped convolution (filter depth != input depth) is not supported"
                )
            return attrs
        if opname == "FULLY_CONNECTED":
            if opt is not None and opt.weightsFormat != 0:
                raise ValueError("shuffled FULLY_CONNECTED weights are not supported")
            return {
                "activation": self._act(opt.fusedActivationFunction if opt else 0),
                "keep_num_dims": bool(opt.keepNumDims) if opt else False,
            }
        if opname in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
            assert x is not None
            fh, fw = int(opt.filterHeight), int(opt.filterWidth)
            sh, sw = int(opt.strideH), int(opt.strideW)
            if min(fh, fw, sh, sw) < 1:
                raise ValueError("filter sizes and strides must be >= 1")
            oh, pt = _padding(opt.padding, x.shape[1], fh, sh, 1)
            ow, pl = _padding(opt.padding, x.shape[2], fw, sw, 1)
            if (oh, ow) != tuple(y.shape[1:3]):
                raise ValueError(
                    f"output shape {list(y.shape)} does not match the computed {oh}x{ow}"
                )
            return {
                "filter": [fh, fw],
                "stride": [sh, sw],
                "pad": [pt, pl],
                "activation": self._act(opt.fusedActivationFunction),
            }
        if opname in ("ADD", "SUB", "MUL"):
            return {"activation": self._act(opt.fusedActivationFunction if opt else 0)}
        if opname in ("RESHAPE", "SQUEEZE"):
            return {"shape": list(y.shape)}
        if opname == "SOFTMAX":
            return {"beta": float(opt.beta) if opt else 1.0}
        if opname == "CONCATENATION":
            axis = int(opt.axis)
            return {
                "axis": axis + len(y.shape) if axis < 0 else axis,
                "activation": self._act(opt.fusedActivationFunction),
            }
        if opname == "MEAN":
            axes = tensors[ins[1]].data
            if axes is None:
                raise ValueError("MEAN axes must be constant")
            rank = len(x.shape) if x is not None else 0
            return {
                "axes": sorted(int(a) % rank for a in axes.reshape(-1)),
                "keep_dims": bool(opt.keepDims) if opt else False,
            }
        if opname == "PAD":
            pads = tensors[ins[1]].data
            if pads is None:
                raise ValueError("PAD paddings must be constant")
            return {"paddings": pads.astype(int).tolist()}
        if opname == "STRIDED_SLICE":
            begin, end, strides = (tensors[n].data for n in ins[1:4])
            if begin is None or end is None or strides is None:
                raise ValueError("STRIDED_SLICE begin/end/strides must be constant")
            return {
                "begin": begin.astype(int).tolist(),
                "end": end.astype(int).tolist(),
                "strides": strides.astype(int).tolist(),
                "begin_mask": int(opt.beginMask),
                "end_mask": int(opt.endMask),
                "shrink_axis_mask": int(opt.shrinkAxisMask),
                "ellipsis_mask": int(opt.ellipsisMask),
                "new_axis_mask": int(opt.newAxisMask),
                "offset": bool(getattr(opt, "offset", False)),
            }
        return {}

    def _act(self, code: int) -> str:
        if code not in _ACTIVATIONS:
            raise ValueError(f"fused activation {code} is not supported")
        return _ACTIVATIONS[code]


def read_tflite(data: bytes, where: str = "<bytes>", name: str = "model") -> Graph:
    """Parse a .tflite model into an IR graph (no lowering yet)."""
    return _Reader(data, where).read(name)


def load_tflite(path: Path, name: str | None = None) -> Graph:
    data = Path(path).read_bytes()
    return read_tflite(data, str(path), name or _c_name(Path(path).stem))


def _c_name(stem: str) -> str:
    out = "".join(c if c.isalnum() else "_" for c in stem.lower())
    if not out or out[0].isdigit():
        out = "m_" + out
    return out
