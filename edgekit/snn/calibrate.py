"""`edgekit quantize` for spiking networks: re-quantise a converted network on real spike trains.

`edgekit convert` quantises at once (so convert -> generate works) and also keeps the float
network in the .ekir, as float32 constants under `float/` that no op reads (the C never sees them).
`calibrate` re-quantises that float network with several weight clipping percentiles and keeps
the one whose integer network agrees best with the float one on the user's spike trains: first
readout argmax agreement, then the spike count error summed over layers. The agreement on the
calibration data is stored in `meta.snn.calibration`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.ir.graph import Graph, Tensor
from edgekit.snn.model import FloatLayer, FloatSnn
from edgekit.snn.quantize import quantize
from edgekit.snn.verify import compare_trains

PREFIX = "float/"
CLIPS = (100.0, 99.9, 99.5, 99.0)
_FIELDS = ("weight", "gain", "offset", "beta", "v_threshold")
_CUBA_FIELDS = ("syn_beta", "syn_offset")  # only cuba layers have them


def attach_float(graph: Graph, net: FloatSnn) -> None:
    """Keep `net` in `graph`: float32 tensors no op reads, plus per-layer facts in meta."""
    for k, layer in enumerate(net.layers):
        for f in _FIELDS + (_CUBA_FIELDS if layer.neuron == "cuba" else ()):
            arr = np.ascontiguousarray(getattr(layer, f), dtype=np.float32)
            name = f"{PREFIX}l{k}/{f}"
            graph.tensors[name] = Tensor(name, tuple(arr.shape), "float32", None, arr)
    graph.meta["snn"]["float_layers"] = [
        {"neuron": la.neuron, "reset": la.reset, "strict": bool(la.strict)} for la in net.layers
    ]


def float_of(graph: Graph, where: str) -> FloatSnn:
    """The float network `attach_float` kept; its delays are the integer graph's (equal)."""
    from edgekit.snn import ops

    facts = graph.meta.get("snn", {}).get("float_layers")
    if not facts:
        raise EdgekitError(
            "this spiking .ekir holds no float network to calibrate",
            where,
            hint="convert the checkpoint or NIR file again with this edgekit version",
        )
    layers = []
    for k, (layer, fact) in enumerate(zip(ops.layers(graph), facts, strict=True)):
        arrs = {}
        for f in _FIELDS + (_CUBA_FIELDS if fact["neuron"] == "cuba" else ()):
            t = graph.tensors.get(f"{PREFIX}l{k}/{f}")
            if t is None or t.data is None:
                raise EdgekitError(f"float tensor '{PREFIX}l{k}/{f}' is missing", where)
            arrs[f] = t.data.astype(np.float64)
        layers.append(
            FloatLayer(
                delay=layer.delays.astype(np.int64),
                max_delay=layer.max_delay,
                neuron=fact["neuron"],
                reset=fact["reset"],
                strict=bool(fact["strict"]),
                **arrs,
            )  # fmt: skip
        )
    net = FloatSnn(layers[0].n_in, layers, float(graph.meta["snn"].get("time_step_ms", 1.0)))
    try:
        net.check()
    except ValueError as exc:
        raise EdgekitError(f"the stored float network is invalid: {exc}", where) from None
    return net


def load_calib(path: str | Path, n_inputs: int, limit: int | None = None) -> list[np.ndarray]:
    """Spike trains from an .npz: one array (named `spikes`, or the only one) of 0/1 values,
    [N, T, n_inputs] or one train [T, n_inputs]. Returns bool [T, n_inputs] arrays."""
    p = Path(path)
    if not p.is_file() or p.suffix != ".npz":
        raise EdgekitError(
            "calibration spikes must be an .npz file", str(p),
            hint="numpy.savez('spikes.npz', spikes=trains)  # [N, T, n_inputs] of 0/1",
        )  # fmt: skip
    try:
        with np.load(p, allow_pickle=False) as z:
            if "spikes" in z.files:
                arr = np.asarray(z["spikes"])
            elif len(z.files) == 1:
                arr = np.asarray(z[z.files[0]])
            else:
                raise EdgekitError(
                    f"the .npz holds {len(z.files)} arrays and none is named 'spikes'", str(p)
                )
    except EdgekitError:
        raise
    except Exception as exc:  # zipfile and numpy raise many types for a bad file
        raise EdgekitError(f"could not read the calibration file: {exc}", str(p)) from None
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or arr.shape[2] != n_inputs or arr.shape[1] < 1 or arr.shape[0] < 1:
        raise EdgekitError(
            f"calibration spikes have shape {list(arr.shape)}; expected [N, T, {n_inputs}]", str(p)
        )
    if arr.dtype != bool and not np.isin(arr, (0, 1)).all():
        raise EdgekitError("calibration spikes must be 0 or 1", str(p))
    trains = [a.astype(bool) for a in arr[:limit]]
    return trains


def _score(agreement: dict[str, Any]) -> tuple[float, float]:
    f = np.asarray(agreement["float_spikes"], dtype=np.float64)
    q = np.asarray(agreement["quantized_spikes"], dtype=np.float64)
    err = float(np.sum(np.abs(f - q) / np.maximum(f, 1.0))) if f.size else 0.0
    return (-float(agreement["argmax_agreement"]), err)


def calibrate(
    net: FloatSnn, trains: list[np.ndarray], name: str, meta: dict[str, Any],
    clips: tuple[float, ...] = CLIPS,
) -> tuple[Graph, dict[str, Any]]:  # fmt: skip
    """The integer graph with the clip percentile that agrees best with `net` on `trains`."""
    results = []
    for clip in clips:
        graph = quantize(net, name, meta, clip=clip)
        results.append((_score(agree := compare_trains(net, graph, trains)), clip, graph, agree))
    # the first (least clipping) wins ties: min over a stable order keyed on the score only
    best = min(range(len(results)), key=lambda i: results[i][0])
    _, clip, graph, agree = results[best]
    report = {
        "chosen_clip_percentile": clip,
        "candidates": [{"clip_percentile": c, **a} for _, c, _, a in results],
        **agree,
    }
    graph.meta["snn"]["calibration"] = report
    attach_float(graph, net)
    return graph, report
