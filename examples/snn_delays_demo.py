"""Train a tiny spiking network with learned synaptic delays (DCLS), then deploy it with edgekit.

    pip install -e .[torch]            # torch and dcls
    python examples/snn_delays_demo.py                     # ~1-2 CPU minutes
    python examples/snn_delays_demo.py --emulate           # also verify under QEMU (Cortex-M4)
    python examples/snn_delays_demo.py --tiny              # seconds: what the tests run

The task is about timing: every class fires the same channels once each, in a class-specific
order, and the whole pattern starts at a random step, so neither spike counts nor absolute times
carry information; only the relative timing does. A neuron detects "channel a, then channel b
k steps later" best when its synapse from a is delayed by k more than the one from b, so the
positions P of the Dcls1d kernels are what learning has to get right.

The model is SNN-delays' (Dcls1d -> BatchNorm1d -> LIF -> Dropout, then Dcls1d -> leaky
integrator readout, prediction = argmax of the summed softmax of the readout), trained with a
surrogate gradient while the Gaussian spread SIG of each delay anneals towards 0, then collapsed
as SNN-delays does for inference (P rounded, SIG = 0). Its state dict is saved exactly as
SNN-delays saves it (`model.<i>.*` keys) with a config of its field names, and then:

    edgekit convert  demo.pt --config model.json -o demo.ekir
    edgekit quantize demo.ekir --calib spikes.npz -o demo_q.ekir
    edgekit generate demo_q.ekir --target cortex-m4 --snn-kernel auto -o build/demo
    edgekit verify   demo_q.ekir                      (host: C == golden model, spike for spike)
    edgekit verify   demo_q.ekir --target cortex-m4 --emulate      (with --emulate)

Finally the generated C runs on the held-out set and its accuracy is printed next to the float
model's.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


@dataclass
class Task:
    n_inputs: int = 16
    n_classes: int = 4
    pattern_steps: int = 16  # the pattern's spikes fall in the first pattern_steps steps
    steps: int = 40  # total steps per sample, the rest is silence for delayed spikes to land
    noise: float = 0.01  # background spike probability per channel and step
    jitter: int = 1  # each pattern spike moves by up to this many steps
    onset: int = 8  # the whole pattern starts 0..onset steps late: absolute time says nothing


@dataclass
class Train:
    hidden: int = 32
    max_delay: int = 13
    tau: float = 2.0  # membrane time constant in steps
    epochs: int = 20
    batch: int = 64
    train_samples: int = 1024
    test_samples: int = 256
    lr: float = 1e-2
    lr_positions: float = 5e-2
    seed: int = 0


TINY = (
    Task(n_inputs=8, n_classes=3, pattern_steps=8, steps=20, onset=2),
    Train(hidden=12, max_delay=7, epochs=2, batch=32, train_samples=96, test_samples=32),
)


def make_patterns(task: Task, rng: np.random.Generator) -> np.ndarray:
    """[n_classes, n_inputs]: the step at which each channel fires in each class."""
    return np.stack(
        [rng.permutation(np.linspace(0, task.pattern_steps - 1, task.n_inputs).round().astype(int))
         for _ in range(task.n_classes)]
    )  # fmt: skip


def make_data(
    task: Task, patterns: np.ndarray, n: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """n samples [n, steps, n_inputs] of 0/1 and their labels."""
    y = rng.integers(0, task.n_classes, n)
    x = (rng.random((n, task.steps, task.n_inputs)) < task.noise).astype(np.float32)
    for s in range(n):
        t = patterns[y[s]] + rng.integers(0, task.onset + 1)
        t = t + rng.integers(-task.jitter, task.jitter + 1, task.n_inputs)
        x[s, np.clip(t, 0, task.steps - 1), np.arange(task.n_inputs)] = 1.0
    return x, y


def build(task: Task, cfg: Train):  # noqa: ANN201 - torch types stay local to this example
    import torch
    from DCLS.construct.modules import Dcls1d

    class SpikeFn(torch.autograd.Function):
        """Heaviside forward, arctan surrogate backward (SpikingJelly's default surrogate)."""

        @staticmethod
        def forward(ctx, v):  # noqa: ANN001, ANN205
            ctx.save_for_backward(v)
            return (v >= 0).to(v.dtype)

        @staticmethod
        def backward(ctx, grad):  # noqa: ANN001, ANN205
            (v,) = ctx.saved_tensors
            return grad / (1 + (np.pi * v) ** 2)

    class Lif(torch.nn.Module):
        """SpikingJelly LIFNode(decay_input=False, v_reset=0): v <- v (1 - 1/tau) + x; spike at
        v >= threshold, then v = 0. With an unreachable threshold it is the readout integrator
        and returns the membrane. Carries no tensors, like SpikingJelly's nodes."""

        def __init__(self, tau: float, readout: bool) -> None:
            super().__init__()
            self.beta, self.readout = 1.0 - 1.0 / tau, readout

        def forward(self, x):  # noqa: ANN001, ANN202 - x [B, C, T]
            v = torch.zeros_like(x[:, :, 0])
            out = []
            for t in range(x.shape[2]):
                v = v * self.beta + x[:, :, t]
                if self.readout:
                    out.append(v)
                else:
                    s = SpikeFn.apply(v - 1.0)
                    out.append(s)
                    v = v * (1.0 - s)
            return torch.stack(out, dim=2)

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            d = cfg.max_delay
            conv1 = Dcls1d(task.n_inputs, cfg.hidden, kernel_count=1, dilated_kernel_size=d,
                           bias=False)  # fmt: skip
            conv2 = Dcls1d(cfg.hidden, task.n_classes, kernel_count=1, dilated_kernel_size=d,
                           bias=False)  # fmt: skip
            for c in (conv1, conv2):
                torch.nn.init.uniform_(c.P, a=-(d // 2), b=d // 2)
                torch.nn.init.constant_(c.SIG, d / 2)
                c.SIG.requires_grad_(False)  # annealed by hand, as SNN-delays does
            self.model = torch.nn.Sequential(
                conv1, torch.nn.BatchNorm1d(cfg.hidden), Lif(cfg.tau, False),
                torch.nn.Dropout(0.1), conv2, Lif(cfg.tau, True),
            )  # fmt: skip

        def forward(self, x):  # noqa: ANN001, ANN202 - x [B, T, C] -> readout [B, T, classes]
            d = cfg.max_delay
            h = x.permute(0, 2, 1)
            for m in self.model:
                # Dcls1d: pad D - 1 steps on the left, so delays only look back (causal)
                h = m(torch.nn.functional.pad(h, (d - 1, 0)) if isinstance(m, Dcls1d) else h)
            return h.permute(0, 2, 1)

    return Net()


def decide(v: np.ndarray) -> np.ndarray:
    """SNN-delays' rule on [N, T, classes]: argmax of the summed softmax over time."""
    e = np.exp(v - v.max(axis=2, keepdims=True))
    return (e / e.sum(axis=2, keepdims=True)).sum(axis=1).argmax(axis=1)


def train(task: Task, cfg: Train, x: np.ndarray, y: np.ndarray, log: bool = True):  # noqa: ANN201
    import torch

    torch.manual_seed(cfg.seed)
    net = build(task, cfg)
    convs = [m for m in net.model if hasattr(m, "P")]
    positions = [m.P for m in convs]
    others = [p for n, p in net.named_parameters() if not n.endswith(".P") and p.requires_grad]
    opt = torch.optim.Adam([{"params": others, "lr": cfg.lr},
                            {"params": positions, "lr": cfg.lr_positions}])  # fmt: skip
    xt, yt = torch.as_tensor(x), torch.as_tensor(y)
    n = len(xt)
    for epoch in range(cfg.epochs):
        # SIG from D/2 down to ~0 over the first 3/4 of training, then one tap per synapse
        sig = max(0.0, cfg.max_delay / 2 * (1 - epoch / max(1, 0.75 * cfg.epochs)))
        for c in convs:
            c.SIG.data.fill_(sig)
        net.train()
        perm = torch.randperm(n)
        total, correct = 0.0, 0
        for b in range(0, n, cfg.batch):
            idx = perm[b : b + cfg.batch]
            v = net(xt[idx])
            prob = torch.softmax(v, dim=2).mean(dim=1)
            loss = torch.nn.functional.nll_loss(torch.log(prob + 1e-9), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            for c in convs:
                c.clamp_parameters()
            total += loss.item() * len(idx)
            correct += int((prob.argmax(1) == yt[idx]).sum())
        if log and (epoch % 5 == 4 or epoch == cfg.epochs - 1):
            print(f"  epoch {epoch + 1:3d}: loss {total / n:.3f}, train accuracy "
                  f"{correct / n:.2f}, SIG {sig:.2f}")  # fmt: skip
    collapse(net, cfg)
    return net


def collapse(net, cfg: Train) -> None:  # noqa: ANN001
    """SNN-delays' inference form: positions rounded into the kernel, SIG 0 (one tap each)."""
    import torch

    with torch.no_grad():
        for m in net.model:
            if hasattr(m, "P"):
                m.P.round_().clamp_(-(cfg.max_delay // 2), cfg.max_delay // 2)
                m.SIG.zero_()
    net.eval()


def torch_readout(net, cfg: Train, x: np.ndarray) -> np.ndarray:  # noqa: ANN001
    """The collapsed model's readout [N, T, classes] in PyTorch, each Dcls1d as one exact tap
    ("v1" kernels with the same weights and positions; gauss with SIG = 0 still leaks a little)."""
    import copy

    import torch
    from DCLS.construct.modules import Dcls1d

    twin = copy.deepcopy(net)
    for i, m in enumerate(twin.model):
        if isinstance(m, Dcls1d):
            v1 = Dcls1d(
                m.in_channels,
                m.out_channels,
                kernel_count=1,
                dilated_kernel_size=m.dilated_kernel_size,
                bias=False,
                version="v1",
            )
            with torch.no_grad():
                v1.weight.copy_(m.weight)
                v1.P.copy_(m.P)
            twin.model[i] = v1
    twin.eval()
    with torch.no_grad():
        return twin(torch.as_tensor(x)).numpy()


def deploy(
    task: Task, cfg: Train, net, x_cal: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,  # noqa: ANN001
    out: Path, emulate: bool,
) -> dict:  # fmt: skip
    """convert -> quantize -> generate -> verify with the edgekit CLI; returns the figures."""
    import torch

    from edgekit.cli import main
    from edgekit.ir import serialize
    from edgekit.snn.compile import compile_snn
    from edgekit.snn.golden import GoldenSnn
    from edgekit.snn.host import SnnHostModel

    out.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), out / "demo.pt")
    config = {  # SNN-delays' Config field names; init_tau in ms as it writes it
        "n_inputs": task.n_inputs, "n_hidden_layers": 1, "n_hidden_neurons": cfg.hidden,
        "n_outputs": task.n_classes, "max_delay": cfg.max_delay, "time_step": 10,
        "init_tau": 10.0 * cfg.tau, "v_threshold": 1.0, "output_v_threshold": 1e9,
        "use_batchnorm": True, "bias": False, "spiking_neuron_type": "lif",
    }  # fmt: skip
    (out / "model.json").write_text(json.dumps(config, indent=2))
    np.savez(out / "spikes.npz", spikes=x_cal.astype(np.uint8))

    def run(*argv: str) -> None:
        print("$ edgekit " + " ".join(argv))
        code = main(list(argv))
        if code != 0:
            raise SystemExit(f"edgekit {argv[0]} failed with exit code {code}")

    ekir, q = str(out / "demo.ekir"), str(out / "demo_q.ekir")
    run("convert", str(out / "demo.pt"), "--config", str(out / "model.json"), "-o", ekir,
        "--samples", "8", "--steps", str(task.steps))  # fmt: skip
    run("quantize", ekir, "--calib", str(out / "spikes.npz"), "-o", q)
    run("generate", q, "--target", "cortex-m4", "--snn-kernel", "auto", "-o",
        str(out / "build"), "--force")  # fmt: skip
    run("verify", q, "--steps", "256")
    if emulate:
        run("verify", q, "--target", "cortex-m4", "--emulate", "--snn-kernel", "auto")

    graph = serialize.load(q)
    golden = GoldenSnn(graph)
    host = SnnHostModel(compile_snn(graph, kernel="auto"))
    c_out, g_out = [], []
    for s in x_test:
        golden.reset()
        host.reset()
        g_out.append(golden.run(s > 0).output)
        c_out.append(host.run(s > 0))
    c_out, g_out = np.stack(c_out), np.stack(g_out)
    assert np.array_equal(c_out, g_out), "generated C differs from the golden model"
    scale = graph.tensor(graph.outputs[0]).quant.scale.astype(np.float64)
    return {
        "float_accuracy": float((decide(torch_readout(net, cfg, x_test)) == y_test).mean()),
        "c_accuracy": float((decide(c_out * scale) == y_test).mean()),
        "c_equals_golden": True,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("build/snn_delays_demo"))
    ap.add_argument("--tiny", action="store_true", help="seconds-long configuration (tests)")
    ap.add_argument("--emulate", action="store_true", help="also verify under QEMU (Cortex-M4)")
    ap.add_argument("--epochs", type=int, help="override the number of epochs")
    args = ap.parse_args(argv)
    task, cfg = TINY if args.tiny else (Task(), Train())
    if args.epochs:
        cfg.epochs = args.epochs
    rng = np.random.default_rng(cfg.seed)
    patterns = make_patterns(task, rng)
    x, y = make_data(task, patterns, cfg.train_samples, rng)
    x_test, y_test = make_data(task, patterns, cfg.test_samples, rng)
    t0 = time.monotonic()
    print(f"training {task.n_inputs}-{cfg.hidden}-{task.n_classes}, D = {cfg.max_delay}, "
          f"on {cfg.train_samples} samples of {task.steps} steps")  # fmt: skip
    net = train(task, cfg, x, y)
    print(f"trained in {time.monotonic() - t0:.0f} s")
    res = deploy(task, cfg, net, x[:64], x_test, y_test, args.out, args.emulate)
    print(f"held-out accuracy: float (PyTorch, collapsed) {res['float_accuracy']:.3f}, "
          f"generated C {res['c_accuracy']:.3f} (C == golden model on all "
          f"{cfg.test_samples} samples); chance {1 / task.n_classes:.3f}")  # fmt: skip
    (args.out / "result.json").write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
