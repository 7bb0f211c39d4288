"""Spiking networks with delays on emulated Cortex-M4: instructions per time step and RAM.

    python bench/snn.py                  # SHD (140-256-256-20, D=25) and SSC (3x512, 35, D=31)
    python bench/snn.py --nets shd --rates 0.05 --json

Networks are random SNN-delays checkpoints whose BatchNorm statistics are measured on their own
activity at 5% input (edgekit.snn.synthetic), so hidden layers fire as a trained network's
would to the first order (the hidden rates are printed: cost follows them). Every measured run is
also checked bit for bit against the golden model. Counts are exact executed instructions under
QEMU -icount, per 10 ms step, after one delay length of warm-up. The step total comes from a
plain run; the per-layer figures from the harness's layer-by-layer replay, which first copies
the state into a snapshot (about 4 instructions a byte, once per 64-step sample) and so would
inflate the total by more for more state. RAM is the model's state
(membranes, delay lines) plus its per-step activations; weights and delays stay in flash.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edgekit.snn.importers import from_snn_delays  # noqa: E402
from edgekit.snn.quantize import quantize  # noqa: E402
from edgekit.snn.synthetic import SHD_CONFIG, SSC_CONFIG, random_state_dict  # noqa: E402
from edgekit.snn.verify import bench  # noqa: E402

NETS = {"shd": SHD_CONFIG, "ssc": SSC_CONFIG}
GOAL_INSTRUCTIONS = 100_000
GOAL_RAM = 16 * 1024


def run(
    nets: list[str], rates: list[float], kernels: list[str], target: str, steps: int,
    ram_budget: int | None = None,
) -> list:  # fmt: skip
    """`auto@budget` in `kernels` is auto limited to `ram_budget` bytes of state."""
    rows: list[dict[str, Any]] = []
    for net in nets:
        cfg = NETS[net]
        graph = quantize(from_snn_delays(random_state_dict(cfg, seed=0), cfg), net)
        for rate in rates:
            for kernel in kernels:
                budget = ram_budget if kernel == "auto@budget" else None
                r = bench(graph, target, kernel.split("@")[0], rate, steps, ram_budget=budget)
                r["net"] = net
                r["kernel"] = kernel
                rows.append(r)
                print(f"  {net} {rate:.2f} {kernel:8s} {r['instructions_per_step']:12,.0f}",
                      file=sys.stderr)  # fmt: skip
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    out = [
        "| net | input rate | hidden rates | kernel | instructions / step | per layer | "
        "synapse events / step | instr. / event | state + activations RAM | constants (flash) |",
        "|---|---|---|---|---:|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        kern = r["kernel"]
        if kern.startswith("auto"):
            kern = kern.replace("@budget", " (state budget)") + ": " + ",".join(r["kernels"])
        per_layer = " / ".join(f"{v / 1000:.1f}k" for v in r["layer_instructions_per_step"])
        rates = " / ".join(f"{100 * v:.1f}%" for v in r["layer_rates"])
        out.append(
            f"| {r['net']} | {100 * r['input_rate']:.0f}% | {rates} | {kern} | "
            f"{r['instructions_per_step']:,.0f} | {per_layer} | "
            f"{r['synapse_events_per_step']:,.0f} | "
            f"{r['instructions_per_step'] / max(r['synapse_events_per_step'], 1.0):.1f} | "
            f"{r['state_bytes']:,} + {r['arena_bytes']:,} B | {r['const_bytes']:,} B |"
        )
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--nets", default="shd,ssc")
    ap.add_argument("--rates", default="0.01,0.05,0.2")
    ap.add_argument("--kernels", default="dense,gather,scatter,auto,auto@budget")
    ap.add_argument("--target", default="cortex-m4")
    ap.add_argument("--steps", type=int, default=64)
    ap.add_argument(
        "--ram-budget", type=int, default=GOAL_RAM,
        help="state bytes for the auto@budget rows (default 16384, the SHD goal)",
    )  # fmt: skip
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rows = run(
        args.nets.split(","),
        [float(r) for r in args.rates.split(",")],
        args.kernels.split(","),
        args.target,
        args.steps,
        args.ram_budget,
    )
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(table(rows))
        best = [r for r in rows if r["net"] == "shd" and abs(r["input_rate"] - 0.05) < 1e-9]
        if best:
            b = min(best, key=lambda r: r["instructions_per_step"])
            ram = min(r["ram_bytes"] for r in best)
            print(
                f"\nSHD at 5%: best {b['kernel']} {b['instructions_per_step']:,.0f} instructions "
                f"per step (goal <= {GOAL_INSTRUCTIONS:,}); smallest state + activation RAM "
                f"{ram:,} B (goal < {GOAL_RAM:,})"
            )
            fits = [r for r in best if r["state_bytes"] < GOAL_RAM]
            if fits:
                f = min(fits, key=lambda r: r["instructions_per_step"])
                print(
                    f"SHD at 5%, state under {GOAL_RAM:,} B: best {f['kernel']} "
                    f"({','.join(f['kernels'])}) {f['instructions_per_step']:,.0f} instructions "
                    f"per step, {f['state_bytes']:,} + {f['arena_bytes']:,} B"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
