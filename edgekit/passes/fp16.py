"""Float lowering: a float32 graph becomes an FP16 (or FP32) graph with a rounding contract per op.

Weights and biases are rounded once to the storage format (int8 weights of hybrid models are
dequantized exactly first), every activation becomes float16 (or stays float32), and each op gets
`attrs["fp16"]` (or `attrs["fp32"]`): the arithmetic its kernels must reproduce bit for bit,
as docs/numerics-fp16.md defines it. Constants the kernels read are named in `attrs["q"]`, as in
the integer path, so the renderer and the memory planner need nothing new.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.ir.graph import Graph, Op, Tensor

FLOAT_PRECISIONS = ("fp16", "fp32")
PRECISIONS = ("int8", *FLOAT_PRECISIONS)
CONTRACT_VERSION = 1
FLOAT_FAMILY = "fp16"  # codegen family of the float kernels, both storage formats

_STORAGE = {"fp16": ("float16", "binary16"), "fp32": ("float32", "binary32")}
_DOT = ("conv2d", "depthwise_conv2d", "fully_connected", "transpose_conv")
_ELEMENTWISE = ("add", "relu", "relu6", "leaky_relu", "hard_swish")
SUPPORTED = (*_DOT, "avg_pool2d", "max_pool2d", *_ELEMENTWISE, "reshape", "softmax")

# clamp bounds of each fused activation; None: no bound
ACTIVATION_BOUNDS: dict[str, tuple[float | None, float | None]] = {
    "none": (None, None),
    "relu": (0.0, None),
    "relu6": (0.0, 6.0),
    "relu_n1_to_1": (-1.0, 1.0),
}
_DOT_ORDER = {
    "conv2d": "per output: bias, then k = (ky, kx, ic) in filter order",
    "depthwise_conv2d": "per output: bias, then taps (ky, kx) in filter order",
    "fully_connected": "per output: bias, then k = 0 .. depth-1",
    "transpose_conv": "per output: bias, then k = (ky, kx, ic) in filter order over the taps "
    "(ky, kx) that reach an input pixel",
}


class UnsupportedFloatOp(ValueError):
    """An op or tensor type the float kernels do not implement."""


def contract(kind: str, precision: str, activation: str = "none") -> dict[str, Any]:
    """The arithmetic contract of one op, as recorded in op.attrs[precision]."""
    storage = _STORAGE[precision][1]
    lo, hi = ACTIVATION_BOUNDS[activation]
    c: dict[str, Any] = {
        "version": CONTRACT_VERSION,
        "storage": storage,
        "rounding": "nearest-even",
        "subnormals": "kept",
        "nan": "any NaN (payload and sign unspecified)",
        "clamp": [lo, hi],
    }
    if kind in _DOT:
        c.update(
            products="fused",
            accumulator=storage,
            order=_DOT_ORDER[kind],
            padding="taps that reach no input pixel are skipped"
            if kind == "transpose_conv"
            else "out-of-image taps are included with x = +0",
            lanes="vectors span outputs, never the reduction: no partial sums, no tree",
        )
    elif kind == "avg_pool2d":
        c.update(
            accumulator="binary32",
            order="+0, then in-image taps (ky, kx) in order",
            finish="sum / count in binary32 (count = in-image taps), rounded to storage",
        )
    elif kind == "max_pool2d":
        c.update(op="maximumNumber over in-image taps: NaN loses, -0 < +0")
    elif kind == "add":
        c.update(op="a + b rounded once")
    elif kind in ("relu", "relu6"):
        c.update(op="clamp")
    elif kind == "leaky_relu":
        c.update(
            compute="binary32",
            op="x >= 0 ? x : x * alpha (alpha binary32)",
            finish="rounded to storage",
        )
    elif kind == "hard_swish":
        c.update(
            compute="binary32",
            op="t = x + 3; t = t > 0 ? t : 0; t = t < 6 ? t : 6; y = (x * t) / 6",
            finish="each step rounded to binary32, y rounded to storage",
        )
    elif kind == "softmax":
        c.update(
            compute="binary32",
            max="maximumNumber over the row",
            exp="ek_expf_nonpositive of (x - max) [* beta]",
            sum="+0, then e_i in row order, binary32",
            finish="e_i / sum in binary32, rounded to storage",
        )
    else:
        c.update(op="copy")
    return c


def contract_of(op: Op) -> tuple[str, dict[str, Any]] | None:
    """(precision, contract) of a float op, or None for an integer op."""
    for precision in FLOAT_PRECISIONS:
        if precision in op.attrs:
            return precision, op.attrs[precision]
    return None


def float_families(families: list[str]) -> list[str]:
    """A target's kernel families with the float family first, so integer variants never see
    a float op (they do not check for one)."""
    return [FLOAT_FAMILY, *[f for f in families if f != FLOAT_FAMILY]]


# --- constants ---------------------------------------------------------------------------------


def real_values(t: Tensor) -> np.ndarray:
    """A constant's real values in float64, exactly: scale * (q - zero_point) for quantized
    integers (the product of a binary32 and a small integer is exact in double)."""
    assert t.data is not None
    data = t.data
    if t.dtype in ("float16", "float32"):
        return data.astype(np.float64)
    if t.quant is None:
        raise UnsupportedFloatOp(f"constant '{t.name}' is {t.dtype} without quantization")
    scale = t.quant.scale.astype(np.float64)
    zp = t.quant.zero_point.astype(np.float64)
    if t.quant.per_channel:
        shape = [1] * data.ndim
        shape[t.quant.axis or 0] = -1
        scale, zp = scale.reshape(shape), zp.reshape(shape)
    else:
        scale, zp = scale.reshape(-1)[0], zp.reshape(-1)[0]
    return scale * (data.astype(np.float64) - zp)


def _rounded(values: np.ndarray, dtype: str, what: str) -> np.ndarray:
    """`values` rounded once to `dtype`; a value beyond its range is refused, not made infinite."""
    with np.errstate(over="ignore"):
        out = np.ascontiguousarray(values.astype(dtype))
    if not np.all(np.isfinite(out)):
        worst = float(np.max(np.abs(values[np.isfinite(values)]), initial=0.0))
        raise UnsupportedFloatOp(
            f"{what} holds values that are not finite in {dtype} (largest magnitude {worst:g})"
        )
    return out


def _convert_const(t: Tensor, dtype: str) -> None:
    t.data = _rounded(real_values(t), dtype, f"constant '{t.name}'")
    t.dtype, t.quant = dtype, None


# --- per-op checks -----------------------------------------------------------------------------


def _q_for(graph: Graph, op: Op, dtype: str) -> dict[str, Any]:
    from edgekit.passes.float_checks import check_float_op
    from edgekit.passes.lower import UnsupportedOp

    try:
        check_float_op(graph, op)  # the shape relations lower.py checks on the INT8 path
    except UnsupportedOp as exc:
        raise UnsupportedFloatOp(str(exc)) from None
    x, y = graph.tensor(op.inputs[0]), graph.tensor(op.outputs[0])
    if op.kind in _DOT:
        w = graph.tensor(op.inputs[1])
        if w.data is None:
            raise UnsupportedFloatOp("weights must be constant")
        if op.kind == "fully_connected":
            if len(w.shape) != 2 or x.size % w.shape[1]:
                raise UnsupportedFloatOp(f"weights {list(w.shape)} do not fit input {x.shape}")
            channels = w.shape[0]
        else:
            channels = y.shape[3]
        bias = np.zeros(channels, dtype=np.float64)
        if len(op.inputs) > 2 and op.inputs[2]:
            b = graph.tensor(op.inputs[2])
            if b.data is None or b.size != channels:
                raise UnsupportedFloatOp("bias must be constant, one value per output channel")
            bias = real_values(b).reshape(-1)
        name = graph.add_const(f"{op.name}/bias", _rounded(bias, dtype, "the bias"))
        # the rounded copy replaces the source bias (which is dropped once nothing reads it)
        op.inputs[2:] = [name]
        q: dict[str, Any] = {"bias": name}
        if op.kind == "transpose_conv":
            q["weights"] = op.inputs[1]  # the renderer names conv filters itself, not this one
        if op.kind == "fully_connected":
            q.update(units=channels, depth=w.shape[1], batches=x.size // w.shape[1])
        return q
    if op.kind == "add":
        b = graph.tensor(op.inputs[1])
        if not (x.shape == b.shape == y.shape):
            raise UnsupportedFloatOp(
                f"broadcasting add {list(x.shape)} + {list(b.shape)} is not implemented"
            )
        return {"broadcast": None}
    if op.kind == "leaky_relu":
        raw = op.attrs.get("alpha", 0.0)
        with np.errstate(over="ignore"):
            alpha = np.float32(raw) if isinstance(raw, (int, float)) else np.float32("nan")
        if not np.isfinite(alpha):
            raise UnsupportedFloatOp(f"leaky_relu alpha {raw!r} is not a finite binary32 value")
        return {"alpha": float(alpha)}
    if op.kind == "softmax":
        beta = float(op.attrs.get("beta", 1.0))
        if not beta > 0:
            raise UnsupportedFloatOp(f"softmax beta {beta} must be positive")
        depth = x.shape[-1] if x.shape else 1
        return {"depth": depth, "rows": x.size // max(depth, 1), "beta": float(np.float32(beta))}
    if op.kind == "reshape" and x.size != y.size:
        raise UnsupportedFloatOp("reshape changes the element count")
    return {}


def _fuse_clamps(graph: Graph) -> None:
    """Fold a standalone RELU/RELU6 into its producer's activation: the producer's result is
    rounded before the clamp either way, so the values are identical and a pass disappears."""
    changed = True
    while changed:
        changed = False
        producers, consumers = graph.producers(), graph.consumers()
        for op in graph.ops:
            if op.kind not in ("relu", "relu6"):
                continue
            x = op.inputs[0]
            prod = producers.get(x)
            if (
                prod is None
                or prod.attrs.get("activation", None) != "none"
                or len(consumers.get(x, [])) != 1
                or x in graph.outputs
            ):
                continue
            prod.attrs["activation"] = op.kind
            prod.attrs["fused"] = [*prod.attrs.get("fused", []), op.kind]
            prod.outputs[0] = op.outputs[0]
            graph.ops.remove(op)
            del graph.tensors[x]
            changed = True
            break


def to_float(graph: Graph, precision: str = "fp16", where: str = "") -> Graph:
    """Convert a float32 graph in place; one error lists every op that cannot be converted."""
    if precision not in FLOAT_PRECISIONS:
        raise ValueError(f"precision must be one of {FLOAT_PRECISIONS}, not {precision!r}")
    dtype = _STORAGE[precision][0]
    integer = [t for t in graph.activations() if t.dtype not in ("float32", "float16")]
    if integer:
        raise EdgekitError(
            f"{len(integer)} activation tensor(s) are not float (e.g. '{integer[0].name}' is "
            f"{integer[0].dtype}): --precision {precision} compiles float32 models",
            where or graph.name,
            "this looks like a quantized model: compile it without --precision (int8), or "
            "give the float32 model",
        )
    problems: list[str] = []
    for idx, op in enumerate(graph.ops):
        if op.kind not in SUPPORTED:
            problems.append(f"  #{idx} {op.name}: no {precision} kernel for '{op.kind}' yet")
    if problems:
        raise EdgekitError(
            f"{len(problems)} operator(s) cannot be compiled to {precision}:\n"
            + "\n".join(problems),
            where or graph.name,
            f"--precision {precision} reads float32 models; supported: {', '.join(SUPPORTED)}",
        )
    _fuse_clamps(graph)
    converted: set[str] = set()
    for idx, op in enumerate(graph.ops):
        if op.kind in _ELEMENTWISE:
            const = [n for n in op.inputs if n in graph.tensors and graph.tensor(n).is_const]
            if const:
                # the elementwise kernels read both operands from the arena, never from constants
                problems.append(f"  #{idx} {op.name}: constant operand '{const[0]}': the "
                                f"{precision} {op.kind} kernel reads activations only")
                continue
        try:
            op.attrs["q"] = _q_for(graph, op, dtype)
        except UnsupportedFloatOp as exc:
            problems.append(f"  #{idx} {op.name}: {exc}")
            continue
        if op.kind in _DOT and op.inputs[1] not in converted:
            try:
                _convert_const(graph.tensor(op.inputs[1]), dtype)
            except UnsupportedFloatOp as exc:
                problems.append(f"  #{idx} {op.name}: {exc}")
                continue
            converted.add(op.inputs[1])
        # a standalone RELU/RELU6 is its own clamp
        act = op.kind if op.kind in ("relu", "relu6") else op.attrs.get("activation", "none")
        op.attrs[precision] = contract(op.kind, precision, act)
    if problems:
        raise EdgekitError(
            f"{len(problems)} operator(s) cannot be compiled to {precision}:\n"
            + "\n".join(problems),
            where or graph.name,
        )
    for t in graph.activations():
        t.dtype, t.quant = dtype, None
    used = {n for op in graph.ops for n in op.inputs} | {
        v for op in graph.ops for v in op.attrs["q"].values() if isinstance(v, str)
    }
    for name in [n for n, t in graph.tensors.items() if t.is_const and n not in used]:
        del graph.tensors[name]
    graph.meta["precision"] = precision
    graph.meta["lowered"] = True
    graph.validate()
    return graph
