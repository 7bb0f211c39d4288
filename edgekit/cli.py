"""The `edgekit` command line. Each subcommand is a thin layer over edgekit.pipeline.

Errors the user can act on are EdgekitError: printed as one message, exit code 2, no traceback.
Verification mismatches exit 1. Set EDGEKIT_DEBUG=1 to see tracebacks of internal errors.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgekit import __version__
from edgekit.errors import EdgekitError
from edgekit.progress import Progress, paint, status

EXAMPLES = """\
examples:
  edgekit demo                                             build, run and verify the built-in model
  edgekit generate kws_ref_model.tflite -o build/kws        C sources + header + report
  edgekit verify kws_ref_model.tflite --samples 200         compare with TFLite Micro, byte for byte
  edgekit run kws_ref_model.tflite --input x.npy -o y.npy   a batch through the generated code
  edgekit report kws_ref_model.tflite --json                per-layer MACs, weights, arena
  edgekit report kws_ref_model.tflite --plot kws.html       arena over the schedule, as a picture
  edgekit inspect build/kws/model.ekir                      the IR, readable
  edgekit bench kws_ref_model.tflite                        arena, flash, speed next to TFLite Micro
  edgekit verify vww_96_int8.tflite --target cortex-m4 --emulate   cross-compiled, run under QEMU
  edgekit quantize model.onnx --calib calib.npz -o model.ekir      float -> int8 IR
  edgekit generate ad01_int8.tflite --target hls-vitis -o build/ad_hls   (= edgekit hls generate)
  edgekit convert ckpt.pt --config model.json -o shd.ekir          spiking net to .ekir
  edgekit generate shd.ekir --target cortex-m4 -o build/shd        spiking C (= snn generate)
  edgekit export kws_ref_model.tflite --as cmake -o vendor/kws     a library for your firmware
  edgekit build kws_ref_model.tflite --board nucleo-l4r5zi -o build/kws_nucleo   firmware project
  edgekit flash build/kws_nucleo --dry-run                         the exact flash command
  edgekit bench build/kws_nucleo --port /dev/ttyACM0               cycles on the board
  edgekit doctor                                                   what is installed, what to add
  eval "$(edgekit completion bash)"                                TAB completion (or zsh, fish)

