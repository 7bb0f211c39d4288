"""Kernel variants and how one is chosen for an op on a target.

A variant is a template for one op kind in one kernel family (portable C, Arm DSP, MVE, RVV...).
Targets list the families they prefer; the first family that has a variant for the op, whose
required capabilities the target has, and which accepts the op's shapes, is used. Adding an
optimised kernel is adding a template and one `register` line, not changing the renderer.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from edgekit.ir.graph import Graph, Op

Predicate = Callable[[Graph, Op], bool]
# Build-time preparation of a chosen variant: adds target-specific constants (e.g. weights
# re-laid out for SIMD loads) to the graph, names them in op.attrs["q"], and may set
# op.attrs["scratch_bytes"] so the memory planner reserves the variant's work buffer.
Prepare = Callable[[Graph, Op], None]


@dataclass(frozen=True)
class KernelVariant:
    family: str
    kind: str
    template: str
    requires: frozenset[str] = frozenset()
    accepts: Predicate | None = None
    prepare: Prepare | None = None
    # q entries that tell this variant from others sharing its template (the Arm FP16 variants
    # share fp16/matmul128.c.j2 and differ in q["arm_isa"])
    tag: tuple[tuple[str, Any], ...] = ()


_REGISTRY: dict[tuple[str, str], list[KernelVariant]] = {}


def register(
    family: str,
    kind: str,
    template: str,
    requires: Iterable[str] = (),
    accepts: Predicate | None = None,
    prepare: Prepare | None = None,
    tag: dict[str, Any] | None = None,
) -> None:
    _REGISTRY.setdefault((family, kind), []).append(
        KernelVariant(
            family, kind, template, frozenset(requires), accepts, prepare,
            tuple(sorted((tag or {}).items())),
        )  # fmt: skip
    )


INT16_FAMILIES = {"portable"}


def _has_int16(graph: Graph, op: Op) -> bool:
    """An integer op (one portable C implements) with an int16 activation (a 16x8 op) or packed
    int4 weights: only the portable kernels implement those."""
    return op.kind in _PORTABLE and any(
        t in graph.tensors
        and (graph.tensors[t].dtype == "int4"
             or (graph.tensors[t].dtype == "int16" and not graph.tensors[t].is_const))
        for t in op.inputs + op.outputs
    )


def select(graph: Graph, op: Op, families: list[str], capabilities: set[str]) -> KernelVariant:
    """The first variant, in the target's family order, that can run this op."""
    _load_families()
    # optimised integer kernels are written for int8 activations and weights; a 16x8 (int16) op
    # or one with int4 weights runs the portable kernel unless a family is listed here
    # so does an int8 layer the overflow pass widened to an int64 accumulator
    wide = _has_int16(graph, op) or bool(op.attrs.get("q", {}).get("acc64"))
    for family in [*families, "portable"]:
        if wide and family not in INT16_FAMILIES:
            continue
        for v in _REGISTRY.get((family, op.kind), []):
            if v.requires <= capabilities and (v.accepts is None or v.accepts(graph, op)):
                return v
    raise LookupError(f"no kernel for op kind '{op.kind}'")


def assign_kernels(graph: Graph, families: list[str], capabilities: set[str]) -> None:
    """Choose every op's variant before memory planning, so scratch buffers can be planned.

    The choice is recorded in op.attrs["kernel"] (family and template) and travels with the
    .ekir file; an op that already has one keeps it.
    """
    for op in graph.ops:
        if "kernel" in op.attrs:
            continue
        v = select(graph, op, families, capabilities)
        if v.prepare is not None:
            v.prepare(graph, op)
        op.attrs["kernel"] = {"family": v.family, "template": v.template}


def kernels_fit(graph: Graph, families: list[str], capabilities: set[str]) -> bool:
    """Whether every kernel recorded on the graph's ops is one this target can select: a family
    it lists (or portable) and capabilities it has."""
    allowed = {*families, "portable"}
    for op in graph.ops:
        if "kernel" not in op.attrs:
            continue
        try:
            v = variant_of(op)
        except (LookupError, TypeError):
            return False
        if v.family not in allowed or not v.requires <= capabilities:
            return False
    return True


def variant_of(op: Op, q: dict[str, Any] | None = None) -> KernelVariant:
    """The variant recorded on an op by assign_kernels: its family and template, and among
    variants sharing those, the one whose tag the op's prepared parameters carry (`q`, by
    default the op's own)."""
    _load_families()
    k = op.attrs["kernel"]
    params = op.attrs.get("q", {}) if q is None else q
    if not isinstance(params, dict):
        params = {}
    for v in _REGISTRY.get((k["family"], op.kind), []):
        if v.template == k["template"] and all(params.get(n) == x for n, x in v.tag):
            return v
    raise LookupError(f"{op.name}: kernel {k} is not available in this edgekit")


_PORTABLE = {
    "conv2d": "conv2d",
    "depthwise_conv2d": "depthwise_conv2d",
    "fully_connected": "fully_connected",
    "avg_pool2d": "pool2d",
    "max_pool2d": "pool2d",
    "add": "add_sub",
    "sub": "add_sub",
    "mul": "mul",
    "softmax": "softmax",
    "quantize": "requant",
    "relu": "requant",
    "relu6": "requant",
    "dequantize": "dequantize",
    "reshape": "reshape",
    "logistic": "sigmoid_tanh",
    "tanh": "sigmoid_tanh",
    "pad": "pad",
    "concat": "concat",
    "mean": "mean",
    "strided_slice": "strided_slice",
}
for _kind, _template in _PORTABLE.items():
    register("portable", _kind, f"portable/{_template}.c.j2")


_families_loaded = False
_families_lock = threading.RLock()


def _load_families() -> None:
    """Import every family module once, on the first lookup.

    Not at import time of this module: family modules import it to register, and one family
    importing another (rvv uses rv32's helpers) would then meet a half-initialised module.
    The flag is set only once every family has registered, under a lock: a second thread
    that saw it early selected from a half-filled registry (an FP16 layer got the int8 kernel).
    """
    global _families_loaded
    if _families_loaded:
        return
    with _families_lock:
        if _families_loaded:
            return
        import importlib
        import pkgutil

        from codegen import families

        for info in sorted(pkgutil.iter_modules(families.__path__), key=lambda m: m.name):
            importlib.import_module(f"codegen.families.{info.name}")
        _families_loaded = True
