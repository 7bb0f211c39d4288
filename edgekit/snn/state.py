"""Persistent state planning: membranes, delay rings and ring heads in their own region.

edgekit.passes.memory plans activations that live within one call; state must outlive every
call and is never shared, so it gets a separate static region (`ek_state` in the generated C),
laid out back to back in op order. Reset is one memset of the region. Running the int8 planner
on an spiking graph still works unchanged: state tensors are named only in op.attrs["state"], so
it sees them as unused and leaves them out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edgekit.ir.graph import Graph
from edgekit.snn.ops import state_names

# int32 is the widest state element; 4-byte alignment keeps rows word-aligned for 32-bit loads
ALIGN = 4


@dataclass
class StatePlan:
    state_bytes: int
    offsets: dict[str, int]
    sizes: dict[str, int]

    def to_json(self) -> dict[str, Any]:
        return {
            "state_bytes": self.state_bytes,
            "offsets": dict(self.offsets),
            "sizes": dict(self.sizes),
        }


def plan_state(graph: Graph) -> StatePlan:
    offsets: dict[str, int] = {}
    sizes: dict[str, int] = {}
    at = 0
    for name in state_names(graph):
        t = graph.tensor(name)
        if t.is_const:
            raise ValueError(f"state tensor '{name}' must not be a constant")
        at = (at + ALIGN - 1) // ALIGN * ALIGN
        offsets[name] = at
        sizes[name] = t.nbytes
        at += t.nbytes
    return StatePlan((at + ALIGN - 1) // ALIGN * ALIGN, offsets, sizes)
