"""`edgekit hls generate|verify|report`: the FPGA HLS target (Vitis HLS C++ from the same IR).

cmd_generate, cmd_verify and cmd_report read only attributes the main `generate`, `verify` and
`report` commands also define (model, name, output, force, samples, seed, reference, json) plus
the ones add_hls_options() adds, so cli.py can route `--target hls-vitis` to them unchanged.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.hls.parts import DEFAULT_CLOCK_MHZ, DEFAULT_PART, PARTS
from edgekit.progress import status

EPILOG = """\
examples:
  edgekit hls generate ad01_int8.tflite --part xczu7ev-ffvc1156-2-e --clock 200MHz -o build/ad_hls
  edgekit hls verify   ad01_int8.tflite --samples 200    C simulation vs TFLite Micro and the MCU C
  edgekit hls report   ad01_int8.tflite --reuse 1        per-layer DSP, BRAM, LUT, latency, II
  edgekit hls verify   shd.ekir --samples 20             spiking: vs the golden model and the MCU C

The project folder holds the top function and layers (<name>.cpp/.h), the ROMs (<name>_weights.h),
a testbench with golden vectors from TFLite Micro, run_hls.tcl (csim, csynth, cosim, export) for
Vitis HLS, and csim/ with edgekit's own ap_int.h / hls_stream.h for a g++-only simulation.
Resource and latency figures are a model, not synthesis (docs/hls.md).
"""


def add_hls_options(p: argparse.ArgumentParser) -> None:
    """The FPGA options; cli.py can add them to generate/verify/report for --target hls-vitis."""
    g = p.add_argument_group("FPGA (hls-vitis) options")
    g.add_argument(
        "--part",
        default=DEFAULT_PART,
        help=f"FPGA part (default {DEFAULT_PART}; known: {', '.join(sorted(PARTS))})",
    )
    g.add_argument(
        "--clock", default=f"{DEFAULT_CLOCK_MHZ:g}MHz", help="clock, e.g. 200MHz or 4ns"
    )
    g.add_argument(
        "--io",
        choices=["parallel", "stream"],
        default="parallel",
        help="layer interfaces: arrays (parallel) or hls::stream FIFOs (stream)",
    )
    g.add_argument(
        "--reuse",
        default="auto",
        help="multiplier reuse factor for every layer, or 'auto' (fit the part, balance the "
        "pipeline); default auto",
    )
    g.add_argument(
        "--tb-samples",
        type=int,
        default=10,
        help="golden vectors in the generated testbench (default 10)",
    )


def _options(args: argparse.Namespace) -> Any:
    from edgekit.hls.project import HlsOptions

    if getattr(args, "precision", "int8") != "int8":
        raise EdgekitError(
            "the hls-vitis target compiles int8 models only", hint="drop --precision"
        )
    return HlsOptions(
        part=getattr(args, "part", DEFAULT_PART),
        clock=getattr(args, "clock", f"{DEFAULT_CLOCK_MHZ:g}MHz"),
        io=getattr(args, "io", "parallel"),
        reuse=getattr(args, "reuse", "auto"),
        tb_samples=getattr(args, "tb_samples", 10),
        seed=getattr(args, "seed", 0) or 0,
    )


def cmd_generate(args: argparse.Namespace) -> int:
    from edgekit.hls.project import build_project, format_estimate, project_report, write_project

    t0 = time.monotonic()
    project = build_project(args.model, _options(args), getattr(args, "name", None),
                            getattr(args, "reference", None))
    out = write_project(project, args.output, force=getattr(args, "force", False))
    files = sorted([*project.files, "model.ekir", "report.json"])
    if getattr(args, "json", False):
        print(json.dumps({"output": str(out), "files": files, "report": project_report(project)},
                         indent=2))
        return 0
    print(format_estimate(project.estimate))
    print(
        f"\nwrote the Vitis HLS project {project.name} ({len(files)} files) to {out}/ in "
        f"{time.monotonic() - t0:.2f} s\n"
        f"  vendor tools:   cd {out} && vitis_hls -f run_hls.tcl\n"
        f"  g++ only:       make -C {out}/csim run"
    )
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from edgekit.hls.project import format_estimate, load_hls_model, plan
    from edgekit.hls.reuse import check_fit
    from edgekit.snn.ops import is_snn

    graph, _ = load_hls_model(args.model, getattr(args, "name", None))
    options = _options(args)
    if is_snn(graph):
        from edgekit.hls.snn import plan_snn

        est = plan_snn(graph, options)[1]
        schedule = est.schedule
    else:
        _, asm, est, _, _ = plan(graph, options, str(args.model))
        schedule = asm.schedule
    if getattr(args, "json", False):
        print(json.dumps({"schedule": schedule, **est.to_json()}, indent=2, sort_keys=True))
    else:
        print(format_estimate(est))
    sys.stdout.flush()
    check_fit(est, options.reuse)
    return 0


def _mismatches(ours: list[list[np.ndarray]], ref: list[list[np.ndarray]]) -> dict[str, int]:
    bad_samples = bad_elements = max_diff = 0
    for got, want in zip(ours, ref, strict=True):
        sample_bad = 0
        for g, w in zip(got, want, strict=True):
            a = g.reshape(-1).astype(np.int64)
            b = np.asarray(w).reshape(-1).astype(np.int64)
            diff = np.abs(a - b) if a.size == b.size else np.full(max(a.size, 1), 256)
            sample_bad += int(np.count_nonzero(diff))
            max_diff = max(max_diff, int(diff.max(initial=0)))
        bad_samples += sample_bad > 0
        bad_elements += sample_bad
    return {"mismatched_samples": bad_samples, "mismatched_elements": bad_elements,
            "max_abs_diff": max_diff}


# spike trains `verify` steps a spiking model through by default; a train is max(16, 2 D) steps
SNN_DEFAULT_TRAINS = 10


def _is_spiking(model: Path, name: str | None) -> bool:
    from edgekit.hls.snn import load_snn_ekir

    return load_snn_ekir(model, name) is not None


def cmd_verify(args: argparse.Namespace) -> int:
    from edgekit.hls.project import build_project, tflite_bytes
    from edgekit.pipeline import compile_graph
    from edgekit.reference.tflm import run_tflm
    from edgekit.runners.hls_csim import HlsCsimModel, run_testbench
    from edgekit.runners.host import HostModel
    from edgekit.verify import random_inputs

    samples = getattr(args, "samples", None)
    spiking = _is_spiking(args.model, getattr(args, "name", None))
    if samples is None:
        samples = SNN_DEFAULT_TRAINS if spiking else 200
    if samples < 1:
        raise EdgekitError("--samples must be at least 1")
    reference = getattr(args, "reference", None)
    project = build_project(args.model, _options(args), getattr(args, "name", None), reference,
                            require_fit=False)
    from edgekit.hls.snn import SnnHlsProject

    if isinstance(project, SnnHlsProject):
        return _verify_snn(project, samples, getattr(args, "seed", 0) or 0,
                           getattr(args, "json", False))
    inputs = random_inputs(project.graph, samples, getattr(args, "seed", 0) or 0)
    with status(f"C-simulating {project.name} ({project.options.io} I/O) on {samples} samples"):
        ours = HlsCsimModel.from_project(project).run_batch(inputs)
    with status("running the MCU C and TFLite Micro on the same samples"):
        mcu = HostModel(compile_graph(project.graph, "host"))
        checks: dict[str, dict[str, int] | None] = {
            "the edgekit MCU C": _mismatches(ours, [mcu.run(s) for s in inputs])
        }
        tflite = tflite_bytes(Path(args.model), reference)
        checks["TFLite Micro"] = _mismatches(ours, run_tflm(tflite, inputs)) if tflite else None
    with status("compiling and running the generated testbench"):
        tb = run_testbench(project.files, project.name)
    ok = tb.ok and all(c is None or c["mismatched_samples"] == 0 for c in checks.values())
    notes = [] if project.estimate.fits else [
        f"note: the design does not fit {project.estimate.part.name} (estimate); "
        "edgekit hls report shows by how much"
    ]
    if getattr(args, "json", False):
        print(json.dumps({
            "ok": ok, "samples": samples, "io": project.options.io,
            "against": {k: v for k, v in checks.items()},
            "testbench": {"ok": tb.ok, "output": tb.output.splitlines()[-1:]},
            "notes": notes,
        }, indent=2))
        return 0 if ok else 1
    for who, c in checks.items():
        if c is None:
            print(f"  vs {who:18s} skipped: no .tflite (pass --reference model.tflite)")
        elif c["mismatched_samples"] == 0:
            print(f"  vs {who:18s} bit-exact on every output byte of {samples} samples")
        else:
            print(f"  vs {who:18s} MISMATCH: {c['mismatched_samples']} samples, "
                  f"{c['mismatched_elements']} elements, max |diff| {c['max_abs_diff']}")
    last = tb.output.splitlines()[-1] if tb.output else "(no output)"
    print(f"  testbench             {'passed' if tb.ok else 'FAILED'}: {last}")
    for note in notes:
        print(note)
    print("bit-exact: HLS C simulation (host g++, edgekit csim headers)" if ok
          else "MISMATCH in the HLS C simulation")
    return 0 if ok else 1


def _verify_snn(project: Any, trains: int, seed: int, as_json: bool) -> int:
    """A spiking project: --samples random spike trains (reset before each), stepped in C
    simulation and compared step by step with the golden model and with the MCU C."""
    from edgekit.hls.snn import verify_snn

    with status(f"C-simulating {project.name} ({project.options.io} I/O) on {trains} spike "
                "trains"):
        res = verify_snn(project, trains, seed)
    notes = [] if project.estimate.fits else [
        f"note: the design does not fit {project.estimate.part.name} (estimate); "
        "edgekit hls report shows by how much"
    ]
    if as_json:
        print(json.dumps({**res, "io": project.options.io, "notes": notes}, indent=2))
        return 0 if res["ok"] else 1
    for who, c in res["against"].items():
        if c["mismatched_steps"] == 0:
            print(f"  vs {who:26s} bit-exact on every output of {res['steps']} steps")
        else:
            print(f"  vs {who:26s} MISMATCH: {c['mismatched_steps']} steps, first at step "
                  f"{c['first_mismatch_step']}")
    tb = res["testbench"]
    print(f"  testbench                     {'passed' if tb['ok'] else 'FAILED'}: "
          f"{(tb['output'] or ['(no output)'])[-1]}")
    for note in notes:
        print(note)
    print("bit-exact: HLS C simulation (host g++, edgekit csim headers)" if res["ok"]
          else "MISMATCH in the HLS C simulation")
    return 0 if res["ok"] else 1


def register(add: Any) -> None:
    p = add(
        "hls",
        "FPGA: Vitis HLS C++ project, host C simulation and resource estimate",
        EPILOG,
    )
    sub = p.add_subparsers(dest="hls_command", metavar="ACTION")

    def action(name: str, help_: str) -> argparse.ArgumentParser:
        q = sub.add_parser(name, help=help_, description=help_, epilog=EPILOG,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        q.add_argument("model", type=Path,
                       help="a .tflite model or an .ekir file (int8, or spiking)")
        q.add_argument("--name", help="C++ identifier of the top function (default: file name)")
        add_hls_options(q)
        return q

    q = action("generate", "write a Vitis HLS project: C++, ROMs, testbench, run_hls.tcl")
    q.add_argument("-o", "--output", required=True, type=Path, help="output folder")
    q.add_argument("--force", action="store_true", help="replace a folder edgekit did not write")
    q.add_argument("--seed", type=int, default=0, help="seed of the testbench inputs")
    q.add_argument("--reference", type=Path, help="the .tflite of an .ekir input (golden vectors)")
    q.add_argument("--json", action="store_true", help="print the report as JSON")
    q.set_defaults(fn=cmd_generate)

    q = action("verify", "C-simulate on the host and compare with TFLite Micro and the MCU C")
    q.add_argument("--samples", type=int, default=None,
                   help="random inputs (default 200), or spike trains of a spiking model "
                   "(default 10)")
    q.add_argument("--seed", type=int, default=0, help="seed of the random inputs (default 0)")
    q.add_argument("--reference", type=Path, help="the .tflite to compare with, for .ekir input")
    q.add_argument("--json", action="store_true", help="print the result as JSON")
    q.set_defaults(fn=cmd_verify)

    q = action("report", "estimated DSP, BRAM, LUT, latency and II per layer")
    q.add_argument("--json", action="store_true", help="machine-readable output")
    q.set_defaults(fn=cmd_report)

    def no_action(args: argparse.Namespace) -> int:
        p.print_help()
        return 2

    p.set_defaults(fn=no_action)
