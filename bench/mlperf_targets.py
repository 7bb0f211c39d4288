"""The four MLPerf Tiny int8 models on every emulated target: the BENCHMARKS.md table.

    python bench/mlperf_targets.py [--models DIR] [--targets cortex-m4,cortex-m55,...] [--json]

Each cell is `edgekit bench MODEL --target T --json`: exact executed instructions of one inference
under QEMU (-icount), MACs per instruction, the planned arena and the firmware's flash bytes
(constants read from the ELF symbol table, the rest is code, harness and C library). Targets whose
toolchain or emulator is missing here are skipped with a note, not guessed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

# bench/ is on sys.path when this script runs: the same four models as the spine table
from spine import MODELS

from edgekit.bench import bench_emulated
from edgekit.errors import EdgekitError

TARGETS = [
    "cortex-m0plus",
    "cortex-m3",
    "cortex-m4",
    "cortex-m7",
    "cortex-m33",
    "cortex-m55",
    "cortex-m85",
    "rv32imc",
    "rv32imc-zve32x",
    "rv32-zfh-v",
]
DEFAULT_MODELS = Path(__file__).resolve().parents[2] / "shared" / "models" / "mlperf-tiny"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=Path, default=DEFAULT_MODELS)
    ap.add_argument("--targets", default=",".join(TARGETS))
    ap.add_argument("--only", help="comma-separated model keys (KWS,VWW,IC,AD)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    keys = args.only.split(",") if args.only else list(MODELS)
    rows, skipped = [], []
    for target in args.targets.split(","):
        for key in keys:
            try:
                r = bench_emulated(args.models / MODELS[key], target, None)
            except EdgekitError as exc:
                skipped.append(f"{target} {key}: {exc.render().splitlines()[0]}")
                break
            rows.append({**r, "target": target, "model": key})
            print(f"{target:15s} {key:4s} {r['instructions']:>12,}", file=sys.stderr, flush=True)
    if args.json:
        print(json.dumps({"rows": rows, "skipped": skipped}, indent=2))
        return 0
    print(
        "| target | model | instructions | MACs/instr | arena B | flash B | constants B "
        "| code+harness B |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['target']} | {r['model']} | {r['instructions']:,} | "
            f"{r['macs_per_instruction']:.3f} | {r['arena_bytes']:,} | {r['flash_bytes']:,} | "
            f"{r['const_bytes']:,} | {r['code_bytes']:,} |"
        )
    for s in skipped:
        print(f"\nskipped: {s}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
