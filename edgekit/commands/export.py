"""`edgekit export`: two modes.

`--format tflite` writes an int8 .ekir back as a .tflite, to cross-check it in TFLite Micro.
`--as cmake|zephyr-module|platformio` writes the generated C as a library folder that drops
into an existing firmware build (edgekit/export/layouts.py).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from edgekit.commands.quantize import write_atomic
from edgekit.errors import EdgekitError

EPILOG = """\
examples:
  edgekit export kws_ref_model.tflite --as cmake -o vendor/kws
  edgekit export kws_ref_model.tflite --as zephyr-module -o modules/kws --target cortex-m4
  edgekit export kws_ref_model.tflite --as platformio -o lib/kws --name kws
  edgekit export model.ekir --format tflite -o model_int8.tflite
  edgekit export model.ekir --format onnx-qdq          (writes model.qdq.onnx)
  edgekit verify model.ekir --reference model_int8.tflite

--as writes the same C that `edgekit generate` writes (include/ for the API header, src/ for
the rest) plus the build files of that ecosystem and a README.md on how to use it:
  cmake          CMakeLists.txt: a static library target named after the model (C99, warnings)
  zephyr-module  zephyr/module.yml, CMakeLists.txt (zephyr_library), Kconfig (CONFIG_EDGEKIT_<NAME>)
  platformio     library.json with srcDir, includeDir and build flags
An existing folder is replaced only if edgekit wrote it (or with --force).

--format tflite writes an int8 model (an .ekir from `edgekit quantize`) as a .tflite file;
TFLite Micro running it must agree with edgekit's generated C byte for byte.
--format onnx-qdq writes it as a QDQ ONNX model; onnxruntime evaluates it in float, so it
agrees with the generated C within the bound docs/quantize.md states.
"""


def cmd_export(args: argparse.Namespace) -> int:
    if args.layout and args.format:
        raise EdgekitError(
            "--as and --format are two different exports; give one of them",
            hint="--as cmake|zephyr-module|platformio for a library folder, "
            "--format tflite for a .tflite file",
        )
    if not args.layout and not args.format:
        # no default: `-o vendor/kws` and `-o m.tflite` are different exports, and guessing one
        # from the output name would silently write the wrong thing
        hint = (
            "add --format tflite to write this .tflite file"
            if args.output is not None and args.output.suffix == ".tflite"
            else "add --as cmake|zephyr-module|platformio (a library folder for your firmware) "
            "or --format tflite|onnx-qdq (an int8 model file)"
        )
        raise EdgekitError("say what to export: --as LAYOUT or --format tflite|onnx-qdq",
                           str(args.model), hint)
    if args.layout:
        if args.output is None:
            raise EdgekitError(f"--as {args.layout} needs -o FOLDER", str(args.model),
                               f"e.g. -o vendor/{args.model.stem}")
        return _export_layout(args)
    return _export_tflite(args)


def _export_layout(args: argparse.Namespace) -> int:
    from edgekit.export.layouts import layout_files, write_tree
    from edgekit.pipeline import compile_file
    from edgekit.progress import status
    from edgekit.report import build_report

    with status(f"compiling {args.model.name}"):
        compiled = compile_file(args.model, args.target, args.name, args.precision)
    options = {"target": args.target, "name": args.name, "precision": args.precision}
    report = build_report(compiled, options)
    files = layout_files(compiled, args.layout, report)
    out = write_tree(files, args.output, force=args.force)
    name = compiled.generated.name
    if args.json:
        print(json.dumps({"command": "export", "layout": args.layout, "output": str(out),
                          "name": name, "files": sorted(files)}, indent=2))
        return 0
    how = {
        "cmake": f"add_subdirectory({out}) and target_link_libraries(<app> PRIVATE {name})",
        "zephyr-module": f"ZEPHYR_EXTRA_MODULES={out.resolve()} and CONFIG_EDGEKIT_"
        f"{name.upper()}=y",
        "platformio": f"put it in lib/ or lib_deps = symlink://{out}",
    }[args.layout]
    print(f"wrote the {args.layout} layout of {name} ({len(files)} files) to {out}/")
    print(f"use it: {how}; see {out}/README.md")
    return 0


def _default_output(model: Path, fmt: str) -> Path:
    """model.ekir -> model.tflite / model.qdq.onnx next to it, never the input itself."""
    out = model.with_name(model.stem + (".tflite" if fmt == "tflite" else ".qdq.onnx"))
    return out if out.resolve() != model.resolve() else model.with_name(model.stem + "_int8.tflite")


def _export_tflite(args: argparse.Namespace) -> int:
    from edgekit.export.onnx_qdq import export_onnx_qdq
    from edgekit.export.tflite import export_tflite
    from edgekit.pipeline import load_model

    if args.output is None:
        args.output = _default_output(args.model, args.format)
    graph, _ = load_model(args.model)
    if not any(t.dtype in ("int8", "int16") for t in graph.activations()):
        raise EdgekitError("the model is float; export writes int8 (and 16x8) models",
                           str(args.model), "run `edgekit quantize` first")
    if graph.meta.get("lowered"):
        raise EdgekitError(
            "this .ekir was written by generate and is lowered; its fused clamps cannot be "
            "written back as TFLite ops", str(args.model),
            "export the .ekir written by `edgekit quantize` instead",
        )
    write = export_tflite if args.format == "tflite" else export_onnx_qdq
    data = write(graph, str(args.model))
    write_atomic(Path(args.output), data)
    if args.json:
        print(json.dumps({"command": "export", "format": args.format, "output": str(args.output),
                          "bytes": len(data), "ops": len(graph.ops)}, indent=2))
        return 0
    print(f"wrote {args.output} ({len(data)} bytes, {len(graph.ops)} ops)")
    return 0


def register(add: Any) -> None:
    from edgekit.export.layouts import LAYOUTS

    p = add(
        "export",
        "write the generated C as a CMake / Zephyr / PlatformIO library, or a model as .tflite",
        EPILOG,
    )
    p.add_argument("model", type=Path, help="a .tflite model or an .ekir file")
    mode = p.add_argument_group("what to export (give one)")
    mode.add_argument("--as", dest="layout", choices=list(LAYOUTS),
                      help="a library folder of the generated C for this build system")
    mode.add_argument("--format", choices=["tflite", "onnx-qdq"],
                      help="an int8 model file (from a quantized .ekir): .tflite, or ONNX with "
                      "QuantizeLinear/DequantizeLinear pairs for onnxruntime")
    p.add_argument("-o", "--output", type=Path,
                   help="the folder (--as, required) or file (--format; default: the model's "
                   "name with .tflite or .qdq.onnx)")
    p.add_argument("--target", default="host",
                   help="--as: target whose kernels are generated (see `edgekit targets`); "
                   "default host (portable C)")
    p.add_argument("--name", help="--as: C prefix of the API and the library's name "
                   "(default: file name)")
    p.add_argument("--precision", choices=["int8", "fp16", "fp32"], default="int8",
                   help="--as: as for generate (default int8)")
    p.add_argument("--force", action="store_true",
                   help="--as: replace the folder even if edgekit did not write it")
    p.add_argument("--json", action="store_true", help="print what was written as JSON")
    p.set_defaults(fn=cmd_export)
