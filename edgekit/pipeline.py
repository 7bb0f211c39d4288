"""The one way through the toolchain: model file -> IR -> passes -> generated C.

CLI commands, runners and tests all call these functions, so every path compiles a model the
same way.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codegen.kernels import assign_kernels, kernels_fit
from codegen.render import ConstantAsActivation, GeneratedModel, render_model
from edgekit import __version__
from edgekit.errors import EdgekitError
from edgekit.frontends.tflite import read_tflite
from edgekit.ir import serialize
from edgekit.ir.graph import Graph
from edgekit.passes.fp16 import FLOAT_PRECISIONS, float_families, to_float
from edgekit.passes.fuse import fuse_activations
from edgekit.passes.lower import lower
from edgekit.passes.memory import MemoryPlan, plan_memory
from edgekit.passes.overflow import check_overflow
from edgekit.passes.rederive import rederive_lowered, relower_without_kernels

# Marker file that says a folder was written by edgekit and may be replaced by it.
MARKER = ".edgekit-output"
# Larger files are refused before they are read (docs/reliability.md).
MAX_MODEL_BYTES = 64 << 20


@dataclass
class Compiled:
    graph: Graph  # lowered
    plan: MemoryPlan
    generated: GeneratedModel
    target: str
    source_sha256: str


def model_name(path: Path) -> str:
    stem = "".join(c if c.isalnum() else "_" for c in Path(path).stem.lower()).strip("_")
    if not stem or stem[0].isdigit():
        stem = "m_" + stem
    return stem


def load_model(path: str | Path, name: str | None = None) -> tuple[Graph, str]:
    """Read a .tflite or .ekir file into an IR graph; returns the graph and the file's sha256."""
    p = Path(path)
    if not p.is_file():
        raise EdgekitError("model file not found", str(p), "check the path")
    try:
        if p.stat().st_size > MAX_MODEL_BYTES:
            raise EdgekitError(f"model file is larger than {MAX_MODEL_BYTES >> 20} MB", str(p))
        data = p.read_bytes()
    except OSError as exc:
        raise EdgekitError(f"cannot read the model file ({exc.strerror})", str(p)) from None
    digest = hashlib.sha256(data).hexdigest()
    if data[:4] == serialize.MAGIC:
        # derived parameters in a lowered file are recomputed, never trusted (passes/rederive.py)
        graph = rederive_lowered(serialize.loads(data, str(p)), str(p))
        if name:
            graph.name = name
    elif data[4:8] == b"TFL3" or p.suffix == ".tflite":
        graph = read_tflite(data, str(p), name or model_name(p))
    elif p.suffix == ".onnx":
        from edgekit.frontends.onnx import read_onnx

        graph = read_onnx(data, str(p), name or model_name(p))
    else:
        raise EdgekitError(
            "unrecognised model format", str(p), "edgekit reads .tflite and .ekir files"
        )
    graph.meta.setdefault("source_sha256", digest)
    return graph, digest


def _target_kernels(target: str) -> tuple[list[str], set[str]]:
    from edgekit.targets import load_target

    t = load_target(target)
    return list(t.kernels), set(t.capabilities)


def compile_graph(
    graph: Graph, target: str = "host", where: str = "", precision: str = "int8"
) -> Compiled:
    """Lower (if needed), plan memory and render C for `target`. The input graph is not changed.

    precision "int8" compiles a quantized model; "fp16" (or "fp32") converts a float32 model
    under the float contract of docs/numerics-fp16.md. A lowered graph (.ekir) keeps its own.
    """
    g = copy.deepcopy(graph)
    families, caps = _target_kernels(target)
    lowered_float = g.meta.get("precision", "int8") in FLOAT_PRECISIONS
    fit = float_families(families) if lowered_float else families
    if g.meta.get("lowered") and not kernels_fit(g, fit, caps):
        # a file lowered for another target keeps its layer parameters; kernels are chosen anew
        g = relower_without_kernels(g, where)
    if not g.meta.get("lowered"):
        if precision == "int8":
            lower(g, where)
            fuse_activations(g)
        elif precision in FLOAT_PRECISIONS:
            to_float(g, precision, where)
        else:
            raise EdgekitError(f"unknown precision '{precision}'", where, "use int8 or fp16")
    check_overflow(g, where)
    if g.meta.get("precision", "int8") in FLOAT_PRECISIONS:
        families = float_families(families)
    assign_kernels(g, families, caps)
    plan = plan_memory(g)
    try:
        generated = render_model(g, plan, families, caps)
    except ConstantAsActivation as exc:
        raise EdgekitError(
            f"{exc}: its kernel computes on activations only",
            where,
            "the file wires a constant into a data input; re-export the model with constant "
            "subgraphs folded",
        ) from None
    return Compiled(g, plan, generated, target, str(g.meta.get("source_sha256", "")))


def compile_file(
    path: str | Path, target: str = "host", name: str | None = None, precision: str = "int8"
) -> Compiled:
    graph, _ = load_model(path, name)
    return compile_graph(graph, target, str(path), precision)


def write_output(
    compiled: Compiled, out_dir: str | Path, report: dict[str, Any], force: bool = False
) -> Path:
    """Write sources, model.ekir and report.json into out_dir, all or nothing.

    Files go to a temporary sibling folder that is renamed into place, so a failure never leaves
    a half-written output. An existing folder is replaced only if edgekit wrote it (or with force).
    """
    out = Path(out_dir)
    if out.exists():
        if not out.is_dir():
            raise EdgekitError("output path exists and is not a folder", str(out))
        if not (out / MARKER).exists() and any(out.iterdir()) and not force:
            raise EdgekitError(
                "output folder exists and was not written by edgekit",
                str(out),
                "choose another -o folder, or pass --force to replace it",
            )
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    except OSError as exc:
        raise EdgekitError(
            f"cannot create the output folder ({exc.strerror})",
            str(out),
            "choose an -o folder whose parent is a writable directory",
        ) from None
    try:
        for fname, text in sorted(compiled.generated.files.items()):
            (tmp / fname).write_text(text)
        serialize.save(compiled.graph, tmp / "model.ekir")
        (tmp / "report.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
        (tmp / MARKER).write_text(f"edgekit {__version__}\n")
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise EdgekitError(f"cannot write the output ({exc.strerror})", str(out)) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
