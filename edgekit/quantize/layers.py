"""Per-layer quantization statistics: what `edgekit report model.ekir --quant` prints.

For every activation tensor of the int8 graph that the float graph also has (the quantizer keeps
the float graph's tensor names), on a few samples:

- the float range observed there, and the range the int8 format can represent;
- the fraction of float values outside that range (clipped);
- the SQNR of the int8 value, dequantized, against the float value. The int8 values come from
  TFLite Micro running the exported model with every intermediate kept alive. The generated C is
  bit-exact with TFLM, so these are the values the C computes. The SQNR is end to end: it
  includes the error of every layer before this one.

The statistics are computed by `edgekit quantize` and stored in the .ekir's
`meta.quantization.layers`, so `report --quant` needs neither the float model nor the data.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from edgekit.ir.graph import Graph, Quant
from edgekit.quantize.metrics import dequantize_array, quantize_array, sqnr_db
from edgekit.reference.float_ref import FloatModel


def _representable(q: Quant, dtype: str = "int8") -> tuple[float, float]:
    s, z = q.scalar_scale(), q.scalar_zero_point()
    info = np.iinfo(dtype)
    return (int(info.min) - z) * s, (int(info.max) - z) * s


def _db(x: float) -> float | None:
    """JSON has no infinity: an exact tensor is None (printed as 'exact')."""
    return None if math.isinf(x) else round(x, 2)


def layer_stats(fgraph: Graph, qgraph: Graph, batch: list[np.ndarray]) -> list[dict[str, Any]]:
    """One row per int8 activation tensor the float graph also has, in graph order.

    `fgraph` is the prepared float graph (`edgekit.quantize.prepare`), `batch` one float array
    (N, *IR shape) per input; N should be small (each sample is one TFLM run).
    """
    from edgekit.export.tflite import export_tflite
    from edgekit.reference.tflm import run_tflm

    order = [n for n in qgraph.inputs] + [op.outputs[0] for op in qgraph.ops]
    wanted = {n for n in order if n in fgraph.tensors
              and qgraph.tensor(n).dtype in ("int8", "int16")
              and qgraph.tensor(n).quant is not None}
    floats: dict[str, np.ndarray] = {}

    def keep(name: str, value: np.ndarray) -> None:
        if name in wanted:
            floats[name] = np.array(value)

    FloatModel(fgraph).run(batch, keep)
    names = list(qgraph.meta.get("tflite_tensor_names", qgraph.tensors))
    model, listed = _every_tensor_an_output(export_tflite(qgraph), [names.index(n)
                                                                   for n in sorted(wanted)])
    in_quant = [qgraph.tensor(n).quant for n in qgraph.inputs]
    samples = batch[0].shape[0]
    in_types = [qgraph.tensor(n).dtype for n in qgraph.inputs]
    feeds = [[quantize_array(b[k], q, d) for b, q, d in zip(batch, in_quant, in_types,
                                                             strict=True)]
             for k in range(samples)]
    ints: dict[str, list[np.ndarray]] = {n: [] for n in wanted}
    # one interpreter for all samples; TFLM keeps every listed tensor alive as a graph output
    for feed, outs in zip(feeds, run_tflm(model, feeds), strict=True):
        by_index = dict(zip(listed, outs, strict=True))
        for k, n in enumerate(qgraph.inputs):
            by_index[names.index(n)] = feed[k]
        for n in wanted:
            ints[n].append(np.asarray(by_index[names.index(n)]))
    kind = {op.outputs[0]: op.kind for op in qgraph.ops}
    rows = []
    for n in order:
        if n not in wanted:
            continue
        t = qgraph.tensor(n)
        ref = floats[n].reshape(samples, -1).astype(np.float64)
        got = np.stack([dequantize_array(v.reshape(t.shape), t.quant) for v in ints[n]])
        lo, hi = _representable(t.quant, t.dtype)
        clipped = float(np.mean((ref < lo - t.quant.scalar_scale() / 2)
                                | (ref > hi + t.quant.scalar_scale() / 2)))
        rows.append({
            "tensor": n,
            "op": kind.get(n, "input"),
            "float_min": round(float(ref.min()), 6),
            "float_max": round(float(ref.max()), 6),
            "int8_min": round(lo, 6),
            "int8_max": round(hi, 6),
            "scale": t.quant.scalar_scale(),
            "zero_point": t.quant.scalar_zero_point(),
            "clipped": round(clipped, 6),
            "sqnr_db": _db(sqnr_db(ref, got.reshape(samples, -1))),
        })
    return rows


def _every_tensor_an_output(model: bytes, tensors: list[int]) -> tuple[bytes, list[int]]:
    """The model with these tensors (graph inputs excepted) added to its outputs, and the
    output list in order. TFLM reuses dead intermediates' memory; outputs stay alive."""
    from ai_edge_litert import schema_py_generated as schema

    from edgekit.frontends.tflite_writer import pack_model

    parsed = schema.ModelT.InitFromPackedBuf(bytearray(model), 0)
    sg = parsed.subgraphs[0]
    outputs = [int(t) for t in sg.outputs]
    inputs = {int(t) for t in sg.inputs}
    outputs += [t for t in tensors if t not in outputs and t not in inputs]
    sg.outputs = outputs
    return pack_model(parsed), outputs


