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
from edgekit.frontends.flatbuffer_check import FlatbufferError, check_tflite
from edgekit.ir import int4
from edgekit.ir.graph import (
    MAX_CONST_BYTES,
    MAX_ELEMENTS,
    MAX_OPS,
    MAX_RANK,
    MAX_TENSORS,
    Graph,
    Op,
    Quant,
    Tensor,
)

_TFL_TYPES = {
    schema.TensorType.INT8: "int8",
    schema.TensorType.UINT8: "uint8",
    schema.TensorType.INT16: "int16",
    schema.TensorType.INT32: "int32",
    schema.TensorType.INT64: "int64",
    schema.TensorType.FLOAT16: "float16",
    schema.TensorType.FLOAT32: "float32",
    schema.TensorType.INT4: "int4",  # packed filters; unpacked here (edgekit/ir/int4.py)
}

_OPCODE_NAMES = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
_TYPE_NAMES = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
_ACTIVATIONS = {
    schema.ActivationFunctionType.NONE: "none",
    schema.ActivationFunctionType.RELU: "relu",
    schema.ActivationFunctionType.RELU6: "relu6",
    schema.ActivationFunctionType.RELU_N1_TO_1: "relu_n1_to_1",
}

# Hard limits checked before any allocation, so a hostile file cannot ask for gigabytes or hours
# (the graph-wide ones live with the IR, docs/reliability.md).
MAX_TENSOR_ELEMENTS = MAX_ELEMENTS
MAX_OPERANDS = 1 << 10  # inputs or outputs of one operator, or of the graph


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
    "LEAKY_RELU": "leaky_relu",
    "HARD_SWISH": "hard_swish",
    "TRANSPOSE_CONV": "transpose_conv",
}


