"""Random SNN-delays checkpoints with realistic activity, for tests and benchmarks.

Weights follow SNN-delays' initialisation (Kaiming uniform, P uniform in [-D//2, D//2], then
rounded; SIG 0).
BatchNorm statistics are what training would leave: each layer's running mean and variance are
measured on its own pre-activations under Bernoulli input at `rate`, so hidden neurons fire at
a plausible rate instead of never or always.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgekit.snn.importers import CONFIG_DEFAULTS, dcls_delays

SHD_CONFIG: dict[str, Any] = {
    "n_inputs": 140,
    "n_hidden_layers": 2,
    "n_hidden_neurons": 256,
    "n_outputs": 20,
    "max_delay": 25,
    "time_step": 10,
    "init_tau": 10.05,
    "v_threshold": 1.0,
    "output_v_threshold": 1e9,
    "use_batchnorm": True,
    "bias": False,
    "spiking_neuron_type": "lif",
}
SSC_CONFIG: dict[str, Any] = {
    **SHD_CONFIG,
    "n_hidden_layers": 3,
    "n_hidden_neurons": 512,
    "n_outputs": 35,
    "max_delay": 31,
}


def _delayed(x: np.ndarray, w: np.ndarray, d: np.ndarray, dmax: int) -> np.ndarray:
    cur = np.zeros((x.shape[0], w.shape[0]))
    for k in range(dmax):
        wd = np.where(d == k, w, 0.0)
        if np.any(wd):
            cur[k:] += x[: x.shape[0] - k] @ wd.T
    return cur


def random_state_dict(
    cfg: dict[str, Any], seed: int = 0, rate: float = 0.05, steps: int = 200
) -> dict[str, np.ndarray]:
    """A state dict with SNN-delays' keys (model.<i>.weight, .P, .SIG; BatchNorm1d fields)."""
    c = {**CONFIG_DEFAULTS, **cfg}
    rng = np.random.default_rng(seed)
    n_layers = int(c["n_hidden_layers"]) + 1
    sizes = [int(c["n_inputs"])] + [int(c["n_hidden_neurons"])] * (n_layers - 1)
    sizes.append(int(c["n_outputs"]))
    dmax = int(c["max_delay"])
    tau = float(c["init_tau"]) / float(c["time_step"])
    beta = 1.0 - 1.0 / max(tau, 1.0)
    sd: dict[str, np.ndarray] = {}
    x = (rng.random((steps, sizes[0])) < rate).astype(np.float64)
    idx = 0
    for k in range(n_layers):
        n_in, n_out = sizes[k], sizes[k + 1]
        bound = np.sqrt(6.0 / n_in)
        w = rng.uniform(-bound, bound, (n_out, n_in, 1)).astype(np.float32)
        # rounded, as SNN-delays' round_pos() leaves them after training
        p = np.round(rng.uniform(-(dmax // 2), dmax // 2, (1, n_out, n_in, 1))).astype(np.float32)
        sd[f"model.{idx}.weight"] = w
        sd[f"model.{idx}.P"] = p
        sd[f"model.{idx}.SIG"] = np.zeros_like(p)
        last = k == n_layers - 1
        cur = _delayed(x, w[:, :, 0].astype(np.float64), dcls_delays(p[0, :, :, 0], dmax), dmax)
        if last:
            break
        idx += 1
        mean, var = cur.mean(axis=0), cur.var(axis=0) + 1e-3
        sd[f"model.{idx}.weight"] = np.ones(n_out, np.float32)
        sd[f"model.{idx}.bias"] = np.zeros(n_out, np.float32)
        sd[f"model.{idx}.running_mean"] = mean.astype(np.float32)
        sd[f"model.{idx}.running_var"] = var.astype(np.float32)
        sd[f"model.{idx}.num_batches_tracked"] = np.array(100, np.int64)
        y = (cur - mean) / np.sqrt(var + 1e-5)
        v = np.zeros(n_out)
        s = np.zeros_like(y)
        for t in range(steps):
            v = beta * v + y[t]
            s[t] = v >= float(c["v_threshold"])
            v = np.where(s[t] > 0, 0.0, v)
        x = s
        idx += 3  # LIF node and dropout have no tensors
    return sd
