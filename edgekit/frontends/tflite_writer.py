"""Write small, valid .tflite flatbuffers from Python, for tests and built-in demo models.

Everything goes through the generated object API of the TFLite schema, so the encoding is the
schema's own; this module only decides *what* to put in the model (tensors, buffers, option
tables, operator codes and their versions).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema

from edgekit.errors import EdgekitError

_TENSOR_TYPES: dict[np.dtype, int] = {
    np.dtype(np.int8): schema.TensorType.INT8,
    np.dtype(np.uint8): schema.TensorType.UINT8,
    np.dtype(np.int16): schema.TensorType.INT16,
    np.dtype(np.int32): schema.TensorType.INT32,
    np.dtype(np.int64): schema.TensorType.INT64,  # 16x8 biases
    np.dtype(np.float32): schema.TensorType.FLOAT32,
}

_ACTIVATIONS = {
    "NONE": schema.ActivationFunctionType.NONE,
    "RELU": schema.ActivationFunctionType.RELU,
    "RELU_N1_TO_1": schema.ActivationFunctionType.RELU_N1_TO_1,
    "RELU6": schema.ActivationFunctionType.RELU6,
    "TANH": schema.ActivationFunctionType.TANH,
}

_PADDINGS = {"SAME": schema.Padding.SAME, "VALID": schema.Padding.VALID}

# The schema marks Buffer.data with force_align: 16 but the Python generator ignores it; the
# converter honours it so that int32/float tensors can be read in place on strict-alignment MCUs.
_BUFFER_ALIGN = 16


class _AlignedBufferT(schema.BufferT):
    def Pack(self, builder: flatbuffers.Builder) -> int:  # noqa: N802 - overrides generated API
        if self.data is None:
            return super().Pack(builder)
        payload = bytes(self.data)
        builder.Prep(_BUFFER_ALIGN, len(payload))
        data = builder.CreateByteVector(payload)
        schema.BufferStart(builder)
        schema.BufferAddData(builder, data)
        return schema.BufferEnd(builder)


class _Tensor:
    """What the builder remembers about a tensor to pick op versions and default shapes."""

    def __init__(
        self,
        shape: tuple[int, ...],
        dtype: np.dtype,
        scale: np.ndarray | None,
        zero_point: np.ndarray | None,
    ) -> None:
        self.shape = shape
        self.dtype = dtype
        self.scale = scale
        self.zero_point = zero_point


class TFLiteBuilder:
    """Accumulates one subgraph and writes it as a TFLite model.

    Tensors are referred to by their integer index in the subgraph.
    """

    def __init__(self, description: str = "edgekit") -> None:
        self._description = description
        self._buffers: list[schema.BufferT] = [_AlignedBufferT()]  # buffer 0: empty sentinel
        self._tensors: list[schema.TensorT] = []
        self._info: list[_Tensor] = []
        self._operators: list[schema.OperatorT] = []
        self._opcodes: dict[tuple[int, int], int] = {}
        self._opcode_list: list[schema.OperatorCodeT] = []
        self._inputs: list[int] = []
        self._outputs: list[int] = []

    # -- tensors -------------------------------------------------------------------------------

    def tensor(
        self,
        name: str,
        shape: Sequence[int],
        dtype: Any,
        scale: float | Sequence[float] | np.ndarray | None = None,
        zero_point: int | Sequence[int] | np.ndarray | None = None,
        quantized_dimension: int = 0,
    ) -> int:
        """Add an activation (non-constant) tensor and return its index."""
        return self._add_tensor(name, shape, dtype, 0, scale, zero_point, quantized_dimension)

    def const(
        self,
        name: str,
        data: np.ndarray,
        scale: float | Sequence[float] | np.ndarray | None = None,
        zero_point: int | Sequence[int] | np.ndarray | None = None,
        quantized_dimension: int = 0,
    ) -> int:
        """Add a constant tensor holding `data` (its dtype and shape are the tensor's)."""
        data = np.asarray(data)
        # TFLite buffers are little-endian whatever the host is.
        data = np.ascontiguousarray(data, dtype=data.dtype.newbyteorder("<"))
        index = self._add_tensor(
            name, data.shape, data.dtype, len(self._buffers), scale, zero_point, quantized_dimension
        )
        buffer = _AlignedBufferT()
        buffer.data = np.frombuffer(data.tobytes(), dtype=np.uint8)
        self._buffers.append(buffer)
        return index

    def const_int4(
        self,
        name: str,
        values: np.ndarray,
        scale: float | Sequence[float] | np.ndarray | None = None,
        zero_point: int | Sequence[int] | np.ndarray | None = None,
        quantized_dimension: int = 0,
    ) -> int:
        """An INT4 constant: `values` (int8 in [-8, 7]) stored packed, two per byte, low nibble
        first (TFLite's layout; TFLM unpacks it for conv, depthwise and fully connected)."""
        from edgekit.ir import int4

        index = self.const(name, np.asarray(values, np.int8), scale, zero_point,
                           quantized_dimension)
        self._tensors[index].type = schema.TensorType.INT4
        self._buffers[-1].data = np.frombuffer(int4.pack(values).tobytes(), dtype=np.uint8)
        return index

    def _add_tensor(
        self,
        name: str,
        shape: Sequence[int],
        dtype: Any,
        buffer: int,
        scale: float | Sequence[float] | np.ndarray | None,
        zero_point: int | Sequence[int] | np.ndarray | None,
        quantized_dimension: int,
    ) -> int:
        dt = np.dtype(dtype)
        if dt not in _TENSOR_TYPES:
            raise EdgekitError(
                f"unsupported tensor dtype {dt}",
                where=f"tensor {name!r}",
                hint="use int8, uint8, int16, int32, int64 or float32",
            )
        t = schema.TensorT()
        t.name = name
        t.shape = np.asarray(shape, dtype=np.int32).reshape(-1)
        t.type = _TENSOR_TYPES[dt]
        t.buffer = buffer
        scales = zps = None
        if scale is not None:
            scales = np.atleast_1d(np.asarray(scale, dtype=np.float32))
            zps = np.atleast_1d(np.asarray(0 if zero_point is None else zero_point, np.int64))
            # The runtime indexes zero points per channel, so a scalar is broadcast to match.
            zps = np.broadcast_to(zps, scales.shape)
            q = schema.QuantizationParametersT()
            q.scale = [float(s) for s in scales]
            q.zeroPoint = [int(z) for z in zps]
            q.quantizedDimension = int(quantized_dimension)
            t.quantization = q
        self._tensors.append(t)
        self._info.append(_Tensor(tuple(int(d) for d in shape), dt, scales, zps))
        return len(self._tensors) - 1

    def name(self, index: int) -> str:
        return str(self._tensors[index].name)

    def shape(self, index: int) -> tuple[int, ...]:
        return self._info[index].shape

    def dtype(self, index: int) -> np.dtype:
        return self._info[index].dtype

    def scale(self, index: int) -> np.ndarray | None:
        return self._info[index].scale

    def zero_point(self, index: int) -> np.ndarray | None:
        return self._info[index].zero_point

    # -- operators -----------------------------------------------------------------------------

    def op(self, name: str, inputs: Sequence[int], outputs: Sequence[int], **options: Any) -> int:
        """Add a builtin operator and return its index.

        Operand tensors that TFLite passes as int32 constants may instead be given as keyword
        options (RESHAPE new_shape, PAD paddings, MEAN axis, STRIDED_SLICE begin/end/strides);
        the builder then creates the constant and appends it to `inputs`.
        """
        code = getattr(schema.BuiltinOperator, name, None)
        if not isinstance(code, int):
            raise EdgekitError(f"unknown builtin operator {name!r}", where="TFLiteBuilder.op")
        inputs = list(inputs)
        outputs = list(outputs)
        where = f"{name} operator #{len(self._operators)}"
        bad = [t for t in inputs + outputs if not -1 <= t < len(self._tensors)]
        if bad or -1 in outputs:
            raise EdgekitError(f"no tensor with index {(bad or [-1])[0]}", where=where)
        make = _OPTIONS.get(name)
        opts: tuple[int, Any] = (schema.BuiltinOptions.NONE, None)
        if make is not None:
            try:
                opts = make(self, name, inputs, outputs, options)
            except KeyError as exc:
                raise EdgekitError(f"missing option {exc}", where=where) from exc
            except (ValueError, TypeError) as exc:
                raise EdgekitError(f"bad options: {exc}", where=where) from exc
        if options:
            raise EdgekitError(
                f"unexpected options {sorted(options)}",
                where=where,
                hint="check the option names accepted for this operator in tflite_writer",
            )
        o = schema.OperatorT()
        o.opcodeIndex = self._opcode(code, _op_version(name, self, inputs, outputs, opts[1]))
        o.inputs = inputs
        o.outputs = outputs
        o.builtinOptionsType, o.builtinOptions = opts
        self._operators.append(o)
        return len(self._operators) - 1

    def _opcode(self, code: int, version: int) -> int:
        key = (code, version)
        if key not in self._opcodes:
            oc = schema.OperatorCodeT()
            oc.builtinCode = code
            # Readers older than schema v3a only look at the 8-bit field; codes above 127 live
            # in the new field and the old one holds the PLACEHOLDER_FOR_GREATER_OP_CODES value.
            oc.deprecatedBuiltinCode = min(code, 127)
            oc.version = version
            self._opcodes[key] = len(self._opcode_list)
            self._opcode_list.append(oc)
        return self._opcodes[key]

    # -- graph ---------------------------------------------------------------------------------

    def inputs(self, tensors: Sequence[int]) -> None:
        self._inputs = list(tensors)

    def outputs(self, tensors: Sequence[int]) -> None:
        self._outputs = list(tensors)

    def finish(self) -> bytes:
        """Serialise the model; can be called more than once."""
        if not self._inputs or not self._outputs:
            raise EdgekitError(
                "model has no inputs or no outputs",
                where="TFLiteBuilder.finish",
                hint="call inputs([...]) and outputs([...]) first",
            )
        sg = schema.SubGraphT()
        sg.tensors = self._tensors
        sg.inputs = self._inputs
        sg.outputs = self._outputs
        sg.operators = self._operators
        sg.name = "main"
        model = schema.ModelT()
        model.version = 3
        model.description = self._description
        model.operatorCodes = self._opcode_list
        model.subgraphs = [sg]
        model.buffers = self._buffers
        return pack_model(model)


def pack_model(model: schema.ModelT) -> bytes:
    """Serialise a schema ModelT (e.g. one read and edited) with 16-byte aligned buffers."""
    aligned = []
    for buf in model.buffers or []:
        if buf.data is not None and not isinstance(buf, _AlignedBufferT):
            copy = _AlignedBufferT()
            copy.data = buf.data
            buf = copy
        aligned.append(buf)
    original, model.buffers = model.buffers, aligned
    try:
        builder = flatbuffers.Builder(0)
        builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    finally:
        model.buffers = original
    return bytes(builder.Output())


# -- option tables ----------------------------------------------------------------------------

_OptionMaker = Callable[[TFLiteBuilder, str, list[int], list[int], dict[str, Any]], tuple[int, Any]]


def _pair(value: int | Sequence[int]) -> tuple[int, int]:
    """(h, w) from an int or a pair; TFLite stores H and W separately and it is easy to swap."""
    if isinstance(value, int | np.integer):
        return int(value), int(value)
    h, w = value
    return int(h), int(w)


def _choice(table: dict[str, int], options: dict[str, Any], key: str, default: str) -> int:
    value = str(options.pop(key, default)).upper()
    if value not in table:
        raise ValueError(f"{key}={value!r}, expected one of {sorted(table)}")
    return table[value]


def _activation(options: dict[str, Any]) -> int:
    return _choice(_ACTIVATIONS, options, "activation", "NONE")


def _padding(options: dict[str, Any]) -> int:
    return _choice(_PADDINGS, options, "padding", "VALID")


def _conv(b: TFLiteBuilder, name: str, ins: list[int], outs: list[int], o: dict) -> tuple:
    sh, sw = _pair(o.pop("stride", 1))
    dh, dw = _pair(o.pop("dilation", 1))
    if name == "CONV_2D":
        opt = schema.Conv2DOptionsT()
        kind = schema.BuiltinOptions.Conv2DOptions
    else:
        opt = schema.DepthwiseConv2DOptionsT()
        kind = schema.BuiltinOptions.DepthwiseConv2DOptions
        # Newer runtimes derive the multiplier from shapes, but older ones read this field.
        default_mult = b.shape(ins[1])[3] // max(b.shape(ins[0])[3], 1)
        opt.depthMultiplier = int(o.pop("depth_multiplier", default_mult))
    opt.padding = _padding(o)
    opt.strideH, opt.strideW = sh, sw
    opt.dilationHFactor, opt.dilationWFactor = dh, dw
    opt.fusedActivationFunction = _activation(o)
    return kind, opt


def _pool(b: TFLiteBuilder, name: str, ins: list[int], outs: list[int], o: dict) -> tuple:
    opt = schema.Pool2DOptionsT()
    opt.filterHeight, opt.filterWidth = _pair(o.pop("filter"))
    opt.strideH, opt.strideW = _pair(o.pop("stride", 1))
    opt.padding = _padding(o)
    opt.fusedActivationFunction = _activation(o)
    return schema.BuiltinOptions.Pool2DOptions, opt


def _fully_connected(
    b: TFLiteBuilder, name: str, ins: list[int], outs: list[int], o: dict
) -> tuple:
    opt = schema.FullyConnectedOptionsT()
    opt.fusedActivationFunction = _activation(o)
    opt.keepNumDims = bool(o.pop("keep_num_dims", False))
    return schema.BuiltinOptions.FullyConnectedOptions, opt


def _elementwise(b: TFLiteBuilder, name: str, ins: list[int], outs: list[int], o: dict) -> tuple:
    table = {
        "ADD": (schema.AddOptionsT, schema.BuiltinOptions.AddOptions),
        "SUB": (schema.SubOptionsT, schema.BuiltinOptions.SubOptions),
        "MUL": (schema.MulOptionsT, schema.BuiltinOptions.MulOptions),
    }
    cls, kind = table[name]
    opt = cls()
    opt.fusedActivationFunction = _activation(o)
    if hasattr(opt, "potScaleInt16"):
        # The schema default (true) selects the power-of-two int16 kernel; general scales are
        # what a quantizer produces, and the flag is ignored for int8.
        opt.potScaleInt16 = bool(o.pop("pot_scale_int16", False))
    return kind, opt


def _const_operand(
    b: TFLiteBuilder, ins: list[int], outs: list[int], o: dict, key: str, suffix: str
) -> np.ndarray | None:
    """Create the int32 constant operand `key` if given as an option and append it to ins."""
    if key not in o:
        return None
    value = np.asarray(o.pop(key), dtype=np.int32)
    ins.append(b.const(f"{b.name(outs[0])}/{suffix}", value))
    return value


def _reshape(b: TFLiteBuilder, name: str, ins: list[int], outs: list[int], o: dict) -> tuple:
    if len(ins) == 1:
        o.setdefault("new_shape", b.shape(outs[0]))
    shape = _const_operand(b, ins, outs, o, "new_shape", "shape")
    opt = schema.ReshapeOptionsT()
    opt.newShape = [int(d) for d in (shape if shape is not None else b.shape(outs[0]))]
    return schema.BuiltinOptions.ReshapeOptions, opt


def _softmax(b: TFLiteBuilder, name: str, ins: list[int], outs: list[int], o: dict) -> tuple:
    opt = schema.SoftmaxOptionsT()
    opt.beta = float(o.pop("beta", 1.0))
    return schema.BuiltinOptions.SoftmaxOptions, opt


def _pad(b: TFLiteBuilder, name: str, ins: list[int], outs: list[int], o: dict) -> tuple:
    _const_operand(b, ins, outs, o, "paddings", "paddings")
    return schema.BuiltinOptions.PadOptions, schema.PadOptionsT()


def _concatenation(b: TFLiteBuilder, name: str, ins: list[int], outs: list[int], o: dict) -> tuple:
    opt = schema.ConcatenationOptionsT()
    opt.axis = int(o.pop("axis"))
    opt.fusedActivationFunction = _activation(o)
    return schema.BuiltinOptions.ConcatenationOptions, opt


def _mean(b: TFLiteBuilder, name: str, ins: list[int], outs: list[int], o: dict) -> tuple:
    _const_operand(b, ins, outs, o, "axis", "axis")
    opt = schema.ReducerOptionsT()
    opt.keepDims = bool(o.pop("keep_dims", False))
    return schema.BuiltinOptions.ReducerOptions, opt


def _strided_slice(b: TFLiteBuilder, name: str, ins: list[int], outs: list[int], o: dict) -> tuple:
    for key in ("begin", "end", "strides"):
        _const_operand(b, ins, outs, o, key, key)
    opt = schema.StridedSliceOptionsT()
    opt.beginMask = int(o.pop("begin_mask", 0))
    opt.endMask = int(o.pop("end_mask", 0))
    opt.ellipsisMask = int(o.pop("ellipsis_mask", 0))
    opt.newAxisMask = int(o.pop("new_axis_mask", 0))
    opt.shrinkAxisMask = int(o.pop("shrink_axis_mask", 0))
    return schema.BuiltinOptions.StridedSliceOptions, opt


def _squeeze(b: TFLiteBuilder, name: str, ins: list[int], outs: list[int], o: dict) -> tuple:
    opt = schema.SqueezeOptionsT()
    opt.squeezeDims = [int(d) for d in o.pop("squeeze_dims", [])]
    return schema.BuiltinOptions.SqueezeOptions, opt


def _leaky_relu(b: TFLiteBuilder, name: str, ins: list[int], outs: list[int], o: dict) -> tuple:
    opt = schema.LeakyReluOptionsT()
    opt.alpha = float(o.pop("alpha"))
    return schema.BuiltinOptions.LeakyReluOptions, opt


def _transpose_conv(
    b: TFLiteBuilder, name: str, ins: list[int], outs: list[int], o: dict
) -> tuple:
    """Inputs are given as (filter, input[, bias]); the int32 output-shape operand TFLite wants
    first is made here from the output tensor (or the `output_shape` option)."""
    shape = np.asarray(o.pop("output_shape", b.shape(outs[0])), dtype=np.int32)
    ins.insert(0, b.const(f"{b.name(outs[0])}/output_shape", shape))
    opt = schema.TransposeConvOptionsT()
    opt.padding = _padding(o)
    opt.strideH, opt.strideW = _pair(o.pop("stride", 1))
    opt.fusedActivationFunction = _activation(o)
    return schema.BuiltinOptions.TransposeConvOptions, opt


_OPTIONS: dict[str, _OptionMaker] = {
    "CONV_2D": _conv,
    "DEPTHWISE_CONV_2D": _conv,
    "FULLY_CONNECTED": _fully_connected,
    "AVERAGE_POOL_2D": _pool,
    "MAX_POOL_2D": _pool,
    "ADD": _elementwise,
    "SUB": _elementwise,
    "MUL": _elementwise,
    "RESHAPE": _reshape,
    "SOFTMAX": _softmax,
    "PAD": _pad,
    "CONCATENATION": _concatenation,
    "MEAN": _mean,
    "STRIDED_SLICE": _strided_slice,
    "SQUEEZE": _squeeze,
    "LEAKY_RELU": _leaky_relu,
    "TRANSPOSE_CONV": _transpose_conv,
}


# -- operator versions ------------------------------------------------------------------------

# Ops whose version is 2 for int8 and 3 for int16 activations (TFLite's op_version rules).
_V2_INT8_V3_INT16 = {
    "AVERAGE_POOL_2D",
    "MAX_POOL_2D",
    "RELU",
    "RELU6",
    "SOFTMAX",
    "MEAN",
    "LOGISTIC",
    "TANH",
    "PAD",
    "CONCATENATION",
}


def _op_version(name: str, b: TFLiteBuilder, ins: list[int], outs: list[int], opt: Any) -> int:
    """The version a converter would stamp on this op, following TFLite's op_version rules.

    TFLM's op resolver ignores versions, but LiteRT and other readers reject ops whose version
    is too low for the types used, so the numbers matter for the files we hand out.
    """
    i8, i16, f32 = np.dtype(np.int8), np.dtype(np.int16), np.dtype(np.float32)
    a = b.dtype(ins[0]) if ins else None
    w = b.dtype(ins[1]) if len(ins) > 1 else None
    y = b.dtype(outs[0]) if outs else None
    if name == "CONV_2D":
        if a == i16 and w == i8:
            return 4
        if a == i8 and w == i8:
            return 3
        return 2 if (a == f32 and w == i8) else 1
    if name == "DEPTHWISE_CONV_2D":
        if a == i16 and w == i8:
            return 5
        if a == i8 and w == i8:
            return 3
        if a == f32 and w == i8:
            return 4
        return 2 if (opt.dilationHFactor != 1 or opt.dilationWFactor != 1) else 1
    if name == "FULLY_CONNECTED":
        if len(ins) == 2:
            return 6
        if opt.keepNumDims:
            return 5
        if a == i8 and w == i8 and y == i8:
            return 4
        return 3 if (a == f32 and w == i8) else 1
    if name in ("ADD", "SUB", "MUL"):
        if a == i16:
            return {"ADD": 3, "SUB": 5, "MUL": 4}[name]
        if name == "MUL" and a == i8:
            s1, s2, so = (b.scale(t) for t in (ins[0], ins[1], outs[0]))
            if s1 is not None and s2 is not None and so is not None and s1[0] * s2[0] / so[0] >= 1:
                return 3
        return 2 if a == i8 else 1
    if name in _V2_INT8_V3_INT16:
        if name == "PAD" and len(b.shape(ins[0])) > 4:
            return 4
        return 3 if a == i16 else 2 if (a == i8 or (name == "RELU" and a == np.uint8)) else 1
    if name == "QUANTIZE":
        return 2 if y == i16 else 1
    if name == "LEAKY_RELU":
        return 2 if a == i16 else 1
    if name == "TRANSPOSE_CONV":
        # ins[0] is the shape operand here: the activation is ins[2]
        x = b.dtype(ins[2])
        if x == i16:
            return 4
        if len(ins) == 4 and ins[3] >= 0:
            return 3
        return 2 if x == i8 else 1
    if name == "DEQUANTIZE":
        return 3 if a == i16 else 2 if a == i8 else 1
    if name == "STRIDED_SLICE":
        if opt.ellipsisMask or opt.newAxisMask:
            return 6
        if len(b.shape(ins[0])) > 4:
            return 4
        return 2 if a == i8 else 1
    return 1
