"""A float spiking network out to NIR: the inverse of `importers.from_nir`, for round trips.

Each layer becomes `[Delay] Linear|Affine [Delay] LIF|IF|LI`, discretised back from the forward
Euler form the importer uses: for LIF/LI with k = 1 - beta, tau = dt / k, r = gain / k and
v_leak = offset / k (a Linear, no bias); for IF, r = gain / dt and an Affine bias offset / gain.

NIR can hold what this IR can, except:
* delays: NIR's Delay is per element, so a layer's delays must be d_ij = a_j + b_i (a Delay of
  a on the inputs, one of b on the outputs); a DCLS layer's per-synapse delays are refused;
* reset by subtraction (NIR resets to v_reset);
* the firing test: NIR fires on v > threshold, SNN-delays on v >= threshold, which differ only
  when v lands exactly on the threshold; `strict_ok=False` refuses such layers instead.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.snn.model import FloatLayer, FloatSnn


def _separable(d: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(a, b) >= 0 with d_ij = a_j + b_i, or None."""
    a = d[0, :] - d[0, :].min()
    b = d[:, 0] - a[0]
    if np.array_equal(d, b[:, None] + a[None, :]) and b.min(initial=0) >= 0:
        return a, b
    return None


def _layer_nodes(layer: FloatLayer, dt: float, k: int, strict_ok: bool) -> list[tuple[str, Any]]:
    import nir

    what = f"layer {k}"
    if layer.reset != "zero":
        raise EdgekitError(f"{what}: NIR resets to v_reset; reset by subtraction has no NIR form")
    if not layer.strict and layer.neuron != "li" and not strict_ok:
        raise EdgekitError(f"{what} fires on v >= threshold; NIR fires on v > threshold")
    ab = _separable(np.asarray(layer.delay, dtype=np.int64))
    if ab is None:
        raise EdgekitError(
            f"{what} has per-synapse delays; NIR's Delay is per element, so a layer's delays "
            "must be an input delay plus an output delay (d_ij = a_j + b_i)",
            hint="keep the .ekir, or the SNN-delays checkpoint, for such networks",
        )
    a, b = ab
    nodes: list[tuple[str, Any]] = []
    if a.any():
        nodes.append((f"delay_in{k}", nir.Delay(a.astype(np.float64) * dt)))
    n = layer.n_out
    thr = layer.v_threshold.astype(np.float64)
    if layer.neuron == "cuba":
        neuron = _cuba_nodes(layer, dt, k, nodes)
    elif layer.neuron == "if" or (layer.neuron == "lif" and np.all(layer.beta == 1.0)):
        gain = layer.gain.astype(np.float64)
        if np.any((gain == 0) & (layer.offset != 0)):
            raise EdgekitError(f"{what}: an IF neuron with a zero input gain has no NIR bias")
        bias = np.divide(layer.offset, gain, out=np.zeros(n), where=gain != 0)
        nodes.append((f"fc{k}", nir.Affine(weight=layer.weight.astype(np.float64), bias=bias)))
        neuron: Any = nir.IF(r=gain / dt, v_threshold=thr, v_reset=np.zeros(n))
    else:
        kk = 1.0 - layer.beta.astype(np.float64)
        if np.any(kk <= 0):
            raise EdgekitError(f"{what}: a leaky neuron with decay 1 mixed with leaky ones")
        nodes.append((f"fc{k}", nir.Linear(weight=layer.weight.astype(np.float64))))
        tau, r, leak = dt / kk, layer.gain / kk, layer.offset / kk
        if layer.neuron == "li":
            neuron = nir.LI(tau=tau, r=r, v_leak=leak)
        else:
            neuron = nir.LIF(tau=tau, r=r, v_leak=leak, v_threshold=thr, v_reset=np.zeros(n))
    if b.any():
        nodes.append((f"delay_out{k}", nir.Delay(b.astype(np.float64) * dt)))
    nodes.append((f"{layer.neuron}{k}", neuron))
    return nodes


def _cuba_nodes(layer: FloatLayer, dt: float, k: int, nodes: list[tuple[str, Any]]) -> Any:
    """Affine + CubaLIF, the inverse of the importer's Euler form with w_in = 1: ks = 1 - syn_beta,
    km = 1 - beta, tau = dt / k, r = gain / (km ks), Affine bias = syn_offset / gain."""
    import nir

    what = f"layer {k}"
    assert layer.syn_beta is not None and layer.syn_offset is not None
    ks, km = 1.0 - layer.syn_beta.astype(np.float64), 1.0 - layer.beta.astype(np.float64)
    gain = layer.gain.astype(np.float64)
    if np.any(ks <= 0) or np.any(km <= 0):
        raise EdgekitError(f"{what}: a CubaLIF with a decay of 1 has no finite NIR time constant")
    if np.any((gain == 0) & (layer.syn_offset != 0)):
        raise EdgekitError(f"{what}: a CubaLIF with a zero input gain has no NIR bias")
    bias = np.divide(layer.syn_offset, gain, out=np.zeros(layer.n_out), where=gain != 0)
    nodes.append((f"fc{k}", nir.Affine(weight=layer.weight.astype(np.float64), bias=bias)))
    return nir.CubaLIF(
        tau_syn=dt / ks, tau_mem=dt / km, r=gain / (km * ks), v_leak=layer.offset / km,
        v_threshold=layer.v_threshold.astype(np.float64), v_reset=np.zeros(layer.n_out),
    )  # fmt: skip


def to_nir(net: FloatSnn, dt: float | None = None, strict_ok: bool = True) -> Any:
    """`net` as a NIR graph (a chain Input, layers, Output) at time step dt seconds (default: the
    network's own time step)."""
    import nir

    dt = float(dt if dt is not None else net.time_step_ms / 1000.0)
    if not dt > 0:
        raise EdgekitError("exporting to NIR needs a positive time step")
    chain: list[tuple[str, Any]] = [
        ("input", nir.Input(input_type={"input": np.array([net.n_inputs])}))
    ]
    for k, layer in enumerate(net.layers):
        chain += _layer_nodes(layer, dt, k, strict_ok)
    chain.append(("output", nir.Output(output_type={"output": np.array([net.layers[-1].n_out])})))
    names = [name for name, _ in chain]
    return nir.NIRGraph(nodes=dict(chain), edges=list(zip(names[:-1], names[1:], strict=True)))
