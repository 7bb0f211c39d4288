"""Post-training quantization of the MLPerf Tiny float models: time, and SQNR next to the official
int8 files.

    python bench/quantize_sqnr.py                       # all four models, every method
    python bench/quantize_sqnr.py --models vww --methods minmax --json

"data-free" rows use no calibration data, only the input range (`--data-free --input-range`),
without, with, and (the default) with cross-layer equalisation where a probe on synthetic
inputs says it helps. "search" is `quantize --search` without a budget:
it scores candidates on calibration samples while choosing; here, like every other row, it is
measured on the separate evaluation inputs.

Calibration and evaluation inputs are drawn uniformly from each official int8 model's input range
(different seeds). SQNR is that of the dequantized int8 output against edgekit's float reference
of the float model, on the same evaluation inputs: ours runs as generated C on the host, the
official int8 file in TFLite Micro. "bit-exact" says TFLM running our exported .tflite gives the
same bytes as our C. The quantize time is float reference + statistics + int8 graph, without
compiling C; the goal for VWW with 200 samples is under 20 s on a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edgekit.export.tflite import export_tflite  # noqa: E402
from edgekit.frontends.tflite import load_tflite  # noqa: E402
from edgekit.pipeline import compile_graph  # noqa: E402
from edgekit.quantize import (  # noqa: E402
    QuantConfig,
    dequantize_array,
    quantize,
    quantize_array,
    sqnr_db,
)
from edgekit.quantize.search import search  # noqa: E402
from edgekit.reference.float_ref import FloatModel  # noqa: E402
from edgekit.reference.tflm import run_tflm  # noqa: E402
from edgekit.runners.host import HostModel  # noqa: E402

MODELS_DIR = Path(__file__).resolve().parents[2] / "shared" / "models" / "mlperf-tiny"
MODELS = {
    "ad": ("ad01_fp32.tflite", "ad01_int8.tflite"),
    "kws": ("kws_ref_model_float32.tflite", "kws_ref_model.tflite"),
    "vww": ("vww_96_float.tflite", "vww_96_int8.tflite"),
    "ic": ("pretrainedResnet.tflite", "pretrainedResnet_quant.tflite"),
}
VARIANTS = {
    "minmax": QuantConfig(method="minmax"),
    "minmax+bc": QuantConfig(method="minmax", bias_correction=True),
    "percentile": QuantConfig(method="percentile"),
    "mse": QuantConfig(method="mse"),
    "mse+bc": QuantConfig(method="mse", bias_correction=True),
    # --search: per-layer estimator and dense granularity, scored in TFLM (no budget)
    "search": QuantConfig(method="minmax"),
    # --data-free (no calibration data; the input range is given), without and with
    # cross-layer equalisation
    "data-free": QuantConfig(equalize="off"),
    "data-free+eq": QuantConfig(equalize="on"),
    "data-free auto": QuantConfig(equalize="auto"),  # the default: eq kept if its probe says so
    # --act int16: TFLite 16x8 on every layer with a 16x8 kernel (int8 weights, int64 biases)
    "int16": QuantConfig(method="minmax", act="int16"),
    # --weights int4: packed int4 conv/depthwise/dense weights, per-channel symmetric
    "int4": QuantConfig(method="minmax", weights="int4"),
}
GOAL_SECONDS = 20.0


def _dequantized_outputs(q: Any, outs: list[np.ndarray]) -> np.ndarray:
    quant = q.tensor(q.outputs[0]).quant
    return np.stack([dequantize_array(np.asarray(o), quant) for o in outs])


def _instructions(q: Any, target: str) -> dict[str, int]:
    """Executed instructions of one inference on an emulated target (QEMU -icount), and the
    image's flash: what a precision costs in speed once int8-only SIMD kernels fall back."""
    from edgekit.bench import bench_emulated
    from edgekit.ir import serialize

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.ekir"
        path.write_bytes(serialize.dumps(q))
        r = bench_emulated(path, target, "model")
    return {"instructions": int(r["instructions"]), "flash": int(r["flash_bytes"])}


