"""Host benchmark of the spine: arena and flash next to TFLite Micro, generate time, speed.

Host wall-clock rates are informative only (they vary with the machine); the figures that are
compared across versions are byte counts, and, on emulated targets, executed instructions.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from edgekit.pipeline import compile_file
from edgekit.reference.tflm import run_tflm, tflm_arena_bytes
from edgekit.runners.host import HostModel
from edgekit.verify import random_inputs


def arm_code_size(files: dict[str, str], name: str) -> dict[str, int] | None:
    """.text/.rodata of the generated model compiled for a Cortex-M4 with -Os, if gcc is here."""
    gcc = shutil.which("arm-none-eabi-gcc")
    size = shutil.which("arm-none-eabi-size")
    if not gcc or not size:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        for fname, text in files.items():
            (Path(tmp) / fname).write_text(text)
        obj = Path(tmp) / "model.o"
        done = subprocess.run(
            [
                gcc,
                # Debian's bare-metal gcc has no libc headers of its own: picolibc's specs add them
                "--specs=picolibc.specs",
                "-mcpu=cortex-m4",
                "-mthumb",
                "-Os",
                "-std=c99",
                "-ffunction-sections",
                "-c",
                str(Path(tmp) / f"{name}.c"),
                "-o",
                str(obj),
            ],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            # the size column is informative: report why it is missing instead of failing the bench
            first = (done.stderr.strip().splitlines() or ["no output"])[0]
            print(f"warning: no Cortex-M4 code size: {first}", file=sys.stderr)
            return None
        out = subprocess.run([size, "-A", str(obj)], check=True, capture_output=True, text=True)
    sections: dict[str, int] = {"text": 0, "rodata": 0}
    for line in out.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[1].isdigit():
            if parts[0].startswith(".text"):
                sections["text"] += int(parts[1])
            elif parts[0].startswith(".rodata"):
                sections["rodata"] += int(parts[1])
    return sections


def bench_host(model: Path, target: str, name: str | None, samples: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    compiled = compile_file(model, target, name)
    generate_s = time.perf_counter() - t0
    data = Path(model).read_bytes()
    host = HostModel(compiled)
    inputs = random_inputs(compiled.graph, samples, 0)
    t0 = time.perf_counter()
    for s in inputs:
        host.run(s)
    ours_s = (time.perf_counter() - t0) / samples
    # TFLite Micro runs .tflite files only; an .ekir or ONNX model is benchmarked without it
    tflite = data[4:8] == b"TFL3"
    tflm_s = None
    if tflite:
        t0 = time.perf_counter()
        run_tflm(data, inputs)
        tflm_s = (time.perf_counter() - t0) / samples
    consts = sum(compiled.graph.tensor(t).nbytes for t in compiled.generated.consts)
    return {
        "model": compiled.graph.name,
        "macs": sum(layer.macs for layer in compiled.generated.layers),
        "arena_bytes": compiled.plan.arena_bytes,
        "arena_lower_bound_bytes": compiled.plan.lower_bound_bytes,
        "tflm_arena_bytes": tflm_arena_bytes(data) if tflite else None,
        "const_bytes": consts,
        "cortex_m4_object": arm_code_size(compiled.generated.files, compiled.generated.name),
        "generate_seconds": round(generate_s, 3),
        "host_inference_us": round(ours_s * 1e6, 1),
        "tflm_host_inference_us": round(tflm_s * 1e6, 1) if tflm_s is not None else None,
    }


def format_bench(r: dict[str, Any]) -> str:
    m4 = r["cortex_m4_object"]
    tflm = r["tflm_arena_bytes"] is not None
    lines = [
        f"model                 {r['model']}  ({r['macs']:,} MACs)",
        f"arena                 {r['arena_bytes']:,} B  (liveness bound "
        f"{r['arena_lower_bound_bytes']:,} B"
        + (f"; TFLite Micro arena {r['tflm_arena_bytes']:,} B)" if tflm else ")"),
        f"constants             {r['const_bytes']:,} B",
    ]
    if m4:
        lines.append(f"Cortex-M4 object -Os  .text {m4['text']:,} B, .rodata {m4['rodata']:,} B")
    lines += [
        f"generate              {r['generate_seconds']:.3f} s",
        f"host inference        {r['host_inference_us']:,.1f} us  ("
        + (f"TFLite Micro interpreter {r['tflm_host_inference_us']:,.1f} us; " if tflm else "")
        + "wall clock, informative only)",
    ]
    if not tflm:
        lines.append("TFLite Micro          not run: it reads .tflite files only")
    return "\n".join(lines)


def bench_emulated(
    model: Path, target: str, name: str | None, per_layer: bool = False
) -> dict[str, Any]:
    """Exact executed instructions of one inference on an emulated target, and ELF sizes."""
    from edgekit.runners.emulated import elf_symbol_sizes
    from edgekit.runners.emulated_model import EmulatedModel

    compiled = compile_file(model, target, name)
    emu = EmulatedModel(compiled)
    inputs = random_inputs(compiled.graph, 1, 0)
    run = emu.run(inputs, count=True, per_layer=per_layer)
    layers = [layer for layer in compiled.generated.layers if not layer.noop]
    macs = sum(layer.macs for layer in layers)
    sizes = emu.sizes()
    # what the constants take in the linked image: arrays folded into code count as code
    symbols = elf_symbol_sizes(emu.elf)
    consts = sum(symbols.get(ident, 0) for ident in compiled.generated.consts.values())
    result: dict[str, Any] = {
        "model": compiled.graph.name,
        "target": target,
        "instructions": run.instructions[0],
        "macs": macs,
        "macs_per_instruction": round(macs / run.instructions[0], 4) if run.instructions else 0,
        "arena_bytes": compiled.plan.arena_bytes,
        "flash_bytes": sizes["flash"],
        "const_bytes": consts,
        "code_bytes": sizes["flash"] - consts,
        "elf": sizes,
    }
    if per_layer:
        counts = run.layer_instructions[0]
        result["layers"] = [
            {
                "index": layer.index,
                "kind": layer.op.kind,
                "kernel": layer.variant.family,
                "macs": layer.macs,
                "instructions": n,
                "macs_per_instruction": round(layer.macs / n, 4) if n else 0,
            }
            for layer, n in zip(layers, counts, strict=True)
        ]
    return result


def format_bench_emulated(r: dict[str, Any]) -> str:
    lines = []
    if "layers" in r:
        lines.append(
            f"{'#':>3}  {'layer':18s} {'kernel':9s} {'MACs':>11s} {'instructions':>13s} "
            f"{'MAC/instr':>9s}  share"
        )
        total = max(1, r["instructions"])
        for entry in r["layers"]:
            lines.append(
                f"{entry['index']:>3}  {entry['kind']:18s} {entry['kernel']:9s} "
                f"{entry['macs']:>11,} {entry['instructions']:>13,} "
                f"{entry['macs_per_instruction']:>9.3f}  "
                f"{100 * entry['instructions'] / total:4.1f}%"
            )
        lines.append("")
    lines += [
        f"model          {r['model']} on {r['target']} (QEMU -icount: exact instruction counts)",
        f"instructions   {r['instructions']:,} per inference",
        f"MACs           {r['macs']:,}  ->  {r['macs_per_instruction']:.3f} MACs per instruction",
        f"arena          {r['arena_bytes']:,} B",
        f"flash          {r['flash_bytes']:,} B (constants {r['const_bytes']:,} B, code and "
        f"harness {r['code_bytes']:,} B)",
    ]
    return "\n".join(lines)
