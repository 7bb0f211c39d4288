"""Spine benchmark over the four MLPerf Tiny int8 models: prints the BENCHMARKS.md table.

    python bench/spine.py [--models DIR] [--samples 50]

Arena and flash figures are exact byte counts; host times are wall clock and only informative.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from edgekit.bench import bench_host

MODELS = {
    "KWS": "kws_ref_model.tflite",
    "VWW": "vww_96_int8.tflite",
    "IC": "pretrainedResnet_quant.tflite",
    "AD": "ad01_int8.tflite",
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    repo = Path(__file__).resolve().parents[1]
    ap.add_argument("--models", type=Path, default=repo.parent / "shared/models/mlperf-tiny")
    ap.add_argument("--samples", type=int, default=50)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if not args.models.is_dir():
        print(f"models folder {args.models} not found", file=sys.stderr)
        return 2
    rows = {k: bench_host(args.models / f, "host", None, args.samples) for k, f in MODELS.items()}
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print("| model | MACs | arena B | liveness bound B | TFLM arena B (head+tail) | constants B "
          "| M4 .text B (-Os) | generate s | host us/inf | TFLM host us/inf |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for k, r in rows.items():
        m4 = r["cortex_m4_object"] or {"text": 0}
        print(f"| {k} | {r['macs']:,} | {r['arena_bytes']:,} | {r['arena_lower_bound_bytes']:,} "
              f"| {r['tflm_arena_bytes']:,} | {r['const_bytes']:,} | {m4['text']:,} "
              f"| {r['generate_seconds']:.2f} "
              f"| {r['host_inference_us']:,.0f} | {r['tflm_host_inference_us']:,.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