# Option tables each operator reads; a file may omit them only where TFLite has defaults.
_OPTIONS: dict[str, type] = {
    "CONV_2D": schema.Conv2DOptionsT,
    "DEPTHWISE_CONV_2D": schema.DepthwiseConv2DOptionsT,
    "FULLY_CONNECTED": schema.FullyConnectedOptionsT,
    "AVERAGE_POOL_2D": schema.Pool2DOptionsT,
    "MAX_POOL_2D": schema.Pool2DOptionsT,
    "ADD": schema.AddOptionsT,
    "SUB": schema.SubOptionsT,
    "MUL": schema.MulOptionsT,
    "SOFTMAX": schema.SoftmaxOptionsT,
    "CONCATENATION": schema.ConcatenationOptionsT,
    "MEAN": schema.ReducerOptionsT,
    "STRIDED_SLICE": schema.StridedSliceOptionsT,
    "LEAKY_RELU": schema.LeakyReluOptionsT,
    "TRANSPOSE_CONV": schema.TransposeConvOptionsT,
}
_OPTIONS_REQUIRED = {
    "CONV_2D",
    "DEPTHWISE_CONV_2D",
    "AVERAGE_POOL_2D",
    "MAX_POOL_2D",
    "CONCATENATION",
    "STRIDED_SLICE",
    "TRANSPOSE_CONV",
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
            # offsets are checked first: the object API follows them blindly (see flatbuffer_check)
            check_tflite(data)
            self.model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(data, 0))
        except FlatbufferError as exc:
            raise EdgekitError(
                f"not a readable TFLite flatbuffer ({exc})",
                where,
                "check the file is a .tflite model and was copied completely",
            ) from None
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
        for what, items, limit in (
            ("tensors", self.sg.tensors, MAX_TENSORS),
            ("operators", self.sg.operators, MAX_OPS),
            ("buffers", self.model.buffers, MAX_TENSORS),
            ("operator codes", self.model.operatorCodes, MAX_OPS),
            ("graph inputs", self.sg.inputs, MAX_OPERANDS),
            ("graph outputs", self.sg.outputs, MAX_OPERANDS),
        ):
            if items is not None and len(items) > limit:
                raise self.error(f"model has {len(items)} {what}; edgekit accepts at most {limit}")

    def error(self, what: str, hint: str | None = None) -> EdgekitError:
        return EdgekitError(what, self.where, hint)

    # --- tensors -----------------------------------------------------------------------------

    def read_tensors(self) -> dict[str, Tensor]:
        tensors: dict[str, Tensor] = {}
        buffers = self.model.buffers or []
        seen: set[str] = set()
        const_bytes = 0
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
            dims = t.shape if t.shape is not None else []
            if len(dims) > MAX_RANK:
                raise self.error(f"tensor {i} '{name}' has rank {len(dims)} (at most {MAX_RANK})")
            shape = tuple(int(d) for d in dims)
            if any(d < 0 for d in shape):
                raise self.error(f"tensor {i} '{name}' has an invalid shape {list(shape)}")
            if int(np.prod(shape, dtype=np.float64)) > MAX_TENSOR_ELEMENTS:
                raise self.error(f"tensor {i} '{name}' declares {list(shape)}: too large")
            quant = self._quant(t, i, name)
            data = None
            if 0 < t.buffer < len(buffers) and buffers[t.buffer].offset > 1:
                raise self.error(
                    f"tensor {i} '{name}' keeps its data outside the flatbuffer (buffer offset)",
                    "models over 2 GB with external buffers are not supported",
                )
            if 0 < t.buffer < len(buffers) and buffers[t.buffer].data is not None:
                stored = np.asarray(buffers[t.buffer].data, dtype=np.uint8)
                if stored.size > 0:
                    count = int(np.prod(shape, dtype=np.int64))
                    expected = (int4.packed_bytes(count) if dtype == "int4" else
                                count * np.dtype(dtype).itemsize)
                    if stored.size != expected:
                        raise self.error(
                            f"tensor {i} '{name}': buffer holds {stored.size} bytes, shape "
                            f"{list(shape)} of {dtype} needs {expected}"
                        )
                    const_bytes += expected
                    if const_bytes > MAX_CONST_BYTES:
                        raise self.error(
                            f"constant data exceeds {MAX_CONST_BYTES >> 20} MB",
                            "edgekit compiles models for microcontrollers; check the model",
                        )
                    data = (int4.unpack(stored.view(np.int8), count).reshape(shape).copy()
                            if dtype == "int4" else
                            np.frombuffer(stored.tobytes(), dtype=dtype).reshape(shape).copy())
            elif t.buffer >= len(buffers) and t.buffer != 0:
                raise self.error(f"tensor {i} '{name}' refers to missing buffer {t.buffer}")
            tensors[name] = Tensor(name, shape, dtype, quant, data)
        return tensors

    def _quant(self, t: Any, i: int, name: str) -> Quant | None:
        q = t.quantization
        if q is None or q.scale is None or len(q.scale) == 0:
            return None
        scale = np.asarray(q.scale, dtype=np.float32).reshape(-1)
        zp = np.asarray(
            q.zeroPoint if q.zeroPoint is not None else np.zeros(scale.size), dtype=np.int64
        ).reshape(-1)
        if zp.size != scale.size:
            raise self.error(f"tensor {i} '{name}': {scale.size} scales but {zp.size} zero points")
        # the scale, zero point and axis ranges are checked with the graph (Graph.validate)
        axis = int(q.quantizedDimension) if scale.size > 1 else None
        return Quant(scale, zp, axis)

    # --- operators ---------------------------------------------------------------------------

    def read(self, graph_name: str) -> Graph:
        tensors = self.read_tensors()
        codes = self.model.operatorCodes or []
        unsupported: list[str] = []
        ops: list[Op] = []
        for idx, o in enumerate(self.sg.operators or []):
            if not 0 <= o.opcodeIndex < len(codes):
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
            in_idx = self._indices(o.inputs, f"operator {idx} ({opname}) input", optional=True)
            out_idx = self._indices(o.outputs, f"operator {idx} ({opname}) output")
            ins = [self.names[i] if i >= 0 else "" for i in in_idx]
            outs = [self.names[i] for i in out_idx]
            if not outs:
                raise self.error(f"operator {idx} ({opname}) has no output")
            try:
                attrs = self._attrs(opname, o, tensors, ins, outs)
            except EdgekitError:
                raise
            except (ValueError, IndexError, KeyError, TypeError, ArithmeticError) as exc:
                raise self.error(f"operator {idx} ({opname}): {exc}") from None
            if opname == "TRANSPOSE_CONV":
                # TFLite orders (output shape, filter, input[, bias]); the IR reads the
                # activation first like every other op, and takes the shape from the output
                ins = [ins[2], ins[1], *ins[3:4]]
            ops.append(Op(SUPPORTED[opname], f"op{idx}_{SUPPORTED[opname]}", ins, outs, attrs))
        if unsupported:
            raise self.error(
                f"{len(unsupported)} unsupported operator(s):\n" + "\n".join(unsupported),
                "supported: " + ", ".join(sorted(SUPPORTED)),
            )
        inputs = [self.names[i] for i in self._indices(self.sg.inputs, "graph input")]
        outputs = [self.names[i] for i in self._indices(self.sg.outputs, "graph output")]
        # tensor index -> IR name, so reference values keyed by TFLite index can be matched
        meta = {"source_format": "tflite", "tflite_tensor_names": list(self.names)}
        graph = Graph(graph_name, tensors, ops, inputs, outputs, meta)
        try:
            graph.validate()
        except ValueError as exc:
            raise self.error(f"malformed graph: {exc}") from None
        return graph

    def _indices(self, values: Any, what: str, optional: bool = False) -> list[int]:
        """Tensor indices of a list, each checked; -1 marks an absent optional input."""
        values = values if values is not None else []
        if len(values) > MAX_OPERANDS:
            raise self.error(f"{what}s: {len(values)} tensors, at most {MAX_OPERANDS}")
        out = [int(i) for i in values]
        for i in out:
            if not (-1 if optional else 0) <= i < len(self.names):
                raise self.error(f"{what} refers to missing tensor {i}")
        return out

    def _attrs(
        self, opname: str, o: Any, tensors: dict[str, Tensor], ins: list[str], outs: list[str]
    ) -> dict[str, Any]:
        opt = o.builtinOptions
        expected = _OPTIONS.get(opname)
        if (
            expected is not None
            and not isinstance(opt, expected)
            and (opt is not None or opname in _OPTIONS_REQUIRED)
        ):
            raise ValueError(
                f"options are {type(opt).__name__.removesuffix('T')}, expected "
                f"{expected.__name__.removesuffix('T')}"
            )
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
        if opname == "TRANSPOSE_CONV":
            return _transpose_conv_attrs(opt, tensors, ins, y)
        if opname == "LEAKY_RELU":
            return {"alpha": float(np.float32(opt.alpha)) if opt else 0.0}
        if opname == "FULLY_CONNECTED":
            if opt is not None and opt.weightsFormat != 0:
                raise ValueError("shuffled FULLY_CONNECTED weights are not supported")
            return {
                "activation": self._act(opt.fusedActivationFunction if opt else 0),
                "keep_num_dims": bool(opt.keepNumDims) if opt else False,
            }
        if opname in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
            if x is None or len(x.shape) != 4 or len(y.shape) != 4:
                raise ValueError("expects 4-D input and output (NHWC)")
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
            if rank == 0:
                raise ValueError("MEAN of a scalar")
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