def bench_model(key: str, variants: list[str], calib_n: int, eval_n: int,
                emulate: list[str] | None = None) -> list[dict[str, Any]]:
    fname, oname = MODELS[key]
    fg = load_tflite(MODELS_DIR / fname)
    official_bytes = (MODELS_DIR / oname).read_bytes()
    official = load_tflite(MODELS_DIR / oname)
    oq_in = official.tensor(official.inputs[0]).quant
    oq_out = official.tensor(official.outputs[0]).quant
    s, z = oq_in.scalar_scale(), oq_in.scalar_zero_point()
    lo, hi = s * (-128 - z), s * (127 - z)
    shape = fg.tensor(fg.inputs[0]).shape
    cal = np.random.default_rng(0).uniform(lo, hi, (calib_n, *shape)).astype(np.float32)
    test = np.random.default_rng(1).uniform(lo, hi, (eval_n, *shape)).astype(np.float32)
    ref = FloatModel(fg).run([test])[0].reshape(eval_n, -1)
    off = run_tflm(official_bytes, [[quantize_array(x, oq_in)] for x in test])
    off_y = np.stack([dequantize_array(np.asarray(o[0]), oq_out) for o in off])
    official_db = sqnr_db(ref, off_y.reshape(eval_n, -1))
    rows = []
    for name in variants:
        t0 = time.perf_counter()
        if name == "search":
            q = search(fg, [cal], VARIANTS[name], progress=False)
        elif name.startswith("data-free"):
            cfg = replace(VARIANTS[name], input_range=(lo, hi))
            q = quantize(fg, None, cfg, data_free=True, progress=False)
        else:
            q = quantize(fg, [cal], VARIANTS[name], progress=False)
        seconds = time.perf_counter() - t0
        ti = q.tensor(q.inputs[0])
        feeds = [[quantize_array(x, ti.quant, ti.dtype)] for x in test]
        compiled = compile_graph(q)
        host = HostModel(compiled)
        ours = [host.run(f)[0] for f in feeds]
        theirs = run_tflm(export_tflite(q), feeds)
        exact = all(a.tobytes() == np.asarray(b[0], a.dtype).tobytes()
                    for a, b in zip(ours, theirs, strict=True))
        rows.append({
            "model": key,
            "variant": name,
            "calibration_samples": calib_n,
            "quantize_seconds": round(seconds, 2),
            "sqnr_ours_db": round(sqnr_db(ref, _dequantized_outputs(q, ours).reshape(eval_n, -1)),
                                  2),
            "sqnr_official_db": round(official_db, 2),
            "bit_exact_with_tflm": exact,
            "arena_bytes": int(compiled.plan.arena_bytes),
            "flash_bytes": int(sum(t.nbytes for t in compiled.graph.tensors.values()
                                   if t.is_const)),
        })
        for target in emulate or []:
            rows[-1][f"emulated_{target}"] = _instructions(q, target)
    return rows


def time_cli(calib_n: int) -> float:
    """Wall time of the whole command a user runs: load, calibrate, int8 graph, the per-layer
    SQNR check in TFLM (16 samples, the default) and writing the .ekir."""
    fname, oname = MODELS["vww"]
    official = load_tflite(MODELS_DIR / oname)
    q = official.tensor(official.inputs[0]).quant
    s, z = q.scalar_scale(), q.scalar_zero_point()
    shape = official.tensor(official.inputs[0]).shape
    cal = np.random.default_rng(0).uniform(s * (-128 - z), s * (127 - z), (calib_n, *shape))
    with tempfile.TemporaryDirectory() as tmp:
        np.savez(Path(tmp) / "calib.npz", cal.astype(np.float32))
        argv = [sys.executable, "-m", "edgekit.cli", "quantize", str(MODELS_DIR / fname),
                "--calib", str(Path(tmp) / "calib.npz"), "-o", str(Path(tmp) / "vww.ekir")]
        t0 = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True)
        return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--methods", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--calib", type=int, default=200, help="calibration samples (default 200)")
    ap.add_argument("--eval", type=int, default=50, help="evaluation samples (default 50)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--emulate", nargs="+", metavar="TARGET", default=[],
                    help="also count one inference's instructions on these emulated targets")
    ap.add_argument("--no-cli", action="store_true",
                    help="skip timing the edgekit quantize command")
    args = ap.parse_args()
    if not MODELS_DIR.is_dir():
        print(f"MLPerf Tiny models not found in {MODELS_DIR}", file=sys.stderr)
        return 2
    rows = []
    for key in args.models:
        rows += bench_model(key, args.methods, args.calib, args.eval, args.emulate)
    cli = None if args.no_cli or "vww" not in args.models else round(time_cli(args.calib), 2)
    if args.json:
        print(json.dumps({"rows": rows, "cli_vww_seconds": cli}, indent=2))
    else:
        emu = "".join(f" {t} instructions | {t} flash (B) |" for t in args.emulate)
        print("| model | variant | quantize (s) | SQNR ours (dB) | SQNR official int8 (dB) | "
              "ours - official | export bit-exact in TFLM | arena (B) | constants (B) |" + emu)
        print("|---|---|---:|---:|---:|---:|---|---:|---:|" + "---:|---:|" * len(args.emulate))
        for r in rows:
            diff = r["sqnr_ours_db"] - r["sqnr_official_db"]
            print(f"| {r['model']} | {r['variant']} | {r['quantize_seconds']:.2f} | "
                  f"{r['sqnr_ours_db']:.2f} | {r['sqnr_official_db']:.2f} | {diff:+.2f} | "
                  f"{'yes' if r['bit_exact_with_tflm'] else 'NO'} | {r['arena_bytes']} | "
                  f"{r['flash_bytes']} |" + "".join(
                      f" {r[f'emulated_{t}']['instructions']} | {r[f'emulated_{t}']['flash']} |"
                      for t in args.emulate))
        vww = [r for r in rows if r["model"] == "vww" and r["variant"] == "minmax"]
        if vww:
            t = vww[0]["quantize_seconds"]
            verdict = "meets" if t < GOAL_SECONDS else "misses"
            print(f"\nVWW, {args.calib} samples, minmax: {t:.2f} s ({verdict} the "
                  f"{GOAL_SECONDS:.0f} s goal)")
        if cli is not None:
            verdict = "meets" if cli < GOAL_SECONDS else "misses"
            print(f"`edgekit quantize vww_96_float.tflite --calib <{args.calib} samples>.npz`, "
                  f"whole command incl. the per-layer check: {cli:.2f} s ({verdict} the goal)")
    ok = all(r["bit_exact_with_tflm"] for r in rows)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
