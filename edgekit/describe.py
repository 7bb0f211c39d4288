"""Human-readable text of an IR graph, for `edgekit inspect`."""

from __future__ import annotations

from typing import Any

import numpy as np

from edgekit.ir.graph import Graph, Tensor


def _quant(t: Tensor) -> str:
    if t.quant is None:
        return ""
    q = t.quant
    if q.per_channel:
        return (
            f" q[axis {q.axis}: {q.scale.size} scales {float(q.scale.min()):.3g}.."
            f"{float(q.scale.max()):.3g}, zp {int(q.zero_point.min())}..{int(q.zero_point.max())}]"
        )
    return f" q[scale {q.scalar_scale():.6g}, zp {q.scalar_zero_point()}]"


def _tensor(t: Tensor) -> str:
    kind = "const" if t.is_const else "act"
    return f"{t.name}: {t.dtype}{list(t.shape)} {kind}{_quant(t)}"


def _value(v: object, graph: Graph) -> str:
    if isinstance(v, str) and v in graph.tensors and graph.tensors[v].is_const:
        data = graph.tensors[v].data
        assert data is not None
        flat = np.asarray(data).reshape(-1)
        head = ", ".join(str(x) for x in flat[:6]) + (", ..." if flat.size > 6 else "")
        return f"<{graph.tensors[v].dtype}[{flat.size}]: {head}>"
    return str(v)


def describe_graph(graph: Graph, show_constants: bool = False) -> str:
    lines = [f"graph {graph.name}  ({len(graph.ops)} ops, {len(graph.tensors)} tensors)"]
    src = graph.meta.get("source_format")
    if src:
        lines.append(f"  source: {src}, sha256 {str(graph.meta.get('source_sha256', ''))[:16]}")
    lines.append(f"  lowered: {'yes' if graph.meta.get('lowered') else 'no'}")
    lines.append("inputs:")
    lines += [f"  {_tensor(graph.tensor(t))}" for t in graph.inputs]
    lines.append("outputs:")
    lines += [f"  {_tensor(graph.tensor(t))}" for t in graph.outputs]
    lines.append("ops:")
    for i, op in enumerate(graph.ops):
        lines.append(f"  #{i} {op.kind}  ({op.name})")
        for t in op.inputs:
            if t:
                lines.append(f"      in  {_tensor(graph.tensor(t))}")
        for t in op.outputs:
            lines.append(f"      out {_tensor(graph.tensor(t))}")
        attrs = {k: v for k, v in op.attrs.items() if k != "q"}
        if attrs:
            lines.append("      attrs " + ", ".join(f"{k}={v}" for k, v in sorted(attrs.items())))
        for k, v in sorted(op.attrs.get("q", {}).items()):
            lines.append(f"      q.{k} = {_value(v, graph)}")
    if show_constants:
        lines.append("constants:")
        for t in graph.tensors.values():
            if t.is_const:
                lines.append(f"  {_tensor(t)} ({t.nbytes} B)")
    return "\n".join(lines)


# --- the same, as data (`edgekit inspect --json`) ----------------------------------------------


def _plain(v: Any) -> Any:
    """A JSON-safe copy of an attribute value: arrays and numpy scalars become lists and numbers."""
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_plain(x) for x in v]
    if v is None or isinstance(v, bool | int | float | str):
        return v
    return str(v)  # an enum or another object: its readable form


def _tensor_json(t: Tensor, with_data: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"name": t.name, "dtype": t.dtype, "shape": list(t.shape),
                           "const": t.is_const, "bytes": t.nbytes, "quant": None}
    if t.quant is not None:
        out["quant"] = {"scale": t.quant.scale.reshape(-1).tolist(),
                        "zero_point": t.quant.zero_point.reshape(-1).tolist(),
                        "axis": t.quant.axis}
    if with_data and t.data is not None:
        out["data"] = np.asarray(t.data).reshape(-1).tolist()
    return out


def describe_json(graph: Graph, show_constants: bool = False) -> dict[str, Any]:
    """The graph as one JSON-safe document: what `describe_graph` prints, field by field.

    Lowered integer parameters that are constant tensors appear by tensor name; with
    `show_constants` every constant tensor's values are included (flattened).
    """
    return {
        "name": graph.name,
        "source_format": graph.meta.get("source_format"),
        "source_sha256": graph.meta.get("source_sha256"),
        "lowered": bool(graph.meta.get("lowered")),
        "inputs": list(graph.inputs),
        "outputs": list(graph.outputs),
        "tensors": [_tensor_json(t, show_constants) for t in graph.tensors.values()],
        "ops": [
            {"index": i, "kind": op.kind, "name": op.name, "inputs": list(op.inputs),
             "outputs": list(op.outputs),
             "attrs": _plain({k: v for k, v in op.attrs.items() if k != "q"}),
             "q": _plain(op.attrs.get("q", {}))}
            for i, op in enumerate(graph.ops)
        ],
    }
