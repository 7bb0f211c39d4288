"""A spiking network with per-synapse integer delays, in float: what importers produce.

Every layer is a delayed synaptic projection followed by a population of neurons, stepped once per
time step (the order a streaming device sees). Per step t and output neuron i:

    I_i(t) = sum_j W_ij * s_j(t - d_ij)          (s = 0 before the first step)
    y_i(t) = gain_i * I_i(t) + offset_i           (BatchNorm, Dcls bias and input gains folded)
    v_i(t) = beta_i * v_i(t-1) + y_i(t)
    lif/if: spike when v_i >= v_threshold (> for NIR models), then v_i <- 0 (reset "zero")
            or v_i - v_threshold (reset "subtract")
    li:     never spikes; v is the readout
    cuba:   a current-based LIF: a synaptic current j filters y first, the membrane integrates j
            j_i(t) = syn_beta_i * j_i(t-1) + gain_i * I_i(t) + syn_offset_i
            v_i(t) = beta_i * v_i(t-1) + j_i(t) + offset_i, then spike and reset as lif

This is SpikingJelly's LIFNode with decay_input=False and v_reset=0 (beta = 1 - 1/tau), fed by a
Dcls1d whose kernel has one tap per synapse. `simulate` runs it in float64; `predict` is the
SNN-delays decision rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

NEURONS = ("lif", "if", "li", "cuba")
RESETS = ("zero", "subtract")


@dataclass
class FloatLayer:
    weight: np.ndarray  # [n_out, n_in] float
    delay: np.ndarray  # [n_out, n_in] int, 0 <= d < max_delay
    max_delay: int  # D: how many past input vectors the layer can reach (delays 0..D-1)
    neuron: str  # lif | if | li
    beta: np.ndarray  # [n_out] membrane decay per step (1 for if)
    gain: np.ndarray  # [n_out] multiplies the synaptic current (folded BatchNorm scale)
    offset: np.ndarray  # [n_out] added every step (folded BatchNorm shift, bias, leak)
    v_threshold: np.ndarray  # [n_out]; unused for li
    reset: str = "zero"
    strict: bool = False  # spike when v > v_threshold (NIR) instead of v >= v_threshold
    # cuba only: the synaptic current's decay per step and its per-step input (an Affine bias)
    syn_beta: np.ndarray | None = None
    syn_offset: np.ndarray | None = None

    @property
    def n_in(self) -> int:
        return int(self.weight.shape[1])

    @property
    def n_out(self) -> int:
        return int(self.weight.shape[0])

    def check(self, where: str) -> None:
        n_out, n_in = self.weight.shape
        if self.delay.shape != (n_out, n_in):
            raise ValueError(f"{where}: delay shape {self.delay.shape} != weight {(n_out, n_in)}")
        if self.max_delay < 1 or self.max_delay > 256:
            raise ValueError(f"{where}: max_delay {self.max_delay} must be in 1..256")
        if self.delay.size and (self.delay.min() < 0 or self.delay.max() >= self.max_delay):
            raise ValueError(f"{where}: delays must lie in [0, {self.max_delay - 1}]")
        if self.neuron not in NEURONS or self.reset not in RESETS:
            raise ValueError(f"{where}: unknown neuron '{self.neuron}' or reset '{self.reset}'")
        for name in ("beta", "gain", "offset", "v_threshold"):
            if getattr(self, name).shape != (n_out,):
                raise ValueError(f"{where}: {name} must have shape ({n_out},)")
        if np.any(self.beta < 0) or np.any(self.beta > 1):
            raise ValueError(f"{where}: membrane decay must lie in [0, 1] (tau >= 1 step)")
        if self.neuron != "li" and np.any(self.v_threshold <= 0):
            raise ValueError(f"{where}: thresholds must be positive")
        if self.neuron == "cuba":
            for name in ("syn_beta", "syn_offset"):
                value = getattr(self, name)
                if value is None or value.shape != (n_out,):
                    raise ValueError(f"{where}: a cuba layer needs {name} of shape ({n_out},)")
            assert self.syn_beta is not None
            if np.any(self.syn_beta < 0) or np.any(self.syn_beta > 1):
                raise ValueError(f"{where}: synaptic decay must lie in [0, 1] (tau_syn >= 1 step)")


@dataclass
class FloatSnn:
    n_inputs: int
    layers: list[FloatLayer]
    time_step_ms: float = 1.0
    meta: dict[str, Any] = field(default_factory=dict)

    def check(self) -> None:
        n = self.n_inputs
        if not self.layers:
            raise ValueError("a spiking network needs at least one layer")
        for k, layer in enumerate(self.layers):
            layer.check(f"layer {k}")
            if layer.n_in != n:
                raise ValueError(f"layer {k} takes {layer.n_in} inputs, previous gives {n}")
            n = layer.n_out
        for k, layer in enumerate(self.layers[:-1]):
            if layer.neuron == "li":
                raise ValueError(f"layer {k}: a leaky integrator gives no spikes to the next layer")


def _delayed_current(layer: FloatLayer, x: np.ndarray) -> np.ndarray:
    """I[t, i] = sum_j W_ij x[t - d_ij, j] for a whole spike train x [T, n_in]."""
    t_steps = x.shape[0]
    cur = np.zeros((t_steps, layer.n_out))
    xf = x.astype(np.float64)
    for d in range(min(layer.max_delay, t_steps)):
        wd = np.where(layer.delay == d, layer.weight, 0.0)
        if np.any(wd):
            cur[d:] += xf[: t_steps - d] @ wd.T
    return cur


def simulate(net: FloatSnn, spikes: np.ndarray) -> dict[str, Any]:
    """Run from rest over spikes [T, n_inputs] (0/1). Returns per-layer spikes and the readout.

    `spikes` is a list of [T, n] bool arrays, one per spiking layer; `readout` is the last layer's
    membrane [T, n_out] (after the reset, so for an li readout it is SNN-delays' v_seq).
    """
    x = np.asarray(spikes).astype(bool)
    out: dict[str, Any] = {"spikes": [], "readout": None}
    for layer in net.layers:
        y = _delayed_current(layer, x) * layer.gain
        v, j = np.zeros(layer.n_out), np.zeros(layer.n_out)
        s = np.zeros((x.shape[0], layer.n_out), dtype=bool)
        vs = np.zeros((x.shape[0], layer.n_out))
        for t in range(x.shape[0]):
            if layer.neuron == "cuba":
                assert layer.syn_beta is not None and layer.syn_offset is not None
                j = layer.syn_beta * j + y[t] + layer.syn_offset
                v = layer.beta * v + j + layer.offset
            else:
                v = layer.beta * v + y[t] + layer.offset
            if layer.neuron != "li":
                s[t] = v > layer.v_threshold if layer.strict else v >= layer.v_threshold
                v = np.where(s[t], 0.0 if layer.reset == "zero" else v - layer.v_threshold, v)
            vs[t] = v
        if layer.neuron != "li":
            out["spikes"].append(s)
        out["readout"] = vs if layer.neuron == "li" else s
        x = s
    return out


def predict(readout: np.ndarray) -> int:
    """SNN-delays' decision: argmax over classes of the sum over time of softmax(v[t]).

    A spiking readout (bool [T, n]) is decided by spike count instead, as with its spike_count loss.
    """
    if np.asarray(readout).dtype == bool:
        return int(np.argmax(np.asarray(readout).sum(axis=0)))
    v = np.asarray(readout, dtype=np.float64)
    z = v - v.max(axis=1, keepdims=True)
    e = np.exp(z)
    return int(np.argmax((e / e.sum(axis=1, keepdims=True)).sum(axis=0)))
