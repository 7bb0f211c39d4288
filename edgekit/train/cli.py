"""The training flags of `edgekit generate` and `edgekit report` (docs/cli.md, docs/training.md).

edgekit/cli.py only registers these flags and hands over when --train-last is given, so the
training command line lives next to the code it drives.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from edgekit.errors import EdgekitError


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("on-device training (docs/training.md)")
    g.add_argument(
        "--train-last",
        type=int,
        metavar="N",
        help="also generate <name>_train_step: train the last N weighted layers "
        "(fully_connected, conv2d, depthwise_conv2d) on the device; needs --precision fp16 "
        "or fp32",
    )
    g.add_argument("--loss", metavar="LOSS", help="cross-entropy (default; on the logits) or mse")
    g.add_argument(
        "--optimizer",
        metavar="SPEC",
        help="sgd[:lr=0.01[,momentum=0.9]] (default sgd:lr=0.01)",
    )


def wants_training(args: argparse.Namespace) -> bool:
    """True with --train-last; --loss or --optimizer alone is an error, not silently ignored."""
    if getattr(args, "train_last", None) is not None:
        return True
    for flag in ("loss", "optimizer"):
        if getattr(args, flag, None) is not None:
            raise EdgekitError(
                f"--{flag} only applies to training", hint="add --train-last N to train the last "
                "N layers on the device",
            )  # fmt: skip
    return False


def _build(args: argparse.Namespace) -> Any:
    from edgekit.pipeline import load_model
    from edgekit.train import build_training

    if args.precision not in ("fp16", "fp32"):
        raise EdgekitError(
            f"--train-last needs --precision fp16 or fp32, not {args.precision}",
            str(args.model),
            "int8 models cannot be trained on the device: give the float32 model with "
            "--precision fp16 (or fp32)",
        )
    graph, _ = load_model(args.model, args.name)
    return build_training(
        graph,
        args.precision,
        args.train_last,
        args.loss or "cross-entropy",
        args.optimizer or "sgd:lr=0.01",
        args.target,
        str(args.model),
    )


def _report(args: argparse.Namespace, build: Any) -> dict[str, Any]:
    from edgekit.report import build_report

    options = {
        "target": args.target,
        "name": args.name,
        "precision": args.precision,
        "train_last": args.train_last,
        "loss": args.loss or "cross-entropy",
        "optimizer": args.optimizer or "sgd:lr=0.01",
    }
    report = build_report(build.compiled, options)
    report["training"] = build.report()
    return report


def cmd_generate(args: argparse.Namespace) -> int:
    from edgekit.pipeline import write_output
    from edgekit.report import format_report
    from edgekit.train import format_training

    t0 = time.monotonic()
    build = _build(args)
    report = _report(args, build)
    out = write_output(build.compiled, args.output, report, force=args.force)
    files = sorted(build.files)
    if args.json:
        print(json.dumps({"output": str(out), "files": files, "report": report}, indent=2))
        return 0
    n = build.name
    print(format_report(report))
    print(format_training(report["training"]))
    print(
        f"\nwrote {len(files)} C files, model.ekir and report.json to {out}/ "
        f"in {time.monotonic() - t0:.2f} s"
    )
    print(f"API: {n}_run(input, output) in {out}/{n}.h")
    print(
        f"     {n}_train_step(input, {'label' if build.spec.loss == 'cross-entropy' else 'target'})"
        f", {n}_predict, {n}_weights_export/_import in {out}/{n}_train.h"
    )
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from edgekit.report import format_report
    from edgekit.train import format_training

    build = _build(args)
    report = _report(args, build)
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True))
    else:
        print(format_report(report))
        print(format_training(report["training"]))
    return 0
