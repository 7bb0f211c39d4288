"""`edgekit quantize`: a float ONNX or TFLite model -> an int8 .ekir, ready for generate/verify."""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from edgekit.errors import EdgekitError
from edgekit.progress import status

EPILOG = """\
examples:
  edgekit quantize model.onnx --calib calib.npz -o model.ekir
  edgekit quantize model.onnx --calib calib/ --method mse --bias-correction -o model.ekir
  edgekit quantize model.onnx --data-free --input-range -1 1 -o model.ekir
  edgekit quantize float_model.tflite --calib calib.npz -o model.ekir
  edgekit quantize model.onnx --precision fp16 -o model16.ekir
  edgekit quantize model.onnx --calib calib.npz --search --flash-budget 256k -o model.ekir
then:
  edgekit generate model.ekir -o build/model
  edgekit export model.ekir --format tflite -o model_int8.tflite
  edgekit verify model.ekir --reference model_int8.tflite

Calibration data: a .npz (arrays named like the model inputs, or in input order), a
folder of .npy/.npz files, each one sample or a batch [N, *input_shape]. Arrays are in
the source model's layout (NCHW for ONNX images); edgekit's int8 model takes NHWC.
Weights: per-channel convolutions and per-tensor dense layers by default (as the TFLite
converter does); --per-channel makes dense layers per channel too, --per-tensor makes
everything per tensor. See docs/quantize.md.
"""


def write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _check_sqnr(graph: Any, qgraph: Any, calib: Any, samples: int,
                synthetic: bool = False) -> dict[str, Any]:
    """SQNR of the int8 model (run by TFLM from its export) against the float model: at the
    outputs, and per layer (edgekit/quantize/layers.py)."""
    from edgekit.quantize import Calibration
    from edgekit.quantize.layers import layer_stats

    cal = Calibration(graph, calib, chunk=samples, limit=samples)
    batch = next(iter(cal))
    layers = layer_stats(graph, qgraph, batch)
    by_name = {r["tensor"]: r for r in layers}
    result = {}
    for name in qgraph.outputs:
        db = by_name[name]["sqnr_db"] if name in by_name else None
        result[name] = math.inf if db is None else db
    return {"samples": int(batch[0].shape[0]), "sqnr_db": result, "layers": layers,
            "inputs": "synthetic" if synthetic else "calibration"}


def cmd_quantize(args: argparse.Namespace) -> int:
    from edgekit.ir import serialize
    from edgekit.pipeline import load_model
    from edgekit.quantize import QuantConfig, quantize

    if _spiking(args.model):
        return _pass_spiking_through(args)
    if args.precision != "int8":
        return _to_float_precision(args)
    if (args.calib is None) == (not args.data_free):
        raise EdgekitError("give either --calib DATA or --data-free")
    per_channel = "all" if args.per_channel else "none" if args.per_tensor else "conv"
    cfg = QuantConfig(
        method=args.method,
        percentile=args.percentile,
        per_channel=per_channel,
        bias_correction=args.bias_correction,
        sigmas=args.sigmas,
        input_range=tuple(args.input_range) if args.input_range else None,
        limit=args.limit,
        equalize=args.equalize,
        act=args.act,
        int16_layers=tuple(n for n in (args.int16_layers or "").split(",") if n),
        weights=args.weights,
        int4_layers=tuple(n for n in (args.int4_layers or "").split(",") if n),
    )
    t0 = time.monotonic()
    graph, _ = load_model(args.model, args.name)
    if args.search:
        from edgekit.quantize.search import Budget, search

        if args.calib is None:
            raise EdgekitError("--search scores candidates on calibration data",
                               str(args.model), "give --calib DATA")
        budget = Budget(_bytes(args.flash_budget), _bytes(args.ram_budget))
        with status("searching per-layer estimators and granularities"):
            qgraph = search(graph, args.calib, cfg, budget, where=str(args.model))
    else:
        qgraph = quantize(graph, args.calib, cfg, data_free=args.data_free,
                          where=str(args.model))
    elapsed = time.monotonic() - t0
    out = Path(args.output)
    check = None
    if args.check > 0:
        from edgekit.quantize import prepare
        from edgekit.quantize.quantizer import synthetic_inputs

        fg = prepare(graph)
        if qgraph.meta["quantization"].get("equalization", {}).get("applied"):
            from edgekit.quantize.equalize import equalize

            # the int8 graph was built from the equalised float graph: between equalised
            # layers its tensors are scaled per channel, so compare with that graph's
            equalize(fg)
        source = args.calib if args.calib is not None else [synthetic_inputs(fg, cfg)]
        with status(f"checking SQNR against the float model on {args.check} samples (TFLM)"):
            check = _check_sqnr(fg, qgraph, source, args.check, synthetic=args.calib is None)
        q = qgraph.meta["quantization"]
        q["layers"] = check.pop("layers")
        q["layer_samples"] = check["samples"]
        q["layer_inputs"] = check["inputs"]
    write_atomic(out, serialize.dumps(qgraph))
    info = {
        "output": str(out),
        "ops": len(qgraph.ops),
        "seconds": round(elapsed, 2),
        "quantization": qgraph.meta["quantization"],
        "check": check,
    }
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    q = qgraph.meta["quantization"]
    how = {
        "batchnorm": "no data: BatchNorm statistics",
        "synthetic": f"no data: {q['samples']} synthetic inputs over {q['input_range'] or [-1, 1]}",
    }.get(q["ranges_from"], f"{q['samples']} calibration samples, "
          + ("per-layer choices (--search)" if "search" in q else f"{q['method']} ranges"))
    print(f"quantized {len(qgraph.ops)} ops in {elapsed:.2f} s from {how}")
    eq = q.get("equalization")
    if eq and eq["pairs"]:
        verdict = "applied" if eq["applied"] else "not applied"
        why = (f" ({eq['sqnr_db_with']:.2f} dB with, {eq['sqnr_db_without']:.2f} dB without, on "
               f"{eq['scored_on']})" if "sqnr_db_with" in eq else "")
        print(f"cross-layer equalisation of {len(eq['pairs'])} layer pair(s): {verdict}{why}")
    if "search" in q:
        from edgekit.quantize.search import format_search

        print(format_search(q))
    else:
        print(f"weights: {per_channel_text(per_channel)}"
              + ("; bias correction on" if cfg.bias_correction else ""))
    for kind, what in (("int16_layers", "int16 activations (16x8)"),
                       ("int4_layers", "packed int4 weights")):
        if q.get(kind) or q.get("search", {}).get(kind):
            names = q.get(kind) or q["search"][kind]
            print(f"{what} in {len(names)} layer(s): {', '.join(names[:6])}"
                  + (", ..." if len(names) > 6 else ""))
    for name in qgraph.inputs + qgraph.outputs:
        t = qgraph.tensor(name)
        role = "input " if name in qgraph.inputs else "output"
        print(f"  {role} {name}: {t.dtype} {list(t.shape)} scale {t.quant.scalar_scale():.6g} "
              f"zero point {t.quant.scalar_zero_point()}")
    if check:
        for name, db in check["sqnr_db"].items():
            print(f"output SQNR vs float on {check['samples']} {check['inputs']} samples (TFLM): "
                  f"{name} {db:.2f} dB")
    print(f"wrote {out}" + ("; per-layer SQNR: edgekit report " + str(out) + " --quant"
                            if check else ""))
    return 0


