"""Bit-exactness check of generated code against TFLite Micro, with the first bad layer located."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgekit.ir.graph import DTYPES, Graph
from edgekit.pipeline import Compiled


@dataclass
class OutputStats:
    name: str
    samples: int = 0
    mismatched_samples: int = 0
    mismatched_elements: int = 0
    max_abs_diff: int = 0


@dataclass
class VerifyResult:
    outputs: list[OutputStats]
    samples: int
    first_bad_layer: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(o.mismatched_elements == 0 for o in self.outputs)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "samples": self.samples,
            "outputs": [vars(o) for o in self.outputs],
            "first_bad_layer": self.first_bad_layer,
        }


def random_inputs(graph: Graph, samples: int, seed: int) -> list[list[np.ndarray]]:
    """Uniform random inputs over each input's full integer range (floats in [-1, 1))."""
    rng = np.random.default_rng(seed)
    batches = []
    for _ in range(samples):
        sample = []
        for tname in graph.inputs:
            t = graph.tensor(tname)
            dt = DTYPES[t.dtype]
            if np.issubdtype(dt, np.integer):
                info = np.iinfo(dt)
                sample.append(rng.integers(info.min, int(info.max) + 1, size=t.shape, dtype=dt))
            else:
                sample.append(rng.uniform(-1, 1, size=t.shape).astype(dt))
        batches.append(sample)
    return batches


def compare(
    compiled: Compiled,
    ours: list[list[np.ndarray]],
    reference: list[list[np.ndarray]],
) -> VerifyResult:
    graph = compiled.graph
    stats = [OutputStats(t) for t in graph.outputs]
    for got, ref in zip(ours, reference, strict=True):
        for s, g, r in zip(stats, got, ref, strict=True):
            g64 = g.reshape(-1).astype(np.float64)
            r64 = np.asarray(r).reshape(-1).astype(np.float64)
            s.samples += 1
            if g.tobytes() != np.ascontiguousarray(r, dtype=g.dtype).tobytes():
                bad = int(np.count_nonzero(g64 != r64)) or g.size
                s.mismatched_samples += 1
                s.mismatched_elements += bad
                s.max_abs_diff = max(s.max_abs_diff, int(np.max(np.abs(g64 - r64))))
    return VerifyResult(stats, len(ours))


def locate_first_bad_layer(
    compiled: Compiled, ours: dict[str, np.ndarray], reference_by_index: dict[int, np.ndarray]
) -> dict[str, Any] | None:
    """The first op (in execution order) whose output differs from the reference's tensor."""
    names: list[str] = compiled.graph.meta.get("tflite_tensor_names", [])
    by_name = {names[i]: v for i, v in reference_by_index.items() if i < len(names)}
    for i, op in enumerate(compiled.graph.ops):
        for t in op.outputs:
            if t in by_name and t in ours:
                ref = np.asarray(by_name[t]).reshape(-1)
                got = ours[t].reshape(-1)
                if ref.size == got.size and not np.array_equal(ref, got):
                    diff = np.abs(ref.astype(np.int64) - got.astype(np.int64))
                    return {
                        "index": i,
                        "op": op.name,
                        "kind": op.kind,
                        "tensor": t,
                        "mismatched_elements": int(np.count_nonzero(diff)),
                        "max_abs_diff": int(diff.max()),
                    }
    return None


def format_result(result: VerifyResult, target: str) -> str:
    rows = [("output", "samples", "bad samples", "bad elements", "max |diff|")]
    for o in result.outputs:
        rows.append(
            (
                o.name,
                str(o.samples),
                str(o.mismatched_samples),
                str(o.mismatched_elements),
                str(o.max_abs_diff),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = []
    for k, r in enumerate(rows):
        lines.append(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(r, widths, strict=True))
            )
        )
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    lines.append("")
    if result.ok:
        lines.append(
            f"bit-exact: every output byte of {result.samples} samples matches "
            f"TFLite Micro (target {target})"
        )
    else:
        lines.append(f"MISMATCH against TFLite Micro (target {target})")
        if result.first_bad_layer:
            b = result.first_bad_layer
            lines.append(
                f"first differing layer: #{b['index']} {b['op']} ({b['kind']}), tensor "
                f"'{b['tensor']}': {b['mismatched_elements']} elements, "
                f"max |diff| {b['max_abs_diff']}"
            )
    lines.extend(result.notes)
    return "\n".join(lines)
