"""Executed instructions of the MLPerf Tiny models on the emulated Cortex-M4: DSP vs portable.

    python bench/dsp_m4.py [ad kws ic vww] [--layers] [--json out.json]

Builds each model twice for target cortex-m4, once with the target's kernel families (dsp,
then portable) and once with the portable kernels only, runs one random input under QEMU with
exact instruction counting, checks both give the same output, and prints total and per-layer
instructions and MACs per instruction. The numbers in docs/kernels-dsp.md come from here.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from codegen.kernels import assign_kernels
from codegen.render import render_model
from edgekit.passes.fuse import fuse_activations
from edgekit.passes.lower import lower
from edgekit.passes.memory import plan_memory
from edgekit.pipeline import load_model
from edgekit.runners.emulated import build_firmware, elf_sizes, run_firmware
from edgekit.targets import load_target
from edgekit.verify import random_inputs

MODELS = {
    "ad": "ad01_int8.tflite",
    "kws": "kws_ref_model.tflite",
    "ic": "pretrainedResnet_quant.tflite",
    "vww": "vww_96_int8.tflite",
}
MODEL_DIR = Path(__file__).resolve().parents[2] / "shared" / "models" / "mlperf-tiny"
TARGET = "cortex-m4"


def measure(path: Path, families: list[str], work: Path) -> dict[str, Any]:
    graph, _ = load_model(path)
    g = copy.deepcopy(graph)
    lower(g, str(path))
    fuse_activations(g)
    caps = set(load_target(TARGET).capabilities)
    assign_kernels(g, families, caps)
    plan = plan_memory(g)
    gen = render_model(g, plan, families, caps)
    src = work / "src"
    src.mkdir(parents=True)
    for fname, text in gen.files.items():
        (src / fname).write_text(text)
    elf = build_firmware(TARGET, [src / f"{gen.name}.c"], [src], work / "fw")
    inputs = random_inputs(g, 1, seed=0)
    specs = [(g.tensor(t).shape, np.dtype(g.tensor(t).dtype)) for t in g.outputs]
    result = run_firmware(TARGET, elf, inputs, specs, timeout_s=600, count_instructions=True)
    active = [layer for layer in gen.layers if not layer.noop]
    assert result.layer_instructions is not None and result.instructions is not None
    layers = [
        {
            "index": layer.index,
            "kind": layer.op.kind,
            "family": layer.variant.family,
            "shape": list(g.tensor(layer.op.outputs[0]).shape),
            "macs": layer.macs,
            "instructions": n,
        }
        for layer, n in zip(active, result.layer_instructions[0], strict=True)
    ]
    return {
        "instructions": result.instructions[0],
        "macs": sum(layer.macs for layer in active),
        "arena_bytes": plan.arena_bytes,
        "sizes": elf_sizes(elf),
        "layers": layers,
        "output": [o.tobytes().hex() for o in result.outputs[0]],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="*", help=f"any of {', '.join(MODELS)} (default: all)")
    ap.add_argument("--layers", action="store_true", help="print every layer")
    ap.add_argument("--json", type=Path, help="write all figures here")
    args = ap.parse_args(argv)
    unknown = set(args.models) - set(MODELS)
    if unknown:
        ap.error(f"unknown model(s) {sorted(unknown)}")
    report: dict[str, Any] = {}
    for key in args.models or list(MODELS):
        path = MODEL_DIR / MODELS[key]
        with tempfile.TemporaryDirectory() as tmp:
            dsp = measure(path, list(load_target(TARGET).kernels), Path(tmp) / "dsp")
            portable = measure(path, ["portable"], Path(tmp) / "portable")
        if dsp["output"] != portable["output"]:
            print(f"{key}: DSP and portable outputs differ", file=sys.stderr)
            return 1
        report[key] = {"dsp": dsp, "portable": portable}
        d, p = dsp["instructions"], portable["instructions"]
        print(
            f"{key:4s} portable {p:>12,} insns {dsp['macs'] / p:5.3f} MAC/insn | dsp {d:>11,} "
            f"insns {dsp['macs'] / d:5.3f} MAC/insn | x{p / d:4.1f} | text {dsp['sizes']['text']:,}"
            f" B, arena {portable['arena_bytes']:,} -> {dsp['arena_bytes']:,} B"
        )
        if args.layers:
            for ld, lp in zip(dsp["layers"], portable["layers"], strict=True):
                print(
                    f"   {ld['index']:3d} {ld['kind']:17s} {str(ld['shape']):18s} "
                    f"{ld['macs']:>10,} MACs {lp['instructions']:>11,} -> {ld['instructions']:>10,}"
                    f" ({ld['family']}, {ld['macs'] / ld['instructions']:.3f} MAC/insn)"
                )
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
