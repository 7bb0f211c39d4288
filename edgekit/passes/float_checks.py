"""Shape relations of float ops, checked before the FP16/FP32 kernels index memory with them.

The INT8 path checks every relation a kernel relies on in passes/lower.py. The float path
(passes/fp16.py) converts the graph without lowering it, so the same relations are checked here
with lower's helpers: a filter whose input channels differ from the input's would otherwise make
the generated conv read past its weights (found by fuzzing the ONNX reader: a flipped dim turned
an 8-channel filter into a 1-channel one).
"""

from __future__ import annotations

from edgekit.ir.graph import Graph, Op, Tensor
from edgekit.passes.lower import _C_INT_LIMIT, UnsupportedOp, _ints


def _geometry(op: Op, x: Tensor, y: Tensor, kh: int, kw: int, dilated: bool = True) -> None:
    """4-D NHWC shapes with one batch size, and window attributes that are integers in range.
    Unlike INT8 (TFLite's SAME or VALID only), float kernels take any explicit pad and bound
    every input read by the input's size, so the output size is not tied to one padding rule."""
    if len(x.shape) != 4 or len(y.shape) != 4 or x.shape[0] != y.shape[0]:
        raise UnsupportedOp(
            f"expects 4-D NHWC input and output with one batch size, got "
            f"{list(x.shape)} -> {list(y.shape)}"
        )
    _ints(op.attrs.get("stride"), "stride", 2, 1)
    if dilated:
        _ints(op.attrs.get("dilation"), "dilation", 2, 1)
    _ints(op.attrs.get("pad"), "pad", 2, 0)
    if min(kh, kw) < 1:
        raise UnsupportedOp(f"filter {kh}x{kw} is empty")
    if max(x.size, y.size) * max(kh * kw, 1) > _C_INT_LIMIT * 4:
        raise UnsupportedOp("window geometry is too large")


def check_float_op(graph: Graph, op: Op) -> None:
    """Raise UnsupportedOp unless op's shapes and window attributes agree with each other."""
    x, y = graph.tensor(op.inputs[0]), graph.tensor(op.outputs[0])
    if op.kind in ("conv2d", "depthwise_conv2d", "transpose_conv"):
        w = graph.tensor(op.inputs[1])
        if len(w.shape) != 4:
            raise UnsupportedOp(f"filter must be 4-D, got {list(w.shape)}")
        _geometry(op, x, y, w.shape[1], w.shape[2], dilated=op.kind != "transpose_conv")
        channels = y.shape[3]
        if op.kind in ("conv2d", "transpose_conv"):
            expect = (channels, w.shape[1], w.shape[2], x.shape[3])
        else:
            mult = op.attrs.get("depth_multiplier", channels // max(x.shape[3], 1))
            if not isinstance(mult, int) or mult < 1 or x.shape[3] * mult != channels:
                raise UnsupportedOp(
                    f"depth multiplier {mult!r} does not map {x.shape[3]} input channels to "
                    f"{channels}"
                )
            expect = (1, w.shape[1], w.shape[2], channels)
        if tuple(w.shape) != expect:
            raise UnsupportedOp(f"filter shape {list(w.shape)} should be {list(expect)}")
    elif op.kind == "fully_connected":
        w = graph.tensor(op.inputs[1])
        if len(w.shape) != 2 or w.shape[1] == 0 or x.size % w.shape[1]:
            raise UnsupportedOp(f"weights {list(w.shape)} do not fit input {list(x.shape)}")
        if y.size != (x.size // w.shape[1]) * w.shape[0]:
            raise UnsupportedOp(
                f"output {list(y.shape)} is not {x.size // w.shape[1]} x {w.shape[0]} values"
            )
    elif op.kind in ("avg_pool2d", "max_pool2d"):
        fh, fw = _ints(op.attrs.get("filter"), "filter", 2, 1)
        _geometry(op, x, y, fh, fw, dilated=False)
        if x.shape[3] != y.shape[3]:
            raise UnsupportedOp(f"pooling changes the channels: {list(x.shape)} -> {list(y.shape)}")
    elif op.kind in ("relu", "relu6", "leaky_relu", "hard_swish", "softmax", "reshape") and (
        x.size != y.size
    ):
        raise UnsupportedOp(f"'{x.name}' has {x.size} elements but '{y.name}' has {y.size}")
