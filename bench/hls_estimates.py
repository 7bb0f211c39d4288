"""HLS (Vitis) estimates: latency, initiation interval and resources of generated designs.

    python bench/hls_estimates.py [--models DIR] [--json]

Rows: the 64-64-32-2 intrusion-detection MLP at reuse 1 (one II=1 pipeline), the MLPerf AD
autoencoder at full parallelism and with automatic reuse, the MLPerf KWS DS-CNN, and two
spiking networks with synaptic delays (a small one of the tests' size and one of the SHD size of
SNN-delays, with seeded random weights and delays); their latency and interval are per time
step. Figures come from edgekit's estimate model (edgekit/hls/estimate.py, edgekit/hls/snn.py,
docs/hls.md), not from synthesis.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from codegen.hls.design import assemble, build_design
from edgekit.hls.estimate import Estimate, estimate
from edgekit.hls.models import build_ids_mlp
from edgekit.hls.parts import get_part, parse_clock
from edgekit.hls.project import HlsOptions, hls_name, lowered, plan
from edgekit.hls.snn import plan_snn
from edgekit.pipeline import load_model
from edgekit.snn.importers import from_snn_delays
from edgekit.snn.quantize import quantize
from edgekit.snn.synthetic import SHD_CONFIG, random_state_dict

ZU7EV = "xczu7ev-ffvc1156-2-e"
SMALL_SNN = {**SHD_CONFIG, "n_inputs": 12, "n_hidden_layers": 1, "n_hidden_neurons": 16,
             "n_outputs": 4, "max_delay": 5}
VU9P = "xcvu9p-flga2104-2-e"
Z7020 = "xc7z020-clg400-1"


def _all_dsp(path: Path, part: str, clock: str) -> Estimate:
    """Reuse 1 with every product on a DSP slice (no move to LUTs), for the raw parallel size."""
    graph, _ = load_model(path)
    g = lowered(graph)
    design = build_design(g, hls_name(g), "parallel")
    p = get_part(part)
    return estimate(assemble(design), p, parse_clock(clock, p))


def _row(label: str, est: Estimate, reuse: str, note: str = "") -> dict[str, Any]:
    reuses = sorted({x.reuse for x in est.layers if x.kind not in ("fork", "repack")})
    return {
        "model": label,
        "part": est.part.name,
        "clock_mhz": est.clock_mhz,
        "io": est.io,
        "reuse": reuse if len(reuses) > 1 or reuse == "auto" else str(reuses[0]),
        "layer_reuse": f"{reuses[0]}-{reuses[-1]}" if len(reuses) > 1 else str(reuses[0]),
        "schedule": est.schedule,
        "latency_cycles": est.latency,
        "latency_ns": est.latency_ns,
        "interval_cycles": est.interval,
        "inferences_per_s": est.inferences_per_second,
        "dsp": est.dsp,
        "bram18": est.bram18,
        "lut": est.lut,
        "capacity": (est.part.dsp, est.part.bram18, est.part.lut),
        "fits": est.fits,
        "note": note,
    }


def _time(ns: float) -> str:
    return f"{ns:,.0f} ns" if ns < 1e4 else f"{ns / 1e3:,.1f} us"


def _pct(need: int, cap: int) -> str:
    return f"{need:,} ({100 * need / cap:.0f}%)"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    repo = Path(__file__).resolve().parents[1]
    ap.add_argument("--models", type=Path, default=repo.parent / "shared/models/mlperf-tiny")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        ids = Path(tmp) / "ids_mlp.tflite"
        ids.write_bytes(build_ids_mlp(seed=0))
        graph, _ = load_model(ids)
        for part, clock, reuse in ((ZU7EV, "200MHz", 1), (Z7020, "100MHz", "auto")):
            est = plan(graph, HlsOptions(part=part, clock=clock, reuse=reuse))[2]
            rows.append(_row("IDS MLP 64-64-32-2", est, str(reuse)))
    ad = args.models / "ad01_int8.tflite"
    kws = args.models / "kws_ref_model.tflite"
    if ad.is_file():
        rows.append(_row("AD (MLPerf)", _all_dsp(ad, ZU7EV, "200MHz"), "1",
                         "every product on a DSP slice"))
        graph, _ = load_model(ad)
        for part, reuse, note in (
            (ZU7EV, 1, "constant products moved to LUTs"),
            (ZU7EV, "auto", ""),
            (VU9P, "auto", ""),
        ):
            est = plan(graph, HlsOptions(part=part, reuse=reuse))[2]
            rows.append(_row("AD (MLPerf)", est, str(reuse), note))
    if kws.is_file():
        graph, _ = load_model(kws)
        for io in ("parallel", "stream"):
            est = plan(graph, HlsOptions(part=ZU7EV, io=io))[2]
            rows.append(_row("KWS (MLPerf)", est, "auto"))
    for label, cfg, runs in (
        ("Delay SNN 12-16-4, D 5", SMALL_SNN, ((ZU7EV, 1), (ZU7EV, "auto"))),
        ("SHD SNN 140-256-256-20, D 25", SHD_CONFIG,
         ((ZU7EV, 1), (ZU7EV, "auto"), (VU9P, 1), (VU9P, "auto"))),
    ):
        graph = quantize(from_snn_delays(random_state_dict(cfg, seed=0), cfg), "snn")
        for part, reuse in runs:
            est = plan_snn(graph, HlsOptions(part=part, reuse=reuse))[1]
            rows.append(_row(label, est, str(reuse), "per time step"))
    if not ad.is_file():
        print(f"MLPerf models not found in {args.models}; AD and KWS rows skipped",
              file=sys.stderr)

    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print("| model | part @ clock | I/O | reuse | schedule | latency | II (cycles) "
          "| inferences (steps)/s | DSP | BRAM18 | LUT | fits |")
    print("|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        dsp, bram, lut = r["capacity"]
        reuse = r["reuse"] if r["reuse"] != "auto" else f"auto ({r['layer_reuse']})"
        fits = "yes" if r["fits"] else "no"
        note = f" ({r['note']})" if r["note"] else ""
        print(
            f"| {r['model']}{note} | {r['part']} @ {r['clock_mhz']:g} MHz | {r['io']} "
            f"| {reuse} | {r['schedule']} | {r['latency_cycles']:,} cyc = "
            f"{_time(r['latency_ns'])} | {r['interval_cycles']:,} "
            f"| {r['inferences_per_s']:,.0f} | {_pct(r['dsp'], dsp)} | {_pct(r['bram18'], bram)} "
            f"| {_pct(r['lut'], lut)} | {fits} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