def _transpose_conv_attrs(opt: Any, tensors: dict[str, Tensor], ins: list[str], y: Tensor
                          ) -> dict[str, Any]:
    """TRANSPOSE_CONV: TFLite derives the padding from the *output* size, as if the op were the
    convolution that maps the output back onto the input."""
    if len(ins) < 3 or not ins[1] or not ins[2]:
        raise ValueError("expects output shape, filter and input operands")
    x, w = tensors[ins[2]], tensors[ins[1]]
    if len(x.shape) != 4 or len(w.shape) != 4 or len(y.shape) != 4:
        raise ValueError("expects 4-D input, filter and output (NHWC, OHWI)")
    if w.shape[3] != x.shape[3] or w.shape[0] != y.shape[3]:
        raise ValueError(f"filter {list(w.shape)} does not map {x.shape[3]} input channels to "
                         f"{y.shape[3]}")
    sh, sw = int(opt.strideH), int(opt.strideW)
    if min(sh, sw) < 1:
        raise ValueError("strides must be >= 1")
    _, pt = _padding(opt.padding, y.shape[1], w.shape[1], sh, 1)
    _, pl = _padding(opt.padding, y.shape[2], w.shape[2], sw, 1)
    act = int(getattr(opt, "fusedActivationFunction", 0) or 0)
    if act != 0:
        raise ValueError("a fused activation on TRANSPOSE_CONV is not supported")
    return {"stride": [sh, sw], "pad": [pt, pl], "activation": "none"}


def _c_name(stem: str) -> str:
    out = "".join(c if c.isalnum() else "_" for c in stem.lower())
    if not out or out[0].isdigit():
        out = "m_" + out
    return out