def format_layers(info: dict[str, Any], graph: Graph) -> str:
    """The `report --quant` table: stored statistics, or the quantization parameters alone."""
    rows = info.get("layers")
    lines = []
    if rows:
        lines.append(f"per-layer quantization of {graph.name}: {info.get('method')} ranges from "
                     f"{info.get('ranges_from')}; SQNR and float ranges on "
                     f"{info.get('layer_samples')} {info.get('layer_inputs', 'calibration')} "
                     "samples (int8 values as TFLite Micro and the generated C compute them)")
        head = ("tensor", "op", "float range", "int range", "scale", "zp", "clipped", "SQNR dB")
        table = [head]
        for r in rows:
            db = "exact" if r["sqnr_db"] is None else f"{r['sqnr_db']:.2f}"
            table.append((_short(r["tensor"]), r["op"],
                          f"[{r['float_min']:.4g}, {r['float_max']:.4g}]",
                          f"[{r['int8_min']:.4g}, {r['int8_max']:.4g}]", f"{r['scale']:.4g}",
                          str(r["zero_point"]), f"{100 * r['clipped']:.2f}%", db))
        lines += _columns(table)
        finite = [r for r in rows if r["sqnr_db"] is not None]
        if finite:
            worst = min(finite, key=lambda r: r["sqnr_db"])
            lines.append(f"lowest SQNR: {_short(worst['tensor'])} ({worst['op']}) "
                         f"{worst['sqnr_db']:.2f} dB")
        return "\n".join(lines)
    why = ("it was quantized with --check 0"
           if info else "it was not written by `edgekit quantize` (no float model to compare with)")
    lines.append(f"{graph.name}: no per-layer SQNR recorded: {why}. Quantization parameters:")
    table = [("tensor", "dtype", "int range", "scale", "zp")]
    for t in [graph.tensor(n) for n in graph.inputs] + [graph.tensor(op.outputs[0])
                                                         for op in graph.ops]:
        if t.quant is None or t.quant.per_channel:
            continue
        lo, hi = _representable(t.quant, t.dtype)
        table.append((t.name, t.dtype, f"[{lo:.4g}, {hi:.4g}]", f"{t.quant.scalar_scale():.4g}",
                      str(t.quant.scalar_zero_point())))
    lines += _columns(table)
    return "\n".join(lines)


def _short(name: str, width: int = 44) -> str:
    """TFLite tensor names list every fused op ('a/Relu;a/BiasAdd;...'); the head names it."""
    return name if len(name) <= width else name[: width - 1] + "…"


def _columns(table: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    out = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in table]
    out.insert(1, "  ".join("-" * w for w in widths))
    return out
