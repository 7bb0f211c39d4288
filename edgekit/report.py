"""Per-layer and whole-model figures: MACs, weights, activations, arena (text and JSON)."""

from __future__ import annotations

from typing import Any

from edgekit import __version__
from edgekit.pipeline import Compiled


def build_report(compiled: Compiled, options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Everything `edgekit report --json` prints and generate writes as report.json.

    Deterministic for identical inputs: no timestamps, no absolute paths.
    """
    graph, plan = compiled.graph, compiled.plan
    consts = compiled.generated.consts
    layers = []
    for layer in compiled.generated.layers:
        op = layer.op
        weight_bytes = sum(
            graph.tensor(t).nbytes
            for t in consts
            if t in op.inputs or any(t == v for v in op.attrs.get("q", {}).values())
        )
        outs = [graph.tensor(t) for t in op.outputs]
        layers.append(
            {
                "index": layer.index,
                "name": op.name,
                "kind": op.kind,
                "kernel": layer.variant.family,
                "output_shape": [list(t.shape) for t in outs],
                "macs": layer.macs,
                "weight_bytes": weight_bytes,
                "output_bytes": sum(t.nbytes for t in outs),
                "output_offset": [plan.offsets[t.name] for t in outs],
            }
        )
    const_bytes = sum(graph.tensor(t).nbytes for t in consts)
    return {
        "edgekit_version": __version__,
        "model": graph.name,
        "source_sha256": compiled.source_sha256,
        "target": compiled.target,
        "options": dict(sorted((options or {}).items())),
        "inputs": [_io(graph.tensor(t)) for t in graph.inputs],
        "outputs": [_io(graph.tensor(t)) for t in graph.outputs],
        "totals": {
            "layers": len(layers),
            "macs": sum(entry["macs"] for entry in layers),
            "const_bytes": const_bytes,
            "arena_bytes": plan.arena_bytes,
            "arena_lower_bound_bytes": plan.lower_bound_bytes,
        },
        "layers": layers,
        "memory_plan": plan.to_json(),
    }


def _io(t: Any) -> dict[str, Any]:
    q = t.quant
    return {
        "name": t.name,
        "shape": list(t.shape),
        "dtype": t.dtype,
        "scale": q.scalar_scale() if q else None,
        "zero_point": q.scalar_zero_point() if q else None,
    }


def format_report(report: dict[str, Any]) -> str:
    rows = [("#", "layer", "kernel", "output", "MACs", "weights B", "out B", "offset")]
    for entry in report["layers"]:
        rows.append(
            (
                str(entry["index"]),
                entry["kind"],
                entry["kernel"],
                "x".join(str(d) for d in entry["output_shape"][0]),
                f"{entry['macs']:,}",
                f"{entry['weight_bytes']:,}",
                f"{entry['output_bytes']:,}",
                str(entry["output_offset"][0]),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    right = {0, 4, 5, 6, 7}
    lines = []
    for k, r in enumerate(rows):
        cells = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    t = report["totals"]
    over = (
        100.0 * (t["arena_bytes"] - t["arena_lower_bound_bytes"]) / t["arena_lower_bound_bytes"]
        if t["arena_lower_bound_bytes"]
        else 0.0
    )
    lines.append("")
    lines.append(f"model      {report['model']}  (target {report['target']})")
    lines.append(f"MACs       {t['macs']:,}")
    lines.append(f"constants  {t['const_bytes']:,} B (flash)")
    lines.append(
        f"arena      {t['arena_bytes']:,} B (RAM); liveness lower bound "
        f"{t['arena_lower_bound_bytes']:,} B, {over:+.1f}%"
    )
    return "\n".join(lines)
