"""The golden model: the integer spiking graph executed in numpy, the oracle for generated C.

Per layer and step t (docs/snn.md, "Integer semantics"):

    I_i    = sum_j W_ij * s_j(t - d_ij)                          int32, exact
    v_i    = sat32(decay(v_i) + I_i + bias_i)     decay(v) = floor((v m_i + 2^29) / 2^30)
    lif/if: spike_i = v_i >= theta_i; on a spike v_i = 0 (zero) or v_i - theta_i (subtract)
    li:     v_i is the output
    cuba:   j_i = sat32(decay_syn(j_i) + I_i + syn_bias_i), then v_i = sat32(decay(v_i) + j_i +
            bias_i) and spike as lif (the synaptic current j_i is state, like v_i)

`if` neurons skip the decay. A chunk of steps is computed layer by layer (the network is
feed-forward, so this equals step by step): the currents of all steps come from one matrix product
per delay, which is exact in float64 because every partial sum stays far below 2^53.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgekit.ir.graph import Graph
from edgekit.snn import ops
from edgekit.snn.ops import CUBA, DECAY_SHIFT, LI

_I32_MIN, _I32_MAX = -(1 << 31), (1 << 31) - 1


@dataclass
class Trace:
    output: np.ndarray  # [T, n_out]: int32 membranes of an li readout, else bool spikes
    spikes: list[np.ndarray]  # per spiking layer, bool [T, n]


class GoldenSnn:
    """Stateful: `run` continues from where the previous call stopped until `reset`."""

    def __init__(self, graph: Graph) -> None:
        self.layers = ops.layers(graph)
        self.n_inputs = self.layers[0].n_in
        self.scales = [graph.tensor(layer.membrane).quant for layer in self.layers]
        self._wd: list[dict[int, np.ndarray]] = []
        for layer in self.layers:
            per_delay = {}
            for d in range(layer.max_delay):
                wd = np.where(layer.delays == d, layer.weights, 0).astype(np.float64)
                if np.any(wd):
                    per_delay[d] = np.ascontiguousarray(wd.T)
            self._wd.append(per_delay)
        self.reset()

    def reset(self) -> None:
        self._hist = [np.zeros((layer.max_delay - 1, layer.n_in), bool) for layer in self.layers]
        self._v = [np.zeros(layer.n_out, np.int64) for layer in self.layers]
        self._j = [np.zeros(layer.n_out, np.int64) for layer in self.layers]

    @property
    def membranes(self) -> list[np.ndarray]:
        return [v.astype(np.int32) for v in self._v]

    def _currents(self, k: int, x: np.ndarray) -> np.ndarray:
        layer, hist = self.layers[k], self._hist[k]
        t_steps = x.shape[0]
        ext = np.concatenate([hist, x], axis=0).astype(np.float64)
        cur = np.zeros((t_steps, layer.n_out))
        back = layer.max_delay - 1
        for d, wd in self._wd[k].items():
            cur += ext[back - d : back - d + t_steps] @ wd
        if back:
            self._hist[k] = np.concatenate([hist, x], axis=0)[-back:]
        return cur.astype(np.int64)

    def run(self, spikes: np.ndarray) -> Trace:
        """Advance over spikes [T, n_inputs] (0/1); returns every step's output."""
        x = np.asarray(spikes).astype(bool)
        if x.ndim != 2 or x.shape[1] != self.n_inputs:
            raise ValueError(f"spikes must be [T, {self.n_inputs}], got {list(x.shape)}")
        layer_spikes: list[np.ndarray] = []
        out = np.zeros((x.shape[0], 0))
        for k, layer in enumerate(self.layers):
            cur = self._currents(k, x)
            v, j = self._v[k], self._j[k]
            cuba = layer.kind == CUBA
            if cuba:
                assert layer.syn_decay is not None and layer.syn_bias is not None
                sdec = layer.syn_decay.astype(np.int64)
                sbias = layer.syn_bias.astype(np.int64)
            bias = layer.bias.astype(np.int64)
            dec = None if layer.decay is None else layer.decay.astype(np.int64)
            thr = None if layer.threshold is None else layer.threshold.astype(np.int64)
            vs = np.zeros((x.shape[0], layer.n_out), np.int32)
            s = np.zeros((x.shape[0], layer.n_out), bool)
            for t in range(x.shape[0]):
                if dec is not None:
                    v = (v * dec + (1 << (DECAY_SHIFT - 1))) >> DECAY_SHIFT
                if cuba:
                    j = (j * sdec + (1 << (DECAY_SHIFT - 1))) >> DECAY_SHIFT
                    j = np.clip(j + cur[t] + sbias, _I32_MIN, _I32_MAX)
                    v = np.clip(v + j + bias, _I32_MIN, _I32_MAX)
                else:
                    v = np.clip(v + cur[t] + bias, _I32_MIN, _I32_MAX)
                if thr is not None:
                    s[t] = v >= thr
                    v = np.where(s[t], 0 if layer.reset == "zero" else v - thr, v)
                vs[t] = v
            self._v[k], self._j[k] = v, j
            if layer.kind == LI:
                out = vs
            else:
                layer_spikes.append(s)
                out = s
            x = s
        return Trace(out, layer_spikes)

    def dequantize(self, readout: np.ndarray) -> np.ndarray:
        """Readout membranes in float (per-neuron membrane scales)."""
        q = self.scales[-1]
        assert q is not None
        return np.asarray(readout, dtype=np.float64) * q.scale.astype(np.float64)