Every command takes a .tflite or .onnx model or an .ekir file written by edgekit.
`generate|verify|report --target hls-vitis` run the `hls` subcommands, `convert` is
`snn convert`, and generate/verify/bench of a spiking .ekir (or with --snn-kernel) run
the `snn` subcommands.
Results go to stdout (with --json: exactly one JSON document), errors and progress to
stderr; progress and colours only on a terminal, never with NO_COLOR set.
Exit codes: 0 success, 1 verification mismatch, 2 bad input or unsupported model.
Every command and option, and the JSON formats: docs/cli.md.
"""


def _add_model_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", type=Path, help="a .tflite model or an .ekir file")
    p.add_argument(
        "--target", default="host", help="target name (see `edgekit targets`); default host"
    )
    p.add_argument("--name", help="C identifier prefix for the generated API (default: file name)")
    p.add_argument(
        "--precision",
        choices=["int8", "fp16", "fp32"],
        default="int8",
        help="int8 (quantized model, default), or fp16 / fp32 from a float32 model under the "
        "float contract of docs/numerics-fp16.md",
    )


def _compile(args: argparse.Namespace) -> Any:
    return _compile_for(args, args.target)


def _compile_for(args: argparse.Namespace, target: str) -> Any:
    from edgekit.pipeline import compile_file

    with status(f"compiling {Path(args.model).name} for {target}"):
        return compile_file(args.model, target, args.name, args.precision)


def _options(args: argparse.Namespace) -> dict[str, Any]:
    return {"target": args.target, "name": args.name, "precision": args.precision}


def _add_train_args(p: argparse.ArgumentParser) -> None:
    from edgekit.train.cli import add_arguments  # --train-last, --loss, --optimizer

    add_arguments(p)


# --- commands ----------------------------------------------------------------------------------


def cmd_generate(args: argparse.Namespace) -> int:
    from edgekit.pipeline import write_output
    from edgekit.report import build_report, format_report
    from edgekit.train import cli as train_cli

    if train_cli.wants_training(args):
        return train_cli.cmd_generate(args)
    t0 = time.monotonic()
    compiled = _compile(args)
    report = build_report(compiled, _options(args))
    out = write_output(compiled, args.output, report, force=args.force)
    files = sorted(compiled.generated.files)
    if args.json:
        print(json.dumps({"output": str(out), "files": files, "report": report}, indent=2))
        return 0
    print(format_report(report))
    print(
        f"\nwrote {len(files)} C files, model.ekir and report.json to {out}/ "
        f"in {time.monotonic() - t0:.2f} s"
    )
    print(f"API: {compiled.generated.name}_run(input, output) in {out}/{compiled.generated.name}.h")
    return 0


def _painted_verdict(text: str, ok: bool) -> str:
    """`text` with its `bit-exact:` or `MISMATCH` verdict in colour (on a terminal only)."""
    verdict = "bit-exact:" if ok else "MISMATCH"
    return text.replace(verdict, paint(verdict, "ok" if ok else "bad"), 1)


def _reference_model(args: argparse.Namespace) -> bytes:
    ref = getattr(args, "reference", None)
    path = Path(ref) if ref else args.model
    if not path.is_file():
        raise EdgekitError("model file not found", str(path),
                           "check the path" + ("" if ref else "; verify takes a .tflite model"))
    data = path.read_bytes()
    if data[4:8] != b"TFL3":
        raise EdgekitError(
            "verification compares with TFLite Micro, which needs the .tflite model",
            str(path),
            "pass the .tflite file, or --reference model.tflite together with an .ekir file",
        )
    return data


def _lowered_precision(args: argparse.Namespace) -> str:
    """--precision, or the float precision a lowered .ekir already carries, so that verifying an
    fp16 .ekir needs no flag (its graph cannot be recompiled as int8 anyway)."""
    if args.precision != "int8" or Path(args.model).suffix != ".ekir":
        return str(args.precision)
    from edgekit.pipeline import load_model

    graph, _ = load_model(args.model)
    return str(graph.meta.get("precision", "int8")) if graph.meta.get("lowered") else "int8"


def cmd_verify(args: argparse.Namespace) -> int:
    from edgekit.reference.tflm import run_tflm, tflm_all_tensors
    from edgekit.runners.host import HostModel
    from edgekit.verify import compare, format_result, locate_first_bad_layer, random_inputs

    if args.samples < 1:
        raise EdgekitError("--samples must be at least 1")
    args.precision = _lowered_precision(args)
    if args.target != "host" and not args.emulate:
        raise EdgekitError(
            f"verifying target '{args.target}' needs --emulate (run under QEMU)",
            hint="or verify with --target host",
        )
    if args.precision != "int8":
        # float builds are checked against the contract's golden model, not TFLite Micro
        from edgekit.reference.fp16_golden import format_verify_float, verify_float

        compiled = _compile(args)
        host = _compile_for(args, "host") if args.target != "host" else None
        where = f"the {args.target} emulator" if args.emulate else "the host"
        with status(f"running {args.samples} samples on {where} and the golden model"):
            res = verify_float(compiled, args.samples, args.seed, args.emulate, host)
        if args.json:
            print(json.dumps(res, indent=2))
        else:
            print(_painted_verdict(format_verify_float(res, args.target), res["ok"]))
        return 0 if res["ok"] else 1
    ref_model = _reference_model(args)
    compiled = _compile(args)
    inputs = random_inputs(compiled.graph, args.samples, args.seed)
    model = HostModel(compiled) if args.target == "host" else None
    if args.emulate and args.target != "host":
        from edgekit.runners.emulated_model import EmulatedModel

        with status(f"cross-compiling the firmware for {args.target}"):
            emulated = EmulatedModel(compiled)
        with status(f"running {len(inputs)} samples under the {args.target} emulator"):
            ours = emulated.run(inputs).outputs
    else:
        assert model is not None
        progress = Progress("running the generated code", len(inputs))
        ours = []
        for k, sample in enumerate(inputs):
            ours.append(model.run(sample))
            progress.update(k + 1)
    with status(f"running {len(inputs)} samples through TFLite Micro"):
        reference = run_tflm(ref_model, inputs)
    result = compare(compiled, ours, reference)
    if not result.ok:
        first_bad = next(
            k
            for k, (g, r) in enumerate(zip(ours, reference, strict=True))
            if any(
                a.tobytes() != np.ascontiguousarray(b, dtype=a.dtype).tobytes()
                for a, b in zip(g, r, strict=True)
            )
        )
        # locate the layer on the host: the same C, so the first bad layer is the same
        host = model or HostModel(_compile_for(args, "host"))
        traced = host.run_traced(inputs[first_bad])
        result.first_bad_layer = locate_first_bad_layer(
            compiled, traced, tflm_all_tensors(ref_model, inputs[first_bad])
        )
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
    else:
        print(_painted_verdict(format_result(result, args.target), result.ok))
    return 0 if result.ok else 1


def _load_inputs(path: Path, compiled: Any) -> list[list[np.ndarray]]:
    """Samples from .npy (one input) or .npz (arrays named like the inputs, or in order)."""
    from edgekit.ir.graph import DTYPES

    graph = compiled.graph
    if not path.is_file():
        raise EdgekitError("input file not found", str(path))
    try:
        loaded = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise EdgekitError(
            f"cannot read inputs: {exc}", str(path), "use a .npy or .npz file"
        ) from None
    arrays = [loaded[k] for k in loaded.files] if hasattr(loaded, "files") else [loaded]
    if len(arrays) != len(graph.inputs):
        raise EdgekitError(
            f"model has {len(graph.inputs)} inputs, file holds {len(arrays)} arrays", str(path)
        )
    per_input = []
    for arr, tname in zip(arrays, graph.inputs, strict=True):
        t = graph.tensor(tname)
        if arr.size % t.size:
            raise EdgekitError(
                f"array of shape {list(arr.shape)} is not a whole number of inputs {list(t.shape)}",
                str(path),
            )
        batch = arr.reshape((-1, *t.shape))
        dt = DTYPES[t.dtype]
        if np.issubdtype(batch.dtype, np.floating) and np.issubdtype(dt, np.integer) and t.quant:
            # real-valued inputs are quantized with the model's input parameters
            q = np.round(batch / t.quant.scalar_scale()) + t.quant.scalar_zero_point()
            info = np.iinfo(dt)
            batch = np.clip(q, info.min, info.max)
        per_input.append(batch.astype(dt))
    n = per_input[0].shape[0]
    if any(b.shape[0] != n for b in per_input):
        raise EdgekitError("inputs hold different numbers of samples", str(path))
    return [[b[k] for b in per_input] for k in range(n)]


def cmd_run(args: argparse.Namespace) -> int:
    from edgekit.runners.host import HostModel

    if args.target != "host":
        raise EdgekitError(
            "`run` executes on the host only in this version", hint="use --target host"
        )
    compiled = _compile(args)
    samples = _load_inputs(args.input, compiled)
    model = HostModel(compiled)
    progress = Progress("running", len(samples))
    results: list[list[np.ndarray]] = []
    for k, s in enumerate(samples):
        results.append(model.run(s))
        progress.update(k + 1)
    graph = compiled.graph
    stacked = []
    for j, tname in enumerate(graph.outputs):
        arr = np.stack([r[j] for r in results])
        t = graph.tensor(tname)
        if args.dequantize and t.quant is not None:
            arr = (
                (arr.astype(np.float64) - t.quant.scalar_zero_point()) * t.quant.scalar_scale()
            ).astype(np.float32)
        stacked.append(arr)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    if len(stacked) == 1 and out.suffix != ".npz":
        np.save(out, stacked[0])
    else:
        np.savez(out, **{f"output_{j}": a for j, a in enumerate(stacked)})
    if args.json:
        outputs = [{"shape": list(a.shape), "dtype": str(a.dtype)} for a in stacked]
        print(json.dumps({"samples": len(samples), "output": str(out), "outputs": outputs,
                          "dequantized": bool(args.dequantize)}, indent=2))
        return 0
    print(
        f"ran {len(samples)} sample(s); wrote {', '.join(str(list(a.shape)) for a in stacked)} "
        f"{'float32 (dequantized)' if args.dequantize else 'raw'} to {out}"
    )
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from edgekit.report import build_report, format_report
    from edgekit.train import cli as train_cli

    if train_cli.wants_training(args):
        return train_cli.cmd_report(args)
    if args.quant:
        from edgekit.commands.quantize import cmd_report_quant

        return cmd_report_quant(args)
    compiled = _compile(args)
    report = build_report(compiled, _options(args))
    if args.plot:
        from edgekit.plot import plot_format, write_plot

        plot_format(args.plot)  # a bad suffix fails before anything is printed
        write_plot(compiled, report, args.plot)
        # stderr, so that `--json --plot` keeps stdout a single JSON document
        print(f"wrote the arena and cost plot to {args.plot}", file=sys.stderr)
    print(json.dumps(report, indent=2, sort_keys=True) if args.json else format_report(report))
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from edgekit.describe import describe_graph, describe_json
    from edgekit.pipeline import load_model

    graph, _ = load_model(args.model)
    if args.json:
        print(json.dumps(describe_json(graph, show_constants=args.constants), indent=2))
        return 0
    print(describe_graph(graph, show_constants=args.constants))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from edgekit.bench import bench_emulated, bench_host, format_bench, format_bench_emulated

    if args.precision != "int8" or args.compare:
        from edgekit.reference.fp16_golden import bench_float, format_bench_float

        if args.target == "host" or args.precision == "int8":
            raise EdgekitError(
                "float benchmarks count instructions on an emulated target",
                hint="e.g. --precision fp16 --target cortex-m55 --compare fp32",
            )
        precisions = [args.precision] + ([args.compare] if args.compare else [])
        with status(f"counting {' and '.join(precisions)} under the {args.target} emulator"):
            res = bench_float(args.model, args.target, args.name, precisions, args.per_layer)
        print(json.dumps(res, indent=2) if args.json else format_bench_float(res))
        return 0
    if args.target == "host":
        with status(f"compiling and timing {args.samples} inferences next to TFLite Micro"):
            result = bench_host(args.model, args.target, args.name, args.samples)
        print(json.dumps(result, indent=2) if args.json else format_bench(result))
        return 0
    with status(f"building and counting one inference under the {args.target} emulator"):
        result = bench_emulated(args.model, args.target, args.name, per_layer=args.per_layer)
    print(json.dumps(result, indent=2) if args.json else format_bench_emulated(result))
    return 0


def cmd_targets(args: argparse.Namespace) -> int:
    from edgekit.targets import list_targets, load_target

    rows = [{"name": name, "description": getattr(load_target(name), "description", "")}
            for name in list_targets()]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        print(f"{r['name']:16s} {r['description']}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from edgekit.demo import run_demo

    return run_demo(Path(args.output), samples=args.samples, seed=args.seed)


# --- parser ------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgekit",
        description="Compile trained neural networks to bit-exact, specialised C for MCUs.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"edgekit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add(name: str, help_: str, epilog: str) -> argparse.ArgumentParser:
        return sub.add_parser(
            name,
            help=help_,
            description=help_,
            epilog=epilog,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    p = add(
        "demo",
        "build the built-in DS-CNN keyword spotter, generate C, run it, verify it",
        "example:\n  edgekit demo -o build/demo\n\n"
        "output: the model's layers and sizes, then the verify table: per output the samples,\n"
        "mismatching samples and elements, and 'bit-exact' when every byte matches TFLite Micro\n"
        "(exit code 0) or the first differing layer (exit code 1).",
    )
    p.add_argument(
        "-o", "--output", default="build/demo", help="output folder (default build/demo)"
    )
    p.add_argument("--samples", type=int, default=200, help="random inputs to verify (default 200)")
    p.add_argument("--seed", type=int, default=0, help="seed of the model weights and inputs")
    p.set_defaults(fn=cmd_demo)

    p = add(
        "generate",
        "generate C sources, header, model.ekir and report.json",
        "examples:\n  edgekit generate kws_ref_model.tflite -o build/kws\n"
        "  edgekit generate kws_ref_model.tflite --target cortex-m4 --name kws -o build/kws_m4\n"
        "  edgekit generate kws_float.tflite --precision fp16 --train-last 2 \\\n"
        "          --loss cross-entropy --optimizer sgd:lr=0.01 --target rv32-zfh-v \\\n"
        "          -o build/kws_odl          on-device training step (docs/training.md)\n\n"
        "The folder holds <name>.h/.c (the API), <name>_weights.h (const data), the edgekit\n"
        "headers they include, harness_model.h (test glue), model.ekir and report.json.",
    )
    _add_model_arg(p)
    p.add_argument("-o", "--output", required=True, type=Path, help="output folder")
    p.add_argument(
        "--force",
        action="store_true",
        help="replace the output folder even if edgekit did not write it",
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    _add_train_args(p)
    p.set_defaults(fn=cmd_generate)

    p = add(
        "verify",
        "compile the generated C on the host and compare it with TFLite Micro",
        "examples:\n  edgekit verify kws_ref_model.tflite --samples 200\n"
        "  edgekit verify vww_96_int8.tflite --target cortex-m4 --emulate    under QEMU\n"
        "  edgekit verify model.ekir --reference model_int8.tflite     an .ekir from quantize\n"
        "  edgekit verify ad01_fp32.tflite --precision fp16            vs the FP16 golden model\n"
        "\n"
        "Inputs are uniform random over each input's integer range. Exit code 0 only when\n"
        "every output byte of every sample matches; on a mismatch the first differing\n"
        "layer is named. With --precision fp16 the host build (and, with --emulate, the\n"
        "target build) is compared with the numpy golden model of the FP16 contract.",
    )
    _add_model_arg(p)
    p.add_argument("--samples", type=int, default=200, help="random inputs (default 200)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random inputs (default 0)")
    p.add_argument("--reference", type=Path, help="the .tflite to compare with, for .ekir input")
    p.add_argument("--emulate", action="store_true", help="run on an emulated target under QEMU")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(fn=cmd_verify)

    p = add(
        "run",
        "run a batch of inputs through the generated code on the host",
        "example:\n  edgekit run kws_ref_model.tflite --input x.npy -o y.npy --dequantize\n\n"
        "x.npy holds one input or a batch [N, *input_shape]. Integer arrays are used as they\n"
        "are; float arrays are quantized with the model's input scale and zero point.",
    )
    _add_model_arg(p)
    p.add_argument("--input", required=True, type=Path, help=".npy (or .npz for several inputs)")
    p.add_argument(
        "-o", "--output", required=True, type=Path, help="where to write outputs (.npy/.npz)"
    )
    p.add_argument("--dequantize", action="store_true", help="write real values instead of int8")
    p.add_argument("--json", action="store_true", help="print what was written as JSON")
    p.set_defaults(fn=cmd_run)

    p = add(
        "report",
        "per-layer MACs, weights, activations and the arena plan",
        "examples:\n  edgekit report kws_ref_model.tflite --json\n"
        "  edgekit report model.ekir --quant                     what quantize recorded per layer\n"
        "  edgekit report kws_float.tflite --precision fp16 --train-last 2   the training build\n"
        "  edgekit report kws_ref_model.tflite --plot kws.html   arena map + cost bars, one file\n"
        "  edgekit report kws_ref_model.tflite --plot kws.png    needs pip install 'edgekit[plot]'"
        "\n\n--plot draws the memory planner's result: one rectangle per tensor, at its arena\n"
        "offset, across the ops during which it is live; and MACs and weight bytes per layer.\n"
        "The format follows the suffix: .html (self-contained, inline SVG), .svg or .png.\n\n"
        "output: one row per layer (op, kernel family, output shape, MACs, weight bytes, output\n"
        "bytes, arena offset), then totals: MACs, constants (flash), arena (RAM) and how far the\n"
        "arena is above the liveness lower bound. --json: report.json (docs/cli.md).",
    )
    _add_model_arg(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument(
        "--plot",
        type=Path,
        metavar="FILE",
        help="also write the arena over the schedule and per-layer costs (.html, .svg or .png)",
    )
    p.add_argument("--quant", action="store_true",
                   help="per-layer SQNR and ranges recorded by `edgekit quantize` (an int8 .ekir)")
    _add_train_args(p)
    p.set_defaults(fn=cmd_report)

    p = add(
        "inspect",
        "print the IR: tensors, quantization, ops and their integer parameters",
        "examples:\n  edgekit inspect build/kws/model.ekir\n"
        "  edgekit inspect kws_ref_model.tflite --constants | less\n"
        "  edgekit inspect build/kws/model.ekir --json | jq '.ops[0].q'\n\n"
        "output: the graph's tensors (dtype, shape, quantization: scale and zero point), then\n"
        "each op with its attributes and, for a lowered .ekir from generate, the integer\n"
        "multipliers and shifts the kernels use.",
    )
    p.add_argument("model", type=Path, help="a .tflite model or an .ekir file")
    p.add_argument("--constants", action="store_true", help="also list every constant tensor "
                   "(with --json: their values)")
    p.add_argument("--json", action="store_true", help="the graph as one JSON document")
    p.set_defaults(fn=cmd_inspect)

    p = add(
        "bench",
        "executed instructions, MACs/instruction, arena and flash of the generated code",
        "examples:\n  edgekit bench vww_96_int8.tflite --target cortex-m4 --per-layer\n"
        "  edgekit bench kws_ref_model.tflite --json      (host: next to TFLite Micro)\n\n"
        "On an emulated target the model runs under QEMU with -icount: the figures are exact\n"
        "executed-instruction counts of one inference (deterministic, not timings).\n"
        "`edgekit bench DIR --port PORT` (DIR from `edgekit build`) times it on a board.",
    )
    _add_model_arg(p)
    p.add_argument("--samples", type=int, default=50, help="host only: inferences to time")
    p.add_argument("--per-layer", action="store_true", help="emulated: instructions per layer")
    p.add_argument(
        "--compare",
        choices=["fp16", "fp32"],
        help="with --precision fp16/fp32: the same model in this precision, side by side",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(fn=cmd_bench)

    p = add(
        "targets",
        "list the targets code can be generated for",
        "examples:\n  edgekit targets\n  edgekit targets --json     [{\"name\": ..., "
        "\"description\": ...}, ...]\n\nEach name is a file in targets/ (docs/targets.md); pass "
        "it as --target NAME.\n`edgekit doctor` says which of them can be built and run here.",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(fn=cmd_targets)
    _register_command_modules(add)
    return parser


def _register_command_modules(add: Any) -> None:
    import importlib
    import pkgutil

    from edgekit import commands

    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        importlib.import_module(f"edgekit.commands.{info.name}").register(add)


def _target_of(argv: list[str]) -> tuple[str | None, list[str]]:
    """The --target value in argv, and argv without it."""
    for i, a in enumerate(argv):
        if a == "--target" and i + 1 < len(argv):
            return argv[i + 1], argv[:i] + argv[i + 2 :]
        if a.startswith("--target="):
            return a.split("=", 1)[1], argv[:i] + argv[i + 1 :]
    return None, argv


def _is_spiking_ekir(arg: str) -> bool:
    path = Path(arg)
    if path.suffix != ".ekir" or not path.is_file():
        return False
    try:
        from edgekit.ir import serialize
        from edgekit.snn.ops import is_snn

        data = path.read_bytes()
        return data[:4] == serialize.MAGIC and is_snn(serialize.loads(data, arg))
    except EdgekitError:
        return False  # the command itself reports what is wrong with the file


def route(argv: list[str]) -> list[str]:
    """The issue-level spellings of the FPGA and spiking workflows, as their subcommands.

    `generate|verify|report ... --target hls-vitis` is `hls generate|verify|report ...`;
    `convert` is `snn convert`; `generate|verify|bench` of a spiking .ekir (or with
    --snn-kernel) is `snn generate|verify|bench`, and `quantize` of one is `snn quantize`.
    One pipeline per kind of model, one spelling for the user.
    """
    if not argv:
        return argv
    cmd, rest = argv[0], argv[1:]
    if cmd == "convert":
        return ["snn", "convert", *rest]
    if cmd == "bench" and any((Path(a) / "edgekit-build.json").is_file() for a in rest):
        return ["bench-board", *rest]  # a firmware folder of `edgekit build`: on-board run
    if cmd in {"generate", "verify", "report"}:
        target, without = _target_of(rest)
        if target == "hls-vitis":
            return ["hls", cmd, *without]
    if cmd in {"generate", "verify", "bench"} and (
        any(a == "--snn-kernel" or a.startswith("--snn-kernel=") for a in rest)
        or any(_is_spiking_ekir(a) for a in rest if not a.startswith("-"))
    ):
        return ["snn", cmd, *rest]
    if cmd == "quantize" and rest and _is_spiking_ekir(rest[0]):
        return ["snn", "quantize", *rest]  # re-quantise on calibration spike trains
    return argv


def _unknown_command(parser: argparse.ArgumentParser, argv: list[str]) -> str | None:
    """The error for a mistyped command (`edgekit genrate`), naming the closest ones."""
    import difflib

    if not argv or argv[0].startswith("-"):
        return None
    names = [n for a in parser._actions if isinstance(a, argparse._SubParsersAction)
             for n in a.choices] + ["convert"]
    if argv[0] in names:
        return None
    close = difflib.get_close_matches(argv[0], names, n=2, cutoff=0.6)
    hint = " or ".join(f"`edgekit {c}`" for c in close)
    return (f"unknown command '{argv[0]}'" + (f"; did you mean {hint}?" if close else "")
            + "\n  hint: `edgekit --help` lists the commands")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    unknown = _unknown_command(parser, argv)
    if unknown:
        print(f"edgekit: {paint('error:', 'error', sys.stderr)} {unknown}", file=sys.stderr)
        return 2
    args = parser.parse_args(route(argv))
    if not getattr(args, "fn", None):
        parser.print_help()
        return 2
    try:
        return int(args.fn(args))
    except EdgekitError as exc:
        print(f"edgekit: {paint('error:', 'error', sys.stderr)} {exc.render()}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("edgekit: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (`edgekit inspect m.tflite | head`): not a bug, nothing to say;
        # point stdout at /dev/null so the interpreter's final flush does not fail again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, as other tools in a pipeline exit
    except Exception as exc:
        if os.environ.get("EDGEKIT_DEBUG"):
            raise
        print(
            f"edgekit: internal error: {type(exc).__name__}: {exc}\n"
            "  this is a bug in edgekit; rerun with EDGEKIT_DEBUG=1 for a traceback and report it",
            file=sys.stderr,
        )
        return 3


if __name__ == "__main__":
    sys.exit(main())
