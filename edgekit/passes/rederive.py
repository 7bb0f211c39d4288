"""Accept a lowered .ekir only if this edgekit derives exactly the same lowering from it.

A lowered graph carries what the kernels index memory with: per-channel constants, loop counts,
kernel choices and their prepared layouts and scratch sizes. Trusting those from a file would let
a corrupt or hostile .ekir turn into out-of-bounds C. So the derived parts are dropped, the
semantic graph (tensors, ops and their frontend attributes) is lowered and prepared again, and the
file is accepted only when every derived value is identical. The one freedom is a clamp range that
fused activations narrowed (`attrs["fused"]`): it must lie inside the op's own range.

A float (FP16/FP32) graph is re-derived the same way: its semantic graph is converted again by
passes/fp16.py, which checks every shape relation the float kernels index memory with, and the
file's contracts, kernel parameters and constants must equal the ones derived.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.ir.graph import Graph, Op
from edgekit.passes.fp16 import FLOAT_PRECISIONS, PRECISIONS, to_float
from edgekit.passes.lower import lower
from edgekit.passes.overflow import check_overflow

# Attributes passes and kernel preparation add; everything else is frontend semantics.
_DERIVED_ATTRS = ("q", "kernel", "scratch_bytes", "overflow")
_FUSABLE = {"relu", "relu6", "quantize"}


def _canonical(value: Any) -> str:
    # ints and floats stay distinct (1 vs 1.0 would print differently into C)
    return json.dumps(value, sort_keys=True, default=lambda v: v.item())


def _semantic(graph: Graph) -> Graph:
    """A copy without derived attributes or the constants only they refer to."""
    g = copy.deepcopy(graph)
    used = set(g.inputs) | set(g.outputs) | {t for op in g.ops for t in op.inputs + op.outputs}
    # semantic constants are op inputs; the rest were added by lowering or kernel preparation
    g.tensors = {n: t for n, t in g.tensors.items() if n in used or not t.is_const}
    for op in g.ops:
        for key in _DERIVED_ATTRS:
            op.attrs.pop(key, None)
    g.meta.pop("lowered", None)
    return g


def _narrowed_range(theirs: dict[str, Any], ours: dict[str, Any], op: Op) -> None:
    """Take the file's clamp range when fused activations may have narrowed it."""
    fused = op.attrs.get("fused", [])
    if not isinstance(fused, list) or not all(f in _FUSABLE for f in fused):
        raise ValueError(f"fused activations {fused!r}")
    if not fused or "act_min" not in ours:
        return
    lo, hi = theirs.get("act_min"), theirs.get("act_max")
    if type(lo) is not int or type(hi) is not int:  # not bool either: it would print as True
        raise ValueError("q.act_min/act_max")
    if not ours["act_min"] <= lo <= hi <= ours["act_max"]:
        raise ValueError(f"clamp [{lo}, {hi}] outside [{ours['act_min']}, {ours['act_max']}]")
    ours["act_min"], ours["act_max"] = lo, hi


def _prepare(graph: Graph, op: Op, kernel: Any, theirs_q: Any = None) -> None:
    from codegen.kernels import variant_of

    op.attrs["kernel"] = kernel
    # the file's parameters name the variant where several share a template
    v = variant_of(op, theirs_q if isinstance(theirs_q, dict) else None)
    if v.accepts is not None and not v.accepts(graph, op):
        raise ValueError(f"kernel {kernel} does not accept this op")
    if v.prepare is not None:
        v.prepare(graph, op)


def _same_tensors(theirs: Graph, ours: Graph) -> str | None:
    """Every tensor edgekit derives must be in the file, identical; unused extras are dropped."""
    for name, t in ours.tensors.items():
        f = theirs.tensors.get(name)
        if f is None:
            return f"tensor '{name}' is missing"
        if (f.shape, f.dtype, f.quant) != (t.shape, t.dtype, t.quant):
            return f"tensor '{name}'"
        if (f.data is None) != (t.data is None) or (
            t.data is not None and not np.array_equal(f.data, t.data)
        ):
            return f"data of '{name}'"
    return None


