"""Kernel variants and how one is chosen for an op on a target.

A variant is a template for one op kind in one kernel family (portable C, Arm DSP, MVE, RVV...).
Targets list the families they prefer; the first family that has a variant for the op, whose
required capabilities the target has, and which accepts the op's shapes, is used. Adding an
optimised kernel is adding a template and one `register` line, not changing the renderer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from edgekit.ir.graph import Graph, Op

Predicate = Callable[[Graph, Op], bool]


@dataclass(frozen=True)
class KernelVariant:
    family: str
    kind: str
    template: str
    requires: frozenset[str] = frozenset()
    accepts: Predicate | None = None


_REGISTRY: dict[tuple[str, str], list[KernelVariant]] = {}


def register(
    family: str,
    kind: str,
    template: str,
    requires: Iterable[str] = (),
    accepts: Predicate | None = None,
) -> None:
    _REGISTRY.setdefault((family, kind), []).append(
        KernelVariant(family, kind, template, frozenset(requires), accepts)
    )


def select(graph: Graph, op: Op, families: list[str], capabilities: set[str]) -> KernelVariant:
    """The first variant, in the target's family order, that can run this op."""
    for family in [*families, "portable"]:
        for v in _REGISTRY.get((family, op.kind), []):
            if v.requires <= capabilities and (v.accepts is None or v.accepts(graph, op)):
                return v
    raise LookupError(f"no kernel for op kind '{op.kind}'")


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
}
for _kind, _template in _PORTABLE.items():
    register("portable", _kind, f"portable/{_template}.c.j2")
