"""Float spiking network -> integer IR graph (docs/snn.md, "Quantisation").

Per output neuron i, the folded weights gain_i * W_ij are quantised to int8 with the symmetric
scale s_i = max_j |gain_i W_ij| / 127, and the membrane is kept in the same unit: v_int = v / s_i.
Then a synaptic event adds its int8 weight to an int32 membrane with no rescaling, the folded
offset becomes an int32 bias round(offset_i / s_i), and the float test v >= theta becomes the
integer test v_int >= ceil(theta / s_i). The decay is one Q2.30 multiplier per neuron; because it
is linear it does not depend on s_i. Delays are already integers and pass through unchanged.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.ir.graph import Graph, Op, Quant, Tensor, dtype_name
from edgekit.snn.model import FloatSnn
from edgekit.snn.ops import DECAY_SHIFT, NEURON_OF, SYNAPSE, packed_bytes

INT32_MAX = (1 << 31) - 1
# Relative slack for ceil(theta / s): a threshold that is an exact multiple of the scale in
# real arithmetic must not move up one step because of float rounding.
_CEIL_SLACK = 1e-9


def _scales(gain_w: np.ndarray, fallback: np.ndarray, clip: float = 100.0) -> np.ndarray:
    """Per output neuron: the `clip` percentile of |gain_i W_ij| maps to 127 (100: the max)."""
    if not gain_w.size:
        return fallback
    amax = np.abs(gain_w).max(axis=1)
    if clip < 100.0:
        # a neuron whose percentile is 0 (mostly zero weights) keeps its max: clipping to 0
        # would saturate every weight it has
        pct = np.percentile(np.abs(gain_w), clip, axis=1)
        amax = np.where(pct > 0, np.minimum(amax, pct), amax)
    return np.where(amax > 0, amax / 127.0, fallback)


def membrane_bound(weights: np.ndarray, bias: np.ndarray, decay: np.ndarray | None) -> float:
    """An upper bound on |v| over any input, or inf when the membrane may grow without limit.

    |I| <= sum |w| and decay(v) <= beta |v| + 1/2, so |v| <= (sum |w| + |bias| + 1) / (1 - beta).
    """
    step = np.abs(weights.astype(np.int64)).sum(axis=1) + np.abs(bias.astype(np.int64)) + 1
    if decay is None:
        return math.inf
    beta = decay.astype(np.float64) / (1 << DECAY_SHIFT)
    if np.any(beta >= 1.0):
        return math.inf
    return float(np.max(step / (1.0 - beta), initial=0.0))


def _cuba_membrane_bound(j_bound: float, bias: np.ndarray, decay: np.ndarray) -> float:
    """|v| of a cuba neuron when |j| <= j_bound: as membrane_bound with j in place of sum |w|."""
    beta = decay.astype(np.float64) / (1 << DECAY_SHIFT)
    if not j_bound < INT32_MAX or np.any(beta >= 1.0):
        return math.inf
    step = j_bound + np.abs(bias.astype(np.float64)) + 1
    return float(np.max(step / (1.0 - beta), initial=0.0))


def quantize(
    net: FloatSnn, name: str = "snn", meta: dict[str, Any] | None = None, clip: float = 100.0
) -> Graph:
    """The integer graph of `net`, with state tensors declared and meta.lowered set.

    `clip` is the percentile of each neuron's |weights| that maps to int8 127 (100: the largest
    weight; lower clips the few largest weights for resolution on the rest, which
    `edgekit quantize --calib` chooses on calibration spikes).
    """
    if not 0.0 < clip <= 100.0:
        raise EdgekitError(f"weight clip percentile {clip:g} must lie in (0, 100]")
    try:
        net.check()
    except ValueError as exc:
        raise EdgekitError(f"invalid spiking network: {exc}") from None
    tensors: dict[str, Tensor] = {}
    ops: list[Op] = []

    def const(tname: str, data: np.ndarray) -> str:
        arr = np.ascontiguousarray(data)
        tensors[tname] = Tensor(tname, tuple(arr.shape), dtype_name(arr.dtype), None, arr)
        return tname

    x = "spikes_in"
    tensors[x] = Tensor(x, (packed_bytes(net.n_inputs),), "uint8")
    for k, layer in enumerate(net.layers):
        n_out = layer.n_out
        gw = layer.gain[:, None].astype(np.float64) * layer.weight.astype(np.float64)
        thr = layer.v_threshold.astype(np.float64)
        # a neuron with no non-zero weight still needs a unit in which its threshold and offset
        # are exact enough: 2^-16 of the larger of the two
        ref = np.maximum(np.abs(layer.offset), thr if layer.neuron != "li" else 0.0)
        if layer.syn_offset is not None:
            ref = np.maximum(ref, np.abs(layer.syn_offset))
        s = _scales(gw, np.where(ref > 0, ref, 1.0) / 65536.0, clip)
        wq = np.clip(np.round(gw / s[:, None]), -127, 127).astype(np.int8)
        bias_f = np.round(layer.offset / s)
        if np.any(np.abs(bias_f) > INT32_MAX):
            raise EdgekitError(f"layer {k}: a folded offset does not fit the int32 membrane")
        bias = bias_f.astype(np.int32)
        dec = None
        if layer.neuron != "if":
            dec = np.round(layer.beta.astype(np.float64) * (1 << DECAY_SHIFT)).astype(np.int32)
        thr_q = None
        if layer.neuron != "li":
            # v >= theta holds for the integers from ceil(theta / s); v > theta from floor + 1
            if layer.strict:
                t = np.floor(thr / s * (1.0 + _CEIL_SLACK)) + 1
            else:
                t = np.ceil(thr / s * (1.0 - _CEIL_SLACK))
            if np.any(t > INT32_MAX):
                raise EdgekitError(
                    f"layer {k}: a threshold is beyond the int32 membrane range",
                    hint="a threshold that is never reached means a leaky integrator (li) readout",
                )
            thr_q = np.maximum(t, 1).astype(np.int32)
        p = f"l{k}"
        w_name = const(f"{p}/weights", wq)
        d_name = const(f"{p}/delays", layer.delay.astype(np.uint8))
        cur = f"{p}/current"
        tensors[cur] = Tensor(cur, (n_out,), "int32")
        q = Quant(s.astype(np.float32), np.zeros(n_out, dtype=np.int64), 0)
        membrane = f"{p}/membrane"
        tensors[membrane] = Tensor(membrane, (n_out,), "int32", q)
        ops.append(
            Op(
                SYNAPSE,
                f"{p}_synapse",
                [x, w_name, d_name],
                [cur],
                {"n_in": layer.n_in, "n_out": n_out, "max_delay": int(layer.max_delay)},
            )
        )
        if layer.neuron == "li":
            y = f"{p}/readout"
            tensors[y] = Tensor(y, (n_out,), "int32", q)
        else:
            y = f"{p}/spikes"
            tensors[y] = Tensor(y, (packed_bytes(n_out),), "uint8")
        bound = membrane_bound(wq, bias, dec)
        extra_in: list[str] = []
        state = {"membrane": membrane}
        if layer.neuron == "cuba":
            assert layer.syn_beta is not None and layer.syn_offset is not None
            syn_bias_f = np.round(layer.syn_offset / s)
            if np.any(np.abs(syn_bias_f) > INT32_MAX):
                raise EdgekitError(f"layer {k}: a synaptic bias does not fit the int32 current")
            syn_bias = syn_bias_f.astype(np.int32)
            syn_dec = np.round(layer.syn_beta.astype(np.float64) * (1 << DECAY_SHIFT))
            syn_dec = syn_dec.astype(np.int32)
            # the membrane integrates j, whose bound takes the place of sum |w|
            j_bound = membrane_bound(wq, syn_bias, syn_dec)
            assert dec is not None
            bound = max(j_bound, _cuba_membrane_bound(j_bound, bias, dec))
            extra_in = [const(f"{p}/syn_decay", syn_dec), const(f"{p}/syn_bias", syn_bias)]
            synaptic = f"{p}/synaptic"
            tensors[synaptic] = Tensor(synaptic, (n_out,), "int32", q)
            state["synaptic"] = synaptic
        ops.append(
            Op(
                NEURON_OF[layer.neuron],
                f"{p}_{layer.neuron}",
                [
                    cur,
                    const(f"{p}/bias", bias),
                    const(f"{p}/threshold", thr_q) if thr_q is not None else "",
                    const(f"{p}/decay", dec) if dec is not None else "",
                    *extra_in,
                ],
                [y],
                {
                    "n": n_out,
                    "reset": layer.reset,
                    "saturate": not bound < INT32_MAX,
                    "state": state,
                },
            )
        )
        x = y
    graph_meta = {
        "source_format": "snn",
        "lowered": True,
        "snn": {
            "n_inputs": net.n_inputs,
            "time_step_ms": float(net.time_step_ms),
            "weight_clip_percentile": float(clip),
        },
    }
    graph_meta.update(meta or {})
    graph = Graph(name, tensors, ops, ["spikes_in"], [x], graph_meta)
    try:
        graph.validate()
    except ValueError as exc:  # e.g. a membrane scale outside [1e-30, 1e30] from extreme values
        raise EdgekitError(f"the quantized spiking network is invalid: {exc}") from None
    return graph
