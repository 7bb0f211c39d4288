"""`edgekit export`: an int8 .ekir -> .tflite, to cross-check it in TFLM or other runtimes."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from edgekit.commands.quantize import write_atomic
from edgekit.errors import EdgekitError


def cmd_export(args: argparse.Namespace) -> int:
    from edgekit.export.tflite import export_tflite
    from edgekit.pipeline import load_model

    if args.format != "tflite":
        raise EdgekitError(f"unknown format '{args.format}'", hint="only tflite is supported")
    graph, _ = load_model(args.model)
    if not any(t.dtype == "int8" for t in graph.activations()):
        raise EdgekitError("the model is float; export writes int8 models",
                           str(args.model), "run `edgekit quantize` first")
    if graph.meta.get("lowered"):
        raise EdgekitError(
            "this .ekir was written by generate and is lowered; its fused clamps cannot be "
            "written back as TFLite ops", str(args.model),
            "export the .ekir written by `edgekit quantize` instead",
        )
    data = export_tflite(graph, str(args.model))
    write_atomic(Path(args.output), data)
    print(f"wrote {args.output} ({len(data)} bytes, {len(graph.ops)} ops)")
    return 0


def register(add: Any) -> None:
    p = add(
        "export",
        "write an int8 model (.ekir from quantize) as a .tflite file",
        "example:\n  edgekit export model.ekir --format tflite -o model_int8.tflite\n"
        "  edgekit verify model.ekir --reference model_int8.tflite\n\n"
        "The file holds the same quantized model; TFLite Micro running it must agree with\n"
        "edgekit's generated C byte for byte.",
    )
    p.add_argument("model", type=Path, help="an int8 .ekir (written by quantize) or .tflite")
    p.add_argument("--format", default="tflite", choices=["tflite"], help="output format")
    p.add_argument("-o", "--output", required=True, type=Path, help="file to write")
    p.set_defaults(fn=cmd_export)
