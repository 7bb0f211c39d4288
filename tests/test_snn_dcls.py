"""SNN-delays checkpoints made by the real DCLS package, checked against a PyTorch forward.

The model is built the way SNN-delays builds it (an nn.Sequential of Dcls1d, BatchNorm1d, LIF and
dropout, saved as the state dict of the module holding it, so keys are `model.<i>.*`), randomly
initialised by DCLS itself, collapsed as SNN-delays does for inference (P rounded and clamped,
SIG 0), saved with torch.save and read through `edgekit convert`. The oracle is PyTorch running
the collapsed Dcls1d on the padded time axis; the LIF is SpikingJelly's update (v <- v (1 - 1/tau)
+ x, spike at v >= 1, hard reset to 0), written out in torch here.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgekit.cli import main
from edgekit.ir import serialize
from edgekit.snn import ops
from edgekit.snn.compile import compile_snn
from edgekit.snn.golden import GoldenSnn
from edgekit.snn.host import SnnHostModel
from edgekit.snn.importers import read_snn_delays
from edgekit.snn.model import predict, simulate
from edgekit.snn.synthetic import SHD_CONFIG

torch = pytest.importorskip("torch")
dcls = pytest.importorskip("DCLS.construct.modules")


def _snn_delays_model(cfg: dict, seed: int) -> tuple[torch.nn.Module, list[int]]:
    """An SNN-delays-shaped model, randomly initialised, collapsed for inference."""
    torch.manual_seed(seed)
    dmax = cfg["max_delay"]
    sizes = [cfg["n_inputs"]] + [cfg["n_hidden_neurons"]] * cfg["n_hidden_layers"]
    sizes.append(cfg["n_outputs"])
    mods: list[torch.nn.Module] = []
    dcls_idx = []
    for k in range(len(sizes) - 1):
        conv = dcls.Dcls1d(
            sizes[k], sizes[k + 1], kernel_count=1, dilated_kernel_size=dmax, bias=False
        )  # the default gauss version, as SNN-delays trains it
        with torch.no_grad():
            # SNN-delays' init: P uniform over the kernel span; then its inference collapse
            torch.nn.init.uniform_(conv.P, a=-(dmax // 2), b=dmax // 2)
            conv.P.round_().clamp_(-(dmax // 2), dmax // 2)
            conv.SIG.zero_()
        dcls_idx.append(len(mods))
        mods.append(conv)
        if k < len(sizes) - 2:
            bn = torch.nn.BatchNorm1d(sizes[k + 1])
            with torch.no_grad():
                bn.weight.uniform_(0.5, 1.5)
                bn.bias.uniform_(-0.1, 0.3)
                bn.running_mean.uniform_(-0.05, 0.05)
                bn.running_var.uniform_(0.002, 0.01)
            mods += [bn, torch.nn.Identity(), torch.nn.Dropout(0.4)]  # LIF, dropout: no tensors
    holder = torch.nn.Module()
    holder.model = torch.nn.Sequential(*mods).double().eval()
    return holder, dcls_idx


def _collapsed(holder: torch.nn.Module, dcls_idx: list[int]) -> torch.nn.Sequential:
    """The same model with each Dcls1d as "v1" (linear interpolation): exactly one tap at an
    integer position, the kernel SNN-delays means at inference (gauss with SIG = 0 still leaks
    about 0.1% into the neighbouring taps)."""
    mods = list(holder.model)
    for idx in dcls_idx:
        g = mods[idx]
        v1 = dcls.Dcls1d(
            g.in_channels, g.out_channels, kernel_count=1,
            dilated_kernel_size=g.dilated_kernel_size, bias=False, version="v1",
        ).double()  # fmt: skip
        with torch.no_grad():
            v1.weight.copy_(g.weight)
            v1.P.copy_(g.P)
        mods[idx] = v1
    return torch.nn.Sequential(*mods).eval()


def _torch_forward(
    holder: torch.nn.Module, dcls_idx: list[int], cfg: dict, x: np.ndarray
) -> tuple[list[np.ndarray], np.ndarray]:
    """Hidden spikes [T, n] per layer and the readout membranes [T, n_out], in float64."""
    dmax, tau = cfg["max_delay"], cfg["init_tau"] / cfg["time_step"]
    seq = _collapsed(holder, dcls_idx)
    h = torch.as_tensor(x.astype(np.float64)).T[None]  # [1, n_in, T]
    spikes = []
    with torch.no_grad():
        for k, idx in enumerate(dcls_idx):
            z = seq[idx](torch.nn.functional.pad(h, (dmax - 1, 0)))  # [1, n_out, T]
            last = k == len(dcls_idx) - 1
            if not last:
                z = seq[idx + 1](z)
            v = torch.zeros(z.shape[1], dtype=torch.float64)
            out = torch.zeros_like(z[0])
            for t in range(z.shape[2]):
                v = v * (1.0 - 1.0 / tau) + z[0, :, t]
                if last:
                    out[:, t] = v
                else:
                    s = (v >= 1.0).double()
                    out[:, t] = s
                    v = v * (1.0 - s)
            if not last:
                spikes.append(out.T.numpy().astype(bool))
            h = out[None]
    return spikes, h[0].T.numpy()


def test_shd_sized_checkpoint_from_random_dcls_model(tmp_path: Path) -> None:
    cfg = dict(SHD_CONFIG)
    holder, dcls_idx = _snn_delays_model(cfg, seed=0)
    ckpt = tmp_path / "snn_delays_checkpoint.pt"
    torch.save(holder.state_dict(), ckpt)
    (tmp_path / "model.json").write_text(json.dumps(cfg))
    sd = holder.state_dict()
    assert {"model.0.weight", "model.0.P", "model.0.SIG", "model.1.running_var"} <= set(sd)

    net = read_snn_delays(ckpt, tmp_path / "model.json")
    rng = np.random.default_rng(0)
    x = rng.random((80, cfg["n_inputs"])) < 0.05
    want_spikes, want_v = _torch_forward(holder, dcls_idx, cfg, x)
    got = simulate(net, x)
    assert sum(int(s.sum()) for s in want_spikes) > 100  # the hidden layers do fire
    for a, b in zip(got["spikes"], want_spikes, strict=True):
        # float64 both sides; a spike may only flip where v sits on the threshold to 1e-9
        assert (a != b).mean() < 1e-3
    np.testing.assert_allclose(got["readout"], want_v, rtol=1e-6, atol=1e-6)

    out = tmp_path / "shd.ekir"
    assert main(["convert", str(ckpt), "--config", str(tmp_path / "model.json"), "-o", str(out),
                 "--samples", "3", "--steps", "40"]) == 0  # fmt: skip
    graph = serialize.load(out)
    layers = ops.layers(graph)
    assert [(la.n_in, la.n_out, la.max_delay) for la in layers] == [
        (140, 256, 25), (256, 256, 25), (256, 20, 25),
    ]  # fmt: skip
    for la, idx in zip(layers, dcls_idx, strict=True):
        p = sd[f"model.{idx}.P"][0, :, :, 0].numpy()
        np.testing.assert_array_equal(la.delays, 12 - np.round(p).astype(int))
        assert la.delays.min() == 0 and la.delays.max() == 24
    golden = GoldenSnn(graph)
    q = golden.run(x).output
    assert predict(golden.dequantize(q)) == predict(want_v)
    model = SnnHostModel(compile_snn(graph, kernel="gather"))
    model.reset()
    np.testing.assert_array_equal(model.run(x), q)


def test_delay_training_example_tiny(tmp_path: Path) -> None:
    """examples/snn_delays_demo.py end to end with its seconds-long configuration: DCLS training,
    convert, quantize --calib, generate, verify; the C equals the golden model on the test set."""
    import importlib.util
    import sys

    path = Path(__file__).resolve().parents[1] / "examples" / "snn_delays_demo.py"
    spec = importlib.util.spec_from_file_location("snn_delays_demo", path)
    assert spec is not None and spec.loader is not None
    demo = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = demo  # dataclasses look their module up there
    spec.loader.exec_module(demo)
    assert demo.main(["--tiny", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["c_equals_golden"]
    q = serialize.load(tmp_path / "demo_q.ekir")
    assert "calibration" in q.meta["snn"]
    assert (tmp_path / "build" / "demo.h").is_file()
    # the exported checkpoint really is SNN-delays shaped: Dcls1d at 0 and 4, BatchNorm1d at 1
    sd = torch.load(tmp_path / "demo.pt", weights_only=True)
    assert {"model.0.P", "model.0.SIG", "model.1.running_mean", "model.4.P"} <= set(sd)
