"""Mixed int8/int16 activations: which ops run TFLite's 16x8 kernels, and the boundaries between.

A 16x8 op reads and writes int16 activations (symmetric, zero point 0, as TFLite requires) with
int8 weights and int64 biases. Ops chosen for int16 but without a 16x8 kernel here stay int8. Data
movement ops (pooling, reshape) follow the precision of their input, so an int16 layer does not
force a conversion before its pooling. Where a producer's precision differs from what its
consumer runs, a QUANTIZE op requantizes between int8 and int16 (TFLM's QUANTIZE does both ways).
"""

from __future__ import annotations

from collections.abc import Iterable

from edgekit.errors import EdgekitError
from edgekit.ir.graph import Graph, Op, Tensor

# ops with a 16x8 kernel in portable C (and in TFLite Micro, the oracle)
INT16_OPS = {"conv2d", "depthwise_conv2d", "fully_connected", "add", "sub", "mul"}
# ops that copy or compare stored values: they run in whatever precision their input has
FOLLOW = {"avg_pool2d", "max_pool2d", "reshape", "pad", "strided_slice"}
INT16_MAX = 32767


def symmetric_int16(lo: float, hi: float) -> tuple[float, int]:
    """(scale, zero point 0) covering [lo, hi] with int16 [-32767, 32767]."""
    m = max(abs(lo), abs(hi))
    return (m / INT16_MAX if m > 0 else 1.0 / INT16_MAX), 0


def check_layers(graph: Graph, names: Iterable[str], where: str = "") -> set[str]:
    """The requested int16 layer names, each an op of the graph that has a 16x8 kernel."""
    kinds = {op.name: op.kind for op in graph.ops}
    chosen = set(names)
    unknown = sorted(n for n in chosen if n not in kinds)
    if unknown:
        raise EdgekitError(
            f"--int16-layers names no layer {', '.join(unknown)}",
            where or graph.name,
            "layer names are listed by `edgekit describe`: " + ", ".join(list(kinds)[:8]) + "...",
        )
    bad = sorted(n for n in chosen if kinds[n] not in INT16_OPS | FOLLOW)
    if bad:
        raise EdgekitError(
            f"no int16 kernel for layer(s) {', '.join(f'{n} ({kinds[n]})' for n in bad)}",
            where or graph.name,
            "int16 activations are implemented for " + ", ".join(sorted(INT16_OPS | FOLLOW)),
        )
    return chosen


def plan(graph: Graph, wanted: set[str] | None) -> dict[str, str]:
    """Op name -> "int8" or "int16". wanted None means every op that can run int16."""
    out: dict[str, str] = {}
    made: dict[str, str] = {}
    for op in graph.ops:
        if op.kind in INT16_OPS and (wanted is None or op.name in wanted):
            dt = "int16"
        elif op.kind in FOLLOW:
            # an explicitly named pool/reshape runs int16; otherwise it follows its input (a
            # graph input counts as int16 when every layer is)
            named = wanted is not None and op.name in wanted
            dt = "int16" if named else made.get(op.inputs[0], "int16" if wanted is None else "int8")
        else:
            dt = "int8"
        out[op.name] = dt
        for t in op.outputs:
            made[t] = dt
    return out


def insert_boundaries(graph: Graph, ranges: dict[str, tuple[float, float]],
                      op_dtype: dict[str, str]) -> dict[str, str]:
    """Add QUANTIZE ops where precisions meet (in place); return every activation's dtype.

    A graph input takes the precision of its consumers when they agree, else int8. The copies
    inherit their source's observed range.
    """
    consumers = graph.consumers()
    dtype: dict[str, str] = {}
    for name in graph.inputs:
        wanted = {op_dtype.get(c.name, "int8") for c in consumers.get(name, [])}
        dtype[name] = wanted.pop() if len(wanted) == 1 else "int8"
    ops: list[Op] = []
    copies: dict[tuple[str, str], str] = {}
    for op in graph.ops:
        need = op_dtype.get(op.name, "int8")
        for i, src in enumerate(op.inputs):
            t = graph.tensors.get(src) if src else None
            if t is None or t.is_const or dtype.get(src, "int8") == need:
                continue
            key = (src, need)
            if key not in copies:
                name = f"{src}/as_{need}"
                graph.tensors[name] = Tensor(name, t.shape, "float32")
                ranges[name] = ranges.get(src, (0.0, 0.0))
                ops.append(Op("quantize", f"{op.name}_in{i}_to_{need}", [src], [name], {}))
                dtype[name] = need
                copies[key] = name
            op.inputs[i] = copies[key]
        ops.append(op)
        for t in op.outputs:
            dtype[t] = need
    graph.ops = ops
    return dtype


INT4_OPS = {"conv2d", "depthwise_conv2d", "fully_connected"}


def check_int4_layers(graph: Graph, names: Iterable[str], where: str = "") -> None:
    """Every --int4-layers name is a conv/depthwise/dense op of the graph."""
    kinds = {op.name: op.kind for op in graph.ops}
    bad = sorted(n for n in names if kinds.get(n) not in INT4_OPS)
    if bad:
        raise EdgekitError(
            f"--int4-layers: {', '.join(bad)} is not a conv, depthwise or dense layer of the model",
            where or graph.name,
            "int4 weights apply to " + ", ".join(sorted(INT4_OPS)) + " layers, named as "
            "`edgekit describe` prints them",
        )
