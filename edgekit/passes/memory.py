"""Static memory planning: every activation gets a fixed offset in one arena.

Tensors that can share storage are first merged into one buffer (reshapes, and elementwise ops
whose input dies at that op), then buffers are placed greedily, largest first, at the lowest offset
that does not overlap any buffer alive at the same time. The liveness lower bound (the largest sum
of live bytes at any op) is reported next to the arena so the gap is visible.
"""

from __future__ import annotations

from collections.abc import Iterator
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

    bufs = list(buffers.values())
    lower = max(
        (sum(b.size for b in bufs if b.start <= i <= b.end) for i in range(n_ops + 1)), default=0
    )
    side_hint = _side_hints(graph, groups)
    best: dict[str, int] | None = None
    best_size = 0
    for offsets_try in _strategies(bufs, lower, side_hint):
        size = max((offsets_try[b.name] + b.size for b in bufs), default=0)
        if best is None or size < best_size:
            best, best_size = offsets_try, size
        if best_size <= lower:
            break
    assert best is not None
    for b in bufs:
        b.offset = best[b.name]
    placed = bufs

    arena = max((b.offset + b.size for b in placed), default=0)
    offsets = {t: buffers[r].offset for t, r in groups.items() if r in buffers}
    scratch_map = {
        b.name.split(":", 1)[1]: (b.offset, b.size) for b in placed if b.name.startswith("scratch:")
    }
    return MemoryPlan(arena, lower, offsets, scratch_map, placed)


def _overlaps_in_time(a: Buffer, b: Buffer) -> bool:
    return a.start <= b.end and b.start <= a.end


def _first_fit(order: list[Buffer]) -> dict[str, int]:
    """Each buffer at the lowest offset clear of every time-overlapping buffer placed before."""
    placed: list[tuple[Buffer, int]] = []
    result: dict[str, int] = {}
    for b in order:
        offset = 0
        for p, off in sorted(
            ((p, o) for p, o in placed if _overlaps_in_time(p, b)), key=lambda po: po[1]
        ):
            if offset + b.size <= off:
                break
            offset = max(offset, off + p.size)
        result[b.name] = offset
        placed.append((b, offset))
    return result


def _two_ended(order: list[Buffer], limit: int, side_hint: dict[str, int]) -> dict[str, int] | None:
    """Place buffers inside [0, limit), producers' outputs at the end opposite their inputs.

    For a chain this alternates ends and reaches the liveness bound, which first-fit misses
    when a large buffer is followed by two small ones.
    """
    placed: list[tuple[Buffer, int]] = []
    result: dict[str, int] = {}
    for b in order:
        live = [(p, o) for p, o in placed if _overlaps_in_time(p, b)]
        cands = {0, limit - b.size}
        for p, o in live:
            cands.add(o + p.size)
            cands.add(o - b.size)
        ok = sorted(
            c
            for c in cands
            if c >= 0
            and c + b.size <= limit
            and all(c + b.size <= o or o + p.size <= c for p, o in live)
        )
        if not ok:
            return None
        result[b.name] = ok[-1] if side_hint.get(b.name, 0) else ok[0]
        placed.append((b, result[b.name]))
    return result


def _side_hints(graph: Graph, groups: dict[str, str]) -> dict[str, int]:
    """0 for bottom, 1 for top: each op's output goes to the side its first input is not on."""
    side: dict[str, int] = {groups[t]: 0 for t in graph.inputs if t in groups}
    for op in graph.ops:
        src = next((groups[t] for t in op.inputs if t in groups), None)
        for t in op.outputs:
            r = groups.get(t)
            if r is not None and r not in side:
                side[r] = 1 - side.get(src, 1) if src is not None and src != r else 0
    return side


def _strategies(
    bufs: list[Buffer], lower: int, side_hint: dict[str, int]
) -> Iterator[dict[str, int]]:
    """Candidate placements, cheapest ideas first; the planner keeps the smallest arena."""
    yield _first_fit(sorted(bufs, key=lambda b: (-b.size, b.start, b.name)))
    yield _first_fit(sorted(bufs, key=lambda b: (b.start, -b.size, b.name)))
    yield _first_fit(sorted(bufs, key=lambda b: (-(b.end - b.start) * b.size, b.name)))
    by_start = sorted(bufs, key=lambda b: (b.start, -b.size, b.name))
    limit = lower
    upper = sum(b.size for b in bufs)
    while limit <= upper:
        for hints in (side_hint, {k: 1 - v for k, v in side_hint.items()}):
            placed = _two_ended(by_start, limit, hints)
            if placed is not None:
                yield placed
                return
        limit += max(ALIGN, lower // 64)