def _to_float_precision(args: argparse.Namespace) -> int:
    """--precision fp16/fp32: no calibration; the float graph is converted under the float
    contract (docs/numerics-fp16.md) and written lowered, so generate takes it as it is."""
    from edgekit.ir import serialize
    from edgekit.passes.fp16 import to_float
    from edgekit.pipeline import load_model
    from edgekit.quantize import prepare

    ignored = [flag for flag, given in (("--calib", args.calib is not None),
                                        ("--data-free", args.data_free),
                                        ("--act int16", args.act != "int8"),
                                        ("--int16-layers", bool(args.int16_layers)),
                                        ("--weights int4", args.weights != "int8"),
                                        ("--int4-layers", bool(args.int4_layers))) if given]
    if ignored:
        raise EdgekitError(
            f"{' and '.join(ignored)} cannot be combined with --precision {args.precision}",
            str(args.model),
            f"--precision {args.precision} needs no calibration: drop {' '.join(ignored)}",
        )
    t0 = time.monotonic()
    graph, _ = load_model(args.model, args.name)
    g = to_float(prepare(graph, str(args.model)), args.precision, str(args.model))
    out = Path(args.output)
    data = serialize.dumps(g)
    write_atomic(out, data)
    elapsed = time.monotonic() - t0
    weights = sum(t.nbytes for t in g.tensors.values() if t.is_const)
    if args.json:
        print(json.dumps({"output": str(out), "ops": len(g.ops), "precision": args.precision,
                          "seconds": round(elapsed, 2), "constant_bytes": weights}, indent=2))
        return 0
    print(f"converted {len(g.ops)} ops to {args.precision} in {elapsed:.2f} s "
          f"({weights} bytes of constants); no calibration needed")
    print(f"wrote {out}")
    return 0


def cmd_report_quant(args: argparse.Namespace) -> int:
    """`report MODEL --quant`: per-layer ranges and SQNR recorded by `edgekit quantize`."""
    from edgekit.pipeline import load_model
    from edgekit.quantize.layers import format_layers

    graph, _ = load_model(args.model, args.name)
    if not any(t.dtype in ("int8", "int16") for t in graph.activations()):
        raise EdgekitError("--quant reports on int8 models; this one is not quantized",
                           str(args.model), "run `edgekit quantize` first")
    info = graph.meta.get("quantization", {})
    if args.json:
        print(json.dumps({"model": str(args.model), "quantization": info}, indent=2))
    else:
        print(format_layers(info, graph))
    return 0


