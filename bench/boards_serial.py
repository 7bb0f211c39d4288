"""MLPerf Tiny models through the whole board path on QEMU boards: edgekit build (fit check,
link map), then the serial benchmark over the emulated UART (bit-exact check, instructions).

    python3 bench/boards_serial.py [--boards qemu-mps2-an386,qemu-mps3-an547] [--json]

Prints a markdown table: per model and board the firmware's flash and RAM from the linker,
executed instructions per inference (QEMU -icount, deterministic), whether the outputs match
the host byte for byte, and the wall time of build and bench.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from edgekit.commands.boards import start_qemu  # noqa: E402
from edgekit.firmware import build_project  # noqa: E402
from edgekit.serial_bench import run_bench  # noqa: E402

MODELS = REPO.parent / "shared" / "models" / "mlperf-tiny"
NAMES = ["ad01_int8", "kws_ref_model", "vww_96_int8", "pretrainedResnet_quant"]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--boards", default="qemu-mps2-an386,qemu-mps3-an547")
    ap.add_argument("--samples", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for board in args.boards.split(","):
            for name in NAMES:
                model = MODELS / f"{name}.tflite"
                if not model.is_file():
                    continue
                out = Path(tmp) / f"{name}_{board}"
                t0 = time.monotonic()
                built = build_project(model, board, out)
                t1 = time.monotonic()
                proc, port = start_qemu(out)
                try:
                    r = run_bench(out, port, samples=args.samples, runs=2, timeout_s=600)
                finally:
                    proc.terminate()
                    proc.wait()
                t2 = time.monotonic()
                regions = {x["region"]: x["used"] for x in built.regions}
                rows.append({
                    "model": name, "board": board,
                    "regions": regions,
                    "instructions": r["median"]["instructions"],
                    "min": r["min"]["instructions"], "max": r["max"]["instructions"],
                    "bit_exact": r["bit_exact"], "reference": r["reference"],
                    "layers": len(r.get("layers", [])),
                    "build_s": round(t1 - t0, 1), "bench_s": round(t2 - t1, 1),
                })
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print("| model | board | firmware memory (linker) | instructions / inference (min-max) "
          "| outputs vs host | build s | bench s |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        mem = ", ".join(f"{k} {v / 1024:.0f} KiB" for k, v in r["regions"].items())
        print(f"| {r['model']} | {r['board']} | {mem} | {r['instructions']:,} "
              f"({r['min']:,}-{r['max']:,}) | {'bit-exact' if r['bit_exact'] else 'MISMATCH'} "
              f"| {r['build_s']} | {r['bench_s']} |")
    return 0 if all(r["bit_exact"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