def rederive_lowered(graph: Graph, where: str) -> Graph:
    """The graph re-lowered from its semantics, if that reproduces the file; else EdgekitError."""
    if not graph.meta.get("lowered"):
        # an unlowered file is lowered by compile_graph: leftovers of a lowering are dropped
        g = _semantic(graph)
        for op in g.ops:
            op.attrs.pop("fused", None)
        return g
    precision = graph.meta.get("precision", "int8")
    if precision in FLOAT_PRECISIONS:
        return _rederive_float(graph, precision, where)
    if precision != "int8":
        raise EdgekitError(
            f"unknown precision {precision!r} in a lowered file",
            where,
            f"edgekit writes one of {', '.join(PRECISIONS)}; regenerate the file",
        )
    problem = None
    try:
        ours = _lowered_again(graph, where)
        for theirs_op, op in zip(graph.ops, ours.ops, strict=True):
            if "kernel" in theirs_op.attrs:
                _prepare(ours, op, theirs_op.attrs["kernel"], theirs_op.attrs["q"])
            for key in _DERIVED_ATTRS[:3]:
                if _canonical(theirs_op.attrs.get(key)) != _canonical(op.attrs.get(key)):
                    raise ValueError(f"{op.name}: {key}")
        problem = _same_tensors(graph, ours)
    except (ValueError, LookupError, TypeError, AttributeError, ArithmeticError) as exc:
        problem = str(exc)
    if problem:
        raise EdgekitError(
            f"lowered parameters differ from what this edgekit derives from the model ({problem})",
            where,
            "the file is corrupt or was written by another edgekit version; regenerate it",
        )
    return ours


def _lowered_again(graph: Graph, where: str) -> Graph:
    """An int8 lowered graph lowered again from its semantics, without kernels, keeping the
    file's clamp ranges where fused activations narrowed them (ValueError if it has none)."""
    ours = _semantic(graph)
    lower(ours, where)
    ours.meta = copy.deepcopy(graph.meta)
    # the overflow pass derives q too (acc64, sum_cap on layers it widens or splits)
    check_overflow(ours, where)
    for theirs_op, op in zip(graph.ops, ours.ops, strict=True):
        theirs_q = theirs_op.attrs.get("q")
        if not isinstance(theirs_q, dict):
            raise ValueError(f"{op.name}: no lowered parameters")
        _narrowed_range(theirs_q, op.attrs["q"], op)
    return ours


def _converted_again(graph: Graph, precision: str, where: str) -> Graph:
    """A float graph converted again from its semantics, without kernels."""
    ours = _float_semantic(graph)
    to_float(ours, precision, where)
    return ours


def _float_semantic(graph: Graph) -> Graph:
    """A converted float graph made ready for `to_float` again: no derived attributes or
    contracts, and each rounded bias renamed as the source of the one derived under its name."""
    ours = _semantic(graph)
    for op in ours.ops:
        for p in FLOAT_PRECISIONS:
            op.attrs.pop(p, None)
        bias = f"{op.name}/bias"
        if bias in op.inputs[2:3] and bias in ours.tensors:
            source = ours.tensors.pop(bias)
            source.name = f"{bias}/source"
            ours.tensors[source.name] = source
            op.inputs[2] = source.name
    ours.meta.pop("precision", None)
    return ours


def relower_without_kernels(graph: Graph, where: str) -> Graph:
    """The lowered graph derived again from its semantics with no kernel chosen, for compiling
    a file on a target its recorded kernels do not fit (Helium kernels on the host, say). Int8
    keeps the file's narrowed clamps, as rederive_lowered does; float clamps are semantic."""
    precision = str(graph.meta.get("precision", "int8"))
    try:
        if precision in FLOAT_PRECISIONS:
            return _converted_again(graph, precision, where)
        return _lowered_again(graph, where)
    except (ValueError, LookupError, TypeError, AttributeError, ArithmeticError) as exc:
        raise EdgekitError(
            f"cannot lower this file again for another target ({exc})",
            where,
            "generate it for this target from the source model",
        ) from None


def _rederive_float(graph: Graph, precision: str, where: str) -> Graph:
    """The float graph converted again from its semantics, if that reproduces the file."""
    problem = None
    try:
        ours = _converted_again(graph, precision, where)
        ours.meta = copy.deepcopy(graph.meta)
        if len(graph.ops) != len(ours.ops):
            raise ValueError("the ops differ")
        for theirs_op, op in zip(graph.ops, ours.ops, strict=True):
            if "kernel" in theirs_op.attrs:
                _prepare(ours, op, theirs_op.attrs["kernel"], theirs_op.attrs.get("q"))
            for key in (*_DERIVED_ATTRS, precision):
                if _canonical(theirs_op.attrs.get(key)) != _canonical(op.attrs.get(key)):
                    raise ValueError(f"{op.name}: {key}")
                if key in op.attrs:
                    # equal values; the file's key order orders the constants in the C
                    op.attrs[key] = copy.deepcopy(theirs_op.attrs[key])
        problem = _same_tensors(graph, ours)
    except (ValueError, LookupError, TypeError, AttributeError, ArithmeticError) as exc:
        problem = str(exc)
    if problem:
        raise EdgekitError(
            f"{precision} parameters differ from what this edgekit derives from the model "
            f"({problem})",
            where,
            "the file is corrupt or was written by another edgekit version; regenerate it",
        )
    # the file's tensor order, which orders the constants in the generated C
    ours.tensors = {n: ours.tensors[n] for n in graph.tensors if n in ours.tensors} | ours.tensors
    return ours
