"""FP16 benchmark: exact executed instructions under QEMU, FP16 next to FP32 on the same target.

    python bench/fp16.py [--models DIR] [--targets a,b] [--json]

1. conv2d layers with the shapes of the MLPerf Tiny float models, alone in a graph, on
   rv32-zfh-v (RVV, VLEN 128): FP16 vs the same kernels with binary32 storage.
2. The four float models on every FP16 target: instructions per inference, MACs per
   instruction, and the FP32 build of the same model on the same target.

Counts are QEMU -icount instruction counts (deterministic, not cycles). Both precisions compute
the contract of docs/numerics-fp16.md and are checked against the golden model on the sample
they run (a count of wrong code would be worthless).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.ir.graph import Graph, Op, Tensor
from edgekit.pipeline import Compiled, compile_file, compile_graph
from edgekit.reference.fp16_golden import run_graph, same_bits
from edgekit.runners.emulated_model import EmulatedModel
from edgekit.verify import random_inputs

MODELS = {
    "KWS": "kws_ref_model_float32.tflite",
    "VWW": "vww_96_float.tflite",
    "IC": "pretrainedResnet.tflite",
    "AD": "ad01_fp32.tflite",
}
TARGETS = ["rv32-zfh-v", "rv32imafc-zfh", "cortex-m55", "aarch64-neon-fp16"]
CONV_TARGET = "rv32-zfh-v"
# name: (input H, W, C), filter (KH, KW), output channels, stride, SAME padding
CONV_LAYERS: dict[str, tuple[tuple[int, int, int], tuple[int, int], int, int, bool]] = {
    "KWS conv1 10x4 s2, 49x10x1 -> 64": ((49, 10, 1), (10, 4), 64, 2, True),
    "KWS pointwise 1x1, 25x5x64 -> 64": ((25, 5, 64), (1, 1), 64, 1, False),
    "IC 3x3, 32x32x16 -> 16": ((32, 32, 16), (3, 3), 16, 1, True),
    "IC 3x3, 16x16x32 -> 32": ((16, 16, 32), (3, 3), 32, 1, True),
    "IC 3x3, 8x8x64 -> 64": ((8, 8, 64), (3, 3), 64, 1, True),
    "VWW conv1 3x3 s2, 96x96x3 -> 8": ((96, 96, 3), (3, 3), 8, 2, True),
    "VWW pointwise 1x1, 24x24x32 -> 32": ((24, 24, 32), (1, 1), 32, 1, False),
    "VWW pointwise 1x1, 6x6x128 -> 128": ((6, 6, 128), (1, 1), 128, 1, False),
}


def conv_graph(
    shape: tuple[int, int, int], k: tuple[int, int], oc: int, s: int, same: bool
) -> Graph:
    """A float32 graph holding one conv2d with relu, random He-scaled weights."""
    rng = np.random.default_rng(0)
    h, w, c = shape
    kh, kw = k

    def out_pad(size: int, f: int) -> tuple[int, int]:
        out = (size + s - 1) // s if same else (size - f + s) // s
        return out, max(0, (out - 1) * s + f - size) // 2

    (oh, pt), (ow, pl) = out_pad(h, kh), out_pad(w, kw)
    weights = (rng.standard_normal((oc, kh, kw, c)) * (kh * kw * c) ** -0.5).astype(np.float32)
    tensors = {
        "x": Tensor("x", (1, h, w, c), "float32"),
        "w": Tensor("w", weights.shape, "float32", None, weights),
        "b": Tensor("b", (oc,), "float32", None, rng.standard_normal(oc).astype(np.float32)),
        "y": Tensor("y", (1, oh, ow, oc), "float32"),
    }
    attrs = {"stride": [s, s], "dilation": [1, 1], "pad": [pt, pl], "activation": "relu"}
    op = Op("conv2d", "op0_conv2d", ["x", "w", "b"], ["y"], attrs)
    return Graph("conv", tensors, [op], ["x"], ["y"], {"source_format": "bench"})


def count(compiled: Compiled) -> dict[str, Any]:
    """Instructions of one inference (and per layer), checked against the golden model."""
    sample = random_inputs(compiled.graph, 1, 0)
    run = EmulatedModel(compiled).run(sample, count=True, per_layer=True)
    for got, want in zip(run.outputs[0], run_graph(compiled.graph, sample[0]), strict=True):
        if not same_bits(np.asarray(got).reshape(want.shape), want).all():
            raise SystemExit(f"{compiled.graph.name} on {compiled.target}: differs from golden")
    layers = [layer for layer in compiled.generated.layers if not layer.noop]
    macs = sum(layer.macs for layer in layers)
    return {
        "instructions": run.instructions[0],
        "layer_instructions": run.layer_instructions[0],
        "macs": macs,
        "macs_per_instruction": macs / run.instructions[0],
    }


def conv_table() -> list[dict[str, Any]]:
    rows = []
    for name, spec in CONV_LAYERS.items():
        graph = conv_graph(*spec)
        r = {p: count(compile_graph(graph, CONV_TARGET, precision=p)) for p in ("fp16", "fp32")}
        h16, h32 = r["fp16"]["layer_instructions"][0], r["fp32"]["layer_instructions"][0]
        rows.append(
            {
                "layer": name,
                "macs": r["fp16"]["macs"],
                "fp16": h16,
                "fp32": h32,
                "ratio": h32 / h16,
                "fp16_macs_per_instruction": r["fp16"]["macs"] / h16,
            }
        )
    return rows


def model_table(models: Path, targets: list[str]) -> list[dict[str, Any]]:
    rows = []
    for key, fname in MODELS.items():
        path = models / fname
        if not path.is_file():
            print(f"skipping {key}: {path} not found", file=sys.stderr)
            continue
        for target in targets:
            r = {p: count(compile_file(path, target, precision=p)) for p in ("fp16", "fp32")}
            rows.append(
                {
                    "model": key,
                    "target": target,
                    "macs": r["fp16"]["macs"],
                    "fp16": r["fp16"]["instructions"],
                    "fp16_macs_per_instruction": r["fp16"]["macs_per_instruction"],
                    "fp32": r["fp32"]["instructions"],
                    "ratio": r["fp32"]["instructions"] / r["fp16"]["instructions"],
                }
            )
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    repo = Path(__file__).resolve().parents[1]
    ap.add_argument("--models", type=Path, default=repo.parent / "shared/models/mlperf-tiny")
    ap.add_argument("--targets", default=",".join(TARGETS))
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    convs = conv_table()
    models = model_table(args.models, args.targets.split(","))
    if args.json:
        print(json.dumps({"conv2d": convs, "models": models}, indent=2))
        return 0
    print(f"conv2d on {CONV_TARGET} (RVV + Zvfh, VLEN 128), one layer, relu, exact instructions:\n")
    print("| layer | MACs | FP16 instr | FP32 instr | FP32 / FP16 | FP16 MAC/instr |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in convs:
        print(
            f"| {r['layer']} | {r['macs']:,} | {r['fp16']:,} | {r['fp32']:,} "
            f"| {r['ratio']:.2f}x | {r['fp16_macs_per_instruction']:.2f} |"
        )
    print(
        "\nfloat models, one inference, exact instructions (FP16 and FP32 builds of the same "
        "model on the same target):\n"
    )
    print("| model | target | MACs | FP16 instr | FP16 MAC/instr | FP32 instr | FP32 / FP16 |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in models:
        print(
            f"| {r['model']} | {r['target']} | {r['macs']:,} | {r['fp16']:,} "
            f"| {r['fp16_macs_per_instruction']:.2f} | {r['fp32']:,} | {r['ratio']:.2f}x |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
