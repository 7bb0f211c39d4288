"""Fold standalone clamps (RELU, RELU6, identity QUANTIZE) into the op that produces their input.

With equal input and output quantization such an op is exactly a clamp of its input, and
clamp(clamp(a, l1, h1), l2, h2) == clamp(a, max(l1, l2), min(h1, h2)) whenever the ranges overlap,
so the producer can clamp once and the extra pass over memory disappears.
"""

from __future__ import annotations

from edgekit.ir.graph import Graph

_CLAMPS = {"relu", "relu6", "quantize"}


def fuse_activations(graph: Graph) -> int:
    """Fuse in place; returns how many ops were removed."""
    removed = 0
    changed = True
    while changed:
        changed = False
        producers = graph.producers()
        consumers = graph.consumers()
        for op in graph.ops:
            q = op.attrs.get("q", {})
            if op.kind not in _CLAMPS or q.get("mode") not in ("requant", "clamp"):
                continue
            x, y = graph.tensor(op.inputs[0]), graph.tensor(op.outputs[0])
            if x.quant is None or x.quant != y.quant or x.dtype != y.dtype:
                continue
            prod = producers.get(x.name)
            if prod is None or "act_min" not in prod.attrs.get("q", {}):
                continue
            if len(consumers.get(x.name, [])) != 1 or x.name in graph.outputs:
                continue
            pq = prod.attrs["q"]
            lo, hi = max(pq["act_min"], q["act_min"]), min(pq["act_max"], q["act_max"])
            if lo > hi:
                continue
            pq["act_min"], pq["act_max"] = lo, hi
            prod.attrs["fused"] = [*prod.attrs.get("fused", []), op.kind]
            prod.outputs[0] = y.name
            graph.ops.remove(op)
            del graph.tensors[x.name]
            removed += 1
            changed = True
            break
    return removed
