"""Executed instructions of DSP vs portable pooling layers on the emulated Cortex-M4.

    python bench/dsp_pool.py [--json out.json]

The MLPerf Tiny models only have global average pools (measure those with
`edgekit bench <model> --target cortex-m4 --per-layer`); this adds single-op max and average
pools of the shapes CNNs use (2 x 2 and 3 x 3 windows, stride 2, SAME padding, odd channels).
Each model is built twice with bench/dsp_m4.py's measure (target kernels, then portable only),
run once under QEMU with exact instruction counting, and both outputs must agree.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dsp_m4 import TARGET, measure  # noqa: E402

from edgekit.frontends.tflite_writer import TFLiteBuilder  # noqa: E402
from edgekit.targets import load_target  # noqa: E402

# (op, input NHWC, filter, stride, padding)
CASES = [
    ("MAX_POOL_2D", [1, 32, 32, 16], (2, 2), (2, 2), "VALID"),
    ("MAX_POOL_2D", [1, 15, 15, 13], (3, 3), (2, 2), "SAME"),
    ("AVERAGE_POOL_2D", [1, 32, 32, 16], (2, 2), (2, 2), "VALID"),
    ("AVERAGE_POOL_2D", [1, 15, 15, 13], (3, 3), (2, 2), "SAME"),
    ("AVERAGE_POOL_2D", [1, 25, 5, 64], (25, 5), (25, 5), "VALID"),
]


def _out(size: int, k: int, s: int, padding: str) -> int:
    return (size + s - 1) // s if padding == "SAME" else (size - k + s) // s


def pool_model(
    op: str, shape: list[int], k: tuple[int, int], s: tuple[int, int], pad: str
) -> bytes:
    n, h, w, c = shape
    b = TFLiteBuilder()
    x = b.tensor("x", shape, np.int8, 0.02, -3)
    y = b.tensor("y", [n, _out(h, k[0], s[0], pad), _out(w, k[1], s[1], pad), c], np.int8, 0.02, -3)
    b.op(op, [x], [y], filter=k, stride=s, padding=pad, activation="NONE")
    b.inputs([x])
    b.outputs([y])
    return b.finish()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, help="write all figures here")
    args = ap.parse_args(argv)
    report: list[dict[str, Any]] = []
    for op, shape, k, s, pad in CASES:
        name = f"{op.lower()} {shape} {k[0]}x{k[1]} s{s[0]} {pad}"
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "pool.tflite"
            path.write_bytes(pool_model(op, shape, k, s, pad))
            dsp = measure(path, list(load_target(TARGET).kernels), Path(tmp) / "dsp")
            portable = measure(path, ["portable"], Path(tmp) / "portable")
        if dsp["output"] != portable["output"]:
            print(f"{name}: DSP and portable outputs differ", file=sys.stderr)
            return 1
        (ld,), (lp,) = dsp["layers"], portable["layers"]
        p, d = lp["instructions"], ld["instructions"]
        print(f"{name:45s} portable {p:>9,} -> {ld['family']} {d:>8,} insns  x{p / d:5.1f}")
        report.append({"case": name, "portable": p, "dsp": d, "family": ld["family"]})
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
