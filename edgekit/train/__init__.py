"""On-device training of the last dense layers of a float model (docs/training.md).

`build_training` compiles a float model for a target (the inference code, unchanged) and adds
`<name>_train.c/.h`: a train step that runs the frozen layers through the inference code and
then forward, loss, backward and the SGD update of the trainable tail, in FP16 or FP32 under
the contract of docs/training.md. `generate_training` does the same from a model file and writes
the output folder; `edgekit generate --train-last N` is its command line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from codegen.render import GeneratedModel
from edgekit.errors import EdgekitError
from edgekit.ir.graph import Graph
from edgekit.passes.fp16 import FLOAT_PRECISIONS
from edgekit.pipeline import Compiled, compile_graph, load_model, write_output
from edgekit.targets import load_target
from edgekit.train.render import layout, render_training, weight_bytes
from edgekit.train.spec import LOSSES, Optimizer, TrainSpec, parse_optimizer, training_spec

__all__ = [
    "LOSSES",
    "Optimizer",
    "TrainSpec",
    "TrainingBuild",
    "build_training",
    "format_training",
    "generate_training",
    "parse_optimizer",
]


@dataclass
class TrainingBuild:
    compiled: Compiled  # the inference build; its files include the training sources
    spec: TrainSpec
    name: str

    @property
    def files(self) -> dict[str, str]:
        return self.compiled.generated.files

    def report(self) -> dict[str, Any]:
        s = self.spec
        lay = layout(s)
        es = np.dtype(s.dtype).itemsize
        wb = weight_bytes(s)
        ram = {
            "trained_weights": wb,
            "momentum": wb if s.optimizer.momentum else 0,
            "tail_activations": lay.activation_bytes,
            "gradient_rows": lay.grad_bytes,
            "weight_gradient_scratch": lay.scratch_bytes,
            "im2col": lay.col_bytes + lay.dcol_bytes,
        }
        return {
            "model": s.graph.name,
            "target": self.compiled.target,
            "precision": s.precision,
            "loss": s.loss,
            "optimizer": {"kind": s.optimizer.kind, "lr": s.optimizer.lr,
                          "momentum": s.optimizer.momentum},
            "frozen_ops": s.frozen_ops,
            "tail": [
                {"name": t.name, "kind": t.kind, "op": t.source, "rows": t.rows,
                 "depth": t.depth, "units": t.units, "activation": t.activation,
                 "trained": t.trained, "macs": t.macs,
                 "im2col": t.kind == "dense" and t.conv is not None}
                for t in s.tail
            ],
            "parameters": s.parameter_count,
            # forward + input gradient (not for the first layer) + weight gradient
            "step_macs": sum(
                t.macs * (2 if i == 0 else 3) for i, t in enumerate(s.tail) if t.trained
            ),
            "training_ram_bytes": {**ram, "total": sum(ram.values()),
                                   "train_arena": lay.arena},
            "inference_arena_bytes": self.compiled.plan.arena_bytes,
            "training_flash_bytes": {"initial_weights": wb},
            "element_bytes": es,
        }  # fmt: skip


def format_training(r: dict[str, Any]) -> str:
    """The training section of the generate report, as text."""
    opt = r["optimizer"]
    sgd = f"sgd lr {opt['lr']:g}" + (f" momentum {opt['momentum']:g}" if opt["momentum"] else "")
    lines = [
        f"training   {r['precision']}, loss {r['loss']}, {sgd}; {r['frozen_ops']} frozen ops",
    ]
    for t in r["tail"]:
        what = (
            f"{t['op']} {t['rows']}x{t['depth']} -> {t['rows']}x{t['units']} {t['activation']}"
            if t["trained"]
            else f"{t['op']} (passes the gradient"
            + (f", {t['activation']} mask)" if t["activation"] != "none" else ")")
        )  # fmt: skip
        lines.append(f"  {'trained' if t['trained'] else 'tail':7}  {t['name']:<24} {what}")
    ram = r["training_ram_bytes"]
    lines.append(
        f"train RAM  {ram['total']:,} B = weights {ram['trained_weights']:,} + momentum "
        f"{ram['momentum']:,} + tail activations {ram['tail_activations']:,} + gradient rows "
        f"{ram['gradient_rows']:,} + weight-gradient scratch {ram['weight_gradient_scratch']:,}"
        f" + im2col {ram['im2col']:,}"
        f" (besides the inference arena of {r['inference_arena_bytes']:,} B)"
    )
    lines.append(
        f"train step {r['parameters']:,} parameters, {r['step_macs']:,} MACs in the tail; "
        f"flash +{r['training_flash_bytes']['initial_weights']:,} B of initial weights"
    )
    return "\n".join(lines)


def _check_precision(precision: str) -> None:
    if precision not in FLOAT_PRECISIONS:
        raise EdgekitError(
            f"training needs --precision fp16 or fp32, not '{precision}'",
            hint="int8 models cannot be trained on the device; give the float32 model",
        )


def build_training(
    graph: Graph, precision: str = "fp16", train_last: int = 1, loss: str = "cross-entropy",
    optimizer: Optimizer | str = "sgd", target: str = "host", where: str = "",
) -> TrainingBuild:  # fmt: skip
    """Compile `graph` (float32) for `target` and add the training sources."""
    _check_precision(precision)
    if loss not in LOSSES:
        raise EdgekitError(
            f"unknown loss '{loss}'", where or None, f"use one of: {', '.join(LOSSES)}"
        )
    if isinstance(train_last, bool) or not isinstance(train_last, int) or train_last < 1:
        raise EdgekitError(f"--train-last must be a positive integer, not {train_last!r}")
    opt = parse_optimizer(optimizer) if isinstance(optimizer, str) else optimizer
    compiled = compile_graph(graph, target, where, precision)
    active = [not layer.noop for layer in compiled.generated.layers]
    spec = training_spec(
        compiled.graph, compiled.plan.offsets, active, train_last, loss, opt, where
    )
    gen = compiled.generated
    files = dict(gen.files)
    caps = load_target(target).capabilities
    rvv = "rvv" in caps and (precision == "fp32" or "zvfh" in caps)
    files.update(render_training(spec, gen.name, rvv))
    generated = GeneratedModel(gen.name, files, gen.layers, gen.consts)
    out = Compiled(compiled.graph, compiled.plan, generated, target, compiled.source_sha256)
    return TrainingBuild(out, spec, gen.name)


def generate_training(
    model_path: str | Path, precision: str = "fp16", train_last: int = 1,
    loss: str = "cross-entropy", optimizer: str = "sgd", target: str = "host",
    out_dir: str | Path | None = None, name: str | None = None, force: bool = False,
) -> TrainingBuild:  # fmt: skip
    """Read a float model, build inference plus training code for `target` and, with
    `out_dir`, write the sources, model.ekir and report.json (with the training section)."""
    _check_precision(precision)
    graph, _ = load_model(model_path, name)
    build = build_training(graph, precision, train_last, loss, optimizer, target, str(model_path))
    if out_dir is not None:
        write_output(build.compiled, out_dir, {"training": build.report()}, force=force)
    return build
