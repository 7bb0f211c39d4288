"""Static memory planning: every activation gets a fixed offset in one arena.

Tensors that can share storage are first merged into one buffer (reshapes, and elementwise ops
whose input dies at that op), then buffers are placed greedily, largest first, at the lowest offset
that does not overlap any buffer alive at the same time. The liveness lower bound (the largest sum
of live bytes at any op) is reported next to the arena so the gap is visible.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edgekit.ir.graph import Graph, Op

ALIGN = 16

# Ops whose output may overwrite their first input element by element (reads precede writes).
_INPLACE_KINDS = {"relu", "relu6", "quantize", "add", "sub", "mul"}


@dataclass
class Buffer:
    name: str
    size: int
    start: int  # first op index at which the buffer must hold data
    end: int  # last op index at which it is read (len(ops) for graph outputs)
    tensors: list[str] = field(default_factory=list)
    offset: int = -1


@dataclass
class MemoryPlan:
    arena_bytes: int
    lower_bound_bytes: int
    offsets: dict[str, int]  # activation tensor -> byte offset in the arena
    scratch: dict[str, tuple[int, int]]  # op name -> (offset, bytes)
    buffers: list[Buffer]

    def to_json(self) -> dict[str, Any]:
        return {
            "arena_bytes": self.arena_bytes,
            "lower_bound_bytes": self.lower_bound_bytes,
            "offsets": dict(sorted(self.offsets.items())),
            "scratch": {k: list(v) for k, v in sorted(self.scratch.items())},
        }


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def alias_groups(graph: Graph) -> dict[str, str]:
    """Map every activation tensor to the tensor whose storage it shares (its root)."""
    root: dict[str, str] = {t.name: t.name for t in graph.activations()}

    def find(n: str) -> str:
        while root[n] != n:
            n = root[n]
        return n

    last_use: dict[str, int] = {}
    for i, op in enumerate(graph.ops):
        for t in op.inputs:
            if t in root:
                last_use[t] = i
    for i, op in enumerate(graph.ops):
        if not op.outputs or op.outputs[0] not in root or not op.inputs or op.inputs[0] not in root:
            continue
        x, y = graph.tensor(op.inputs[0]), graph.tensor(op.outputs[0])
        if op.kind == "reshape":
            root[y.name] = find(x.name)
        elif op.kind in _INPLACE_KINDS and _inplace_ok(graph, op):
            # every tensor already sharing x's storage must be dead after this op
            rx = find(x.name)
            sharing = [t for t in root if find(t) == rx]
            if all(last_use.get(t, -1) <= i and t not in graph.outputs for t in sharing):
                root[y.name] = rx
    return {n: find(n) for n in root}


def _inplace_ok(graph: Graph, op: Op) -> bool:
    x, y = graph.tensor(op.inputs[0]), graph.tensor(op.outputs[0])
    if x.nbytes != y.nbytes or x.dtype != y.dtype:
        return False
    if op.attrs.get("q", {}).get("broadcast") is not None:
        return False
    # the caller's input buffer is never overwritten
    return x.name not in graph.inputs


def plan_memory(graph: Graph) -> MemoryPlan:
    """Place every activation (and per-op scratch) in one arena."""
    n_ops = len(graph.ops)
    groups = alias_groups(graph)
    start: dict[str, int] = {}
    end: dict[str, int] = {}

    def touch(t: str, i: int) -> None:
        r = groups[t]
        start[r] = min(start.get(r, i), i)
        end[r] = max(end.get(r, i), i)

    for t in graph.inputs:
        touch(t, 0)
    for i, op in enumerate(graph.ops):
        for t in op.inputs + op.outputs:
            if t in groups:
                touch(t, i)
    for t in graph.outputs:
        touch(t, n_ops)

    buffers: dict[str, Buffer] = {}
    for t, r in groups.items():
        if r not in start:
            continue  # dead tensor nobody reads or writes
        b = buffers.setdefault(r, Buffer(r, 0, start[r], end[r]))
        b.size = max(b.size, _align(graph.tensor(t).nbytes))
        b.tensors.append(t)
    for i, op in enumerate(graph.ops):
        scratch = int(op.attrs.get("scratch_bytes", 0))
        if scratch:
            buffers[f"scratch:{op.name}"] = Buffer(f"scratch:{op.name}", _align(scratch), i, i)

    order = sorted(buffers.values(), key=lambda b: (-b.size, b.start, b.name))
    placed: list[Buffer] = []
    for b in order:
        live = sorted(
            (p for p in placed if p.start <= b.end and b.start <= p.end), key=lambda p: p.offset
        )
        offset = 0
        for p in live:
            if offset + b.size <= p.offset:
                break
            offset = max(offset, p.offset + p.size)
        b.offset = offset
        placed.append(b)

    arena = max((b.offset + b.size for b in placed), default=0)
    lower = max(
        (sum(b.size for b in placed if b.start <= i <= b.end) for i in range(n_ops + 1)), default=0
    )
    offsets = {t: buffers[r].offset for t, r in groups.items() if r in buffers}
    scratch_map = {
        b.name.split(":", 1)[1]: (b.offset, b.size) for b in placed if b.name.startswith("scratch:")
    }
    return MemoryPlan(arena, lower, offsets, scratch_map, placed)
