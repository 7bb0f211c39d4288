"""One model -> one Vitis HLS project: lower, plan reuse, estimate, render, lint, write.

The same lowering and fusion passes as the MCU path run first, so the HLS kernels read the very
integer parameters (`op.attrs["q"]`) the MCU kernels compile in.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from codegen.hls.design import Assembly, build_design
from codegen.hls.render import TestVectors, render_project, synth_files
from codegen.render import c_ident
from edgekit import __version__
from edgekit.errors import EdgekitError
from edgekit.hls.estimate import Estimate
from edgekit.hls.lint import lint_sources
from edgekit.hls.parts import DEFAULT_CLOCK_MHZ, DEFAULT_PART, Part, get_part, parse_clock
from edgekit.hls.reuse import check_fit, plan_reuse
from edgekit.ir import serialize
from edgekit.ir.graph import Graph
from edgekit.passes.fuse import fuse_activations
from edgekit.passes.lower import lower
from edgekit.pipeline import MARKER, load_model

TARGET = "hls-vitis"
# identifiers the generated C++ already uses, or C++ keywords a file name could turn into
_RESERVED = {"main", "int", "char", "void", "for", "if", "else", "return", "static", "const",
             "auto", "new", "delete", "class", "struct", "template", "ek_hls", "hls", "ap_int"}


@dataclass
class HlsOptions:
    part: str = DEFAULT_PART
    clock: str | float = f"{DEFAULT_CLOCK_MHZ:g}MHz"
    io: str = "parallel"
    reuse: int | str = "auto"
    tb_samples: int = 10
    seed: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class HlsProject:
    name: str
    graph: Graph  # lowered
    assembly: Assembly
    estimate: Estimate
    options: HlsOptions
    part: Part
    clock_mhz: float
    source_sha256: str
    vectors: TestVectors
    files: dict[str, str] = field(default_factory=dict)


def hls_name(graph: Graph) -> str:
    name = c_ident(graph.name).lower()
    return f"m_{name}" if name in _RESERVED or name.startswith("layer_") else name


def lowered(graph: Graph, where: str = "") -> Graph:
    g = copy.deepcopy(graph)
    if not g.meta.get("lowered"):
        lower(g, where)
        fuse_activations(g)
    return g


def refuse_spiking(graph: Graph, where: str = "") -> None:
    """The int8 path cannot take a spiking graph: say where spiking graphs go instead."""
    from edgekit.snn.ops import is_snn

    if is_snn(graph):
        raise EdgekitError(
            "a spiking graph (snn_* ops) cannot go through the int8 HLS pipeline",
            where or graph.name,
            hint="pass the spiking .ekir file to `edgekit hls generate|verify|report` "
            "(edgekit.hls.snn)",
        )


def load_hls_model(path: str | Path, name: str | None = None) -> tuple[Graph, str]:
    """pipeline.load_model, except that a spiking .ekir is read as it is (never lowered)."""
    from edgekit.hls.snn import load_snn_ekir

    spiking = load_snn_ekir(path, name)
    return spiking if spiking is not None else load_model(path, name)


def read_options(options: HlsOptions) -> tuple[Part, float, int | str]:
    """The part, the clock in MHz and the reuse (a number >= 1, or 'auto') the options name."""
    part = get_part(options.part)
    clock = parse_clock(options.clock, part)
    reuse = options.reuse
    if reuse != "auto":
        try:
            reuse = int(reuse)
        except (TypeError, ValueError):
            raise EdgekitError(f"--reuse must be a whole number or 'auto', got '{reuse}'") from None
        if reuse < 1:
            raise EdgekitError(f"--reuse must be at least 1 or 'auto', got {reuse}")
    return part, clock, reuse


def plan(
    graph: Graph, options: HlsOptions, where: str = ""
) -> tuple[Graph, Assembly, Estimate, Part, float]:
    """Lower (if needed), build the HLS design and choose its reuse; nothing is rendered."""
    part, clock, reuse = read_options(options)
    refuse_spiking(graph, where)
    g = lowered(graph, where)
    design = build_design(g, hls_name(g), options.io)
    asm, est = plan_reuse(design, part, clock, reuse)
    return g, asm, est, part, clock


def golden_vectors(
    graph: Graph, samples: int, seed: int, tflite: bytes | None
) -> TestVectors:
    """Seeded random inputs and the reference outputs: TFLite Micro, or the MCU C without one."""
    from edgekit.verify import random_inputs

    if samples < 1:
        raise EdgekitError("the testbench needs at least one sample")
    inputs = random_inputs(graph, samples, seed)
    if tflite is not None:
        from edgekit.reference.tflm import run_tflm

        outputs = run_tflm(tflite, inputs)
        reference = "TFLite Micro"
    else:
        from edgekit.pipeline import compile_graph
        from edgekit.runners.host import HostModel

        host = HostModel(compile_graph(graph, "host"))
        outputs = [host.run(s) for s in inputs]
        reference = "the edgekit MCU C"
    outputs = [[np.asarray(o, dtype=np.int8) for o in out] for out in outputs]
    return TestVectors(inputs, outputs, reference, seed)


def tflite_bytes(path: Path, reference: Path | None = None) -> bytes | None:
    p = Path(reference) if reference else Path(path)
    data = p.read_bytes() if p.is_file() else b""
    return data if data[4:8] == b"TFL3" else None


def build_project(
    path: str | Path,
    options: HlsOptions | None = None,
    name: str | None = None,
    reference: str | Path | None = None,
    require_fit: bool = True,
) -> HlsProject:
    """Everything `edgekit hls generate` writes, in memory."""
    options = options or HlsOptions()
    graph, sha = load_hls_model(path, name)
    from edgekit.snn.ops import is_snn

    if is_snn(graph):
        from edgekit.hls.snn import build_snn_project

        return build_snn_project(graph, sha, options, require_fit, str(path))  # type: ignore[return-value]
    g, asm, est, part, clock = plan(graph, options, str(path))
    if require_fit:
        check_fit(est, options.reuse)
    vectors = golden_vectors(
        g, options.tb_samples, options.seed, tflite_bytes(Path(path), reference)
    )
    project = HlsProject(asm.design.name, g, asm, est, options, part, clock, sha, vectors)
    project.files = render_project(asm, part.name, clock, vectors, sha)
    issues = lint_sources({f: project.files[f] for f in synth_files(project.name)})
    if issues:
        raise EdgekitError(
            "the generated HLS C++ failed the synthesizability lint:\n"
            + "\n".join(f"  {i}" for i in issues[:20]),
            str(path),
            "this is an edgekit bug; please report it with the model",
        )
    return project


def project_report(project: HlsProject) -> dict[str, Any]:
    """report.json of an HLS project; deterministic like the MCU report."""
    from edgekit.hls.snn import SnnHlsProject, snn_project_report

    if isinstance(project, SnnHlsProject):
        return snn_project_report(project)
    est = project.estimate
    return {
        "edgekit_version": __version__,
        "model": project.graph.name,
        "source_sha256": project.source_sha256,
        "target": TARGET,
        "options": dict(sorted(project.options.to_json().items())),
        "top": project.name,
        "schedule": project.assembly.schedule,
        "testbench": {
            "samples": len(project.vectors.inputs),
            "reference": project.vectors.reference,
        },
        "estimate": est.to_json(),
    }


def write_project(project: HlsProject, out_dir: str | Path, force: bool = False) -> Path:
    """Write the project folder all or nothing, like pipeline.write_output."""
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
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for fname, text in sorted(project.files.items()):
            dest = tmp / fname
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text(text)
        serialize.save(project.graph, tmp / "model.ekir")
        report = json.dumps(project_report(project), indent=2, sort_keys=True) + "\n"
        (tmp / "report.json").write_text(report)
        (tmp / MARKER).write_text(f"edgekit {__version__}\n")
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def format_estimate(est: Estimate) -> str:
    rows = [("#", "layer", "kind", "reuse", "impl", "II", "latency", "interval", "DSP",
             "BRAM18", "LUT")]
    for x in est.layers:
        rows.append((
            str(x.index), x.name, x.kind, str(x.reuse), x.mult, str(x.ii), f"{x.latency:,}",
            f"{x.interval:,}", f"{x.dsp:,}", f"{x.bram18:,}", f"{x.lut:,}",
        ))
    if est.buffer_bram18 or est.buffer_lut:
        rows.append(("", "buffers", "", "", "", "", "", "", f"{est.buffer_dsp:,}",
                     f"{est.buffer_bram18:,}", f"{est.buffer_lut:,}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    left = {1, 2, 4}
    lines = []
    for k, r in enumerate(rows):
        cells = [
            c.ljust(w) if i in left else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    lines.append("")
    lines.append(
        f"part       {est.part.name} ({est.part.family}) at {est.clock_mhz:g} MHz, "
        f"{est.io} I/O, {est.schedule}"
    )
    for res, (need, cap) in est.usage().items():
        pct = 100.0 * need / cap if cap else 0.0
        lines.append(f"{res:10s} {need:,} of {cap:,} ({pct:.1f}%)")
    lines.append(
        f"latency    {est.latency:,} cycles = {_time(est.latency_ns)}; a new {est.unit} every "
        f"{est.interval:,} cycle(s) = {est.inferences_per_second:,.0f} {est.unit}s/s"
    )
    lines += [f"           {note}" for note in est.notes]
    lines.append("           (model estimate, not synthesis; see docs/hls.md)")
    return "\n".join(lines)


def _time(ns: float) -> str:
    if ns < 1e3:
        return f"{ns:.1f} ns"
    if ns < 1e6:
        return f"{ns / 1e3:.2f} us"
    return f"{ns / 1e6:.2f} ms"