def _bytes(text: str | None) -> int | None:
    """'65536', '64k', '1.5M' -> bytes (k = 1024)."""
    if text is None:
        return None
    t = text.strip().lower().removesuffix("b")
    mult = {"k": 1024, "m": 1024 * 1024}.get(t[-1:], 1)
    try:
        return int(float(t[:-1] if mult > 1 else t) * mult)
    except ValueError:
        raise EdgekitError(f"budget '{text}' is not a size", hint="e.g. 256k, 1M or 65536") \
            from None


def _spiking(path: Path) -> bool:
    from edgekit.cli import _is_spiking_ekir

    return _is_spiking_ekir(str(path))


def _pass_spiking_through(args: argparse.Namespace) -> int:
    """A spiking .ekir was quantized when it was converted: its integer semantics are fixed by
    the weights and thresholds alone (docs/snn.md), so there is nothing to calibrate. The file is
    written unchanged so the documented convert -> quantize -> generate sequence holds."""
    from edgekit.ir import serialize
    from edgekit.snn.ops import is_snn

    data = Path(args.model).read_bytes()
    graph = serialize.loads(data, str(args.model))
    assert is_snn(graph)
    out = Path(args.output)
    write_atomic(out, data)
    note = ("a spiking network, quantized by `edgekit convert` (int8 weights per output neuron, "
            "fixed-point membranes and thresholds); no calibration is needed"
            + ("; --calib ignored" if args.calib is not None else ""))
    if args.json:
        print(json.dumps({"output": str(out), "ops": len(graph.ops), "spiking": True,
                          "note": note}, indent=2))
    else:
        print(f"{args.model}: {note}\nwrote {out} (unchanged)")
    return 0


def per_channel_text(mode: str) -> str:
    return {"conv": "per-channel convolutions, per-tensor dense layers",
            "all": "per channel everywhere", "none": "per tensor everywhere"}[mode]


def register(add: Any) -> None:
    p = add("quantize", "quantize a float ONNX or TFLite model to an int8 .ekir", EPILOG)
    p.add_argument("model", type=Path, help="a float .onnx or .tflite model")
    p.add_argument("-o", "--output", required=True, type=Path, help="the int8 .ekir to write")
    p.add_argument("--calib", type=Path, help=".npz file or folder of .npy/.npz samples")
    p.add_argument("--data-free", action="store_true",
                   help="no data: ranges from BatchNorm statistics, or synthetic inputs over "
                   "--input-range (see docs/quantize.md)")
    p.add_argument("--method", choices=["minmax", "percentile", "mse"], default="minmax",
                   help="activation range estimator (default minmax)")
    p.add_argument("--percentile", type=float, default=99.99,
                   help="for --method percentile (default 99.99)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--per-channel", action="store_true",
                   help="per-channel weights in dense layers too")
    g.add_argument("--per-tensor", action="store_true", help="per-tensor weights everywhere")
    p.add_argument("--bias-correction", action="store_true",
                   help="re-centre each output channel for its weight rounding error")
    p.add_argument("--input-range", type=float, nargs=2, metavar=("LO", "HI"),
                   help="data-free: the range of the model input (default -1 1)")
    p.add_argument("--equalize", choices=["auto", "on", "off"], default="auto",
                   help="cross-layer weight equalisation: auto (data-free only, kept when it "
                   "scores better on synthetic inputs), on, off")
    p.add_argument("--sigmas", type=float, default=6.0,
                   help="data-free: range = mean +- SIGMAS * std (default 6)")
    p.add_argument("--act", choices=["int8", "int16"], default="int8",
                   help="activation type: int8 (default) or int16 (TFLite 16x8: int16 "
                   "activations, int8 weights) on every layer that has a 16x8 kernel")
    p.add_argument("--int16-layers", metavar="NAME,...",
                   help="int16 activations (16x8) for these layers only, int8 elsewhere")
    p.add_argument("--weights", choices=["int8", "int4"], default="int8",
                   help="weight type of conv/depthwise/dense layers: int8 (default) or int4 "
                   "(packed two per byte, per-channel symmetric; half the weight flash)")
    p.add_argument("--int4-layers", metavar="NAME,...",
                   help="int4 weights for these conv/depthwise/dense layers only")
    p.add_argument("--precision", choices=["int8", "fp16", "fp32"], default="int8",
                   help="int8 (calibrated, default), or fp16/fp32: the float model converted "
                   "under the float contract, no data needed")
    p.add_argument("--search", action="store_true",
                   help="per layer, choose range estimator and dense-weight granularity for the "
                   "best output SQNR within --flash-budget/--ram-budget; prints what and why")
    p.add_argument("--flash-budget", metavar="BYTES", help="--search: constants' bytes (e.g. 256k)")
    p.add_argument("--ram-budget", metavar="BYTES", help="--search: arena bytes (e.g. 96k)")
    p.add_argument("--limit", type=int, help="use at most this many calibration samples")
    p.add_argument("--check", type=int, default=16, metavar="N",
                   help="report output SQNR on N calibration samples, via TFLM (0: skip)")
    p.add_argument("--name", help="C identifier prefix (default: file name)")
    p.add_argument("--json", action="store_true", help="machine-readable summary")
    p.set_defaults(fn=cmd_quantize)
