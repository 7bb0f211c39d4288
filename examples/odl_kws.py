"""On-device learning example: teach a small keyword spotter new keywords on an emulated MCU.

    python examples/odl_kws.py [--target rv32-zfh-v] [--precision fp16] [--epochs 8]
                               [--train-last 2] [--model kws_float32.tflite]

1. A DS-CNN-like keyword spotter (conv 10x4 stride 2, depthwise 3x3, pointwise 1x1, global
   average pool, fully connected; 49x10 MFCC-like input) is built by edgekit itself with fixed
   random feature layers -- or, with --model, any float keyword-spotting model is read instead.
2. Four "new keywords" are synthesised: each is a fixed spectro-temporal pattern (a few formant
   tracks over time) that the model never saw, and each sample adds timing jitter, gain changes
   and noise to its keyword's pattern.
3. `edgekit.train` generates <name>_train_step for the last --train-last layers; the firmware is
   cross-compiled for --target and runs under QEMU, one train step per labelled sample, and
   prints the loss of every step as the emulated MCU reports it.
4. The trained weights the MCU exported are loaded into the golden model (which the MCU equals
   bit for bit) to score held-out samples before and after training.

The loss printed per step is the one the emulated MCU computed; the example also checks that
it equals the golden model's, so what you see is what the device does.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.ir.graph import Graph
from edgekit.train import build_training
from edgekit.train.chain import FloatChain
from edgekit.train.golden import GoldenTrainer
from edgekit.train.runners import EmulatedTrainer

FRAMES, COEFFS = 49, 10
KEYWORDS = 4


def builtin_kws(seed: int = 0) -> Graph:
    """A DS-CNN-shaped keyword spotter: frozen random feature layers, a 4-class head."""
    c = FloatChain((1, FRAMES, COEFFS, 1), seed)
    c.conv(16, (10, 4), stride=2, pad=2)  # 49x10 -> 22x5x16
    c.dwconv(3, pad=1)
    c.conv(24, 1)
    c.global_pool().flatten().fc(KEYWORDS)
    return c.graph("kws_odl")


def keyword_patterns(rng: np.random.Generator) -> np.ndarray:
    """[KEYWORDS][FRAMES][COEFFS]: a few smooth formant tracks per keyword."""
    t = np.arange(FRAMES)[:, None]
    k = np.arange(COEFFS)[None, :]
    out = np.zeros((KEYWORDS, FRAMES, COEFFS))
    for w in range(KEYWORDS):
        for _ in range(3):
            start, slope = rng.uniform(0, COEFFS - 1), rng.uniform(-0.12, 0.12)
            t0, t1 = sorted(rng.uniform(0, FRAMES, 2))
            centre = start + slope * (t - t0)
            on = (t >= t0) & (t <= t1 + 8)
            out[w] += 2.0 * on * np.exp(-0.5 * ((k - centre) / 1.2) ** 2)
    return out


def samples_for(patterns: np.ndarray, n: int, rng: np.random.Generator) -> list:
    """n labelled samples, the keywords in turn: shifted in time, rescaled, noisy."""
    out = []
    for i in range(n):
        label = i % KEYWORDS
        x = np.roll(patterns[label], int(rng.integers(-3, 4)), axis=0) * rng.uniform(0.8, 1.2)
        x = x + rng.normal(0.0, 0.3, x.shape)
        out.append((x.reshape(1, FRAMES, COEFFS, 1).astype(np.float32), label))
    return out


def accuracy(golden: GoldenTrainer, samples: list) -> float:
    dt = golden.dtype
    hits = [
        int(np.argmax(golden.predict(x.astype(dt)).astype(np.float32))) == y for x, y in samples
    ]
    return sum(hits) / len(hits)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--target", default="rv32-zfh-v")
    ap.add_argument("--precision", default="fp16", choices=["fp16", "fp32"])
    ap.add_argument("--train-last", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--samples", type=int, default=16, help="labelled samples per epoch")
    ap.add_argument("--lr", type=float, default=0.2)
    ap.add_argument("--model", type=Path, help="a float keyword-spotting model instead")
    args = ap.parse_args()

    if args.model:
        from edgekit.pipeline import load_model

        graph, _ = load_model(args.model)
    else:
        graph = builtin_kws()
    try:
        build = build_training(
            graph, args.precision, args.train_last, "cross-entropy",
            f"sgd:lr={args.lr:g},momentum=0.9", args.target,
        )  # fmt: skip
    except EdgekitError as exc:
        print(f"odl_kws: {exc}", file=sys.stderr)
        return 2
    classes = build.spec.outputs
    if classes < KEYWORDS:
        print(f"odl_kws: the model has {classes} outputs, fewer than {KEYWORDS}", file=sys.stderr)
        return 2
    rng = np.random.default_rng(42)
    patterns = keyword_patterns(rng)
    train = samples_for(patterns, args.samples * args.epochs, rng)
    test = samples_for(patterns, 40, rng)

    r = build.report()
    ram = r["training_ram_bytes"]
    print(f"{graph.name}: training the last {args.train_last} layer(s), {r['parameters']:,} "
          f"parameters, {args.precision}, on {args.target} under QEMU")  # fmt: skip
    print(f"training RAM {ram['total']:,} B (weights {ram['trained_weights']:,}, momentum "
          f"{ram['momentum']:,}), {r['step_macs']:,} MACs per step\n")  # fmt: skip

    golden = GoldenTrainer(build.spec)
    before = accuracy(golden, test)
    print("cross-compiling and running the train steps on the emulated MCU ...")
    losses, weights, instructions = EmulatedTrainer(build).run(train, count=True)
    assert instructions is not None

    # the same steps in the golden model: the MCU must agree bit for bit
    dt = build.spec.dtype
    for step, ((x, y), got) in enumerate(zip(train, losses, strict=True)):
        want = golden.step(x.astype(dt), y)
        if np.float32(got).tobytes() != np.float32(want).tobytes():
            print(f"odl_kws: step {step}: MCU loss {got} != golden {want}", file=sys.stderr)
            return 1
    if weights[-1] != golden.weights_blob():
        print("odl_kws: the MCU's trained weights differ from the golden model", file=sys.stderr)
        return 1

    for epoch in range(args.epochs):
        chunk = losses[epoch * args.samples : (epoch + 1) * args.samples]
        first = epoch * args.samples
        print(f"\nepoch {epoch + 1}")
        for i, loss in enumerate(chunk):
            print(f"  step {first + i:3d}  label {train[first + i][1]}  loss {float(loss):.4f}")
        print(f"  mean loss {float(np.mean(chunk)):.4f}")
    golden.load_weights(weights[-1])
    after = accuracy(golden, test)
    print(f"\nheld-out accuracy on the {KEYWORDS} new keywords: {before:.0%} before, "
          f"{after:.0%} after ({len(train)} train steps, "
          f"{int(np.mean(instructions)):,} instructions per step on {args.target})")  # fmt: skip
    print("the MCU's losses and trained weights equal the golden model bit for bit")
    return 0


if __name__ == "__main__":
    sys.exit(main())
