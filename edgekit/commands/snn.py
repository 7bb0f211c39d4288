"""`edgekit snn convert|generate|verify|bench`: spiking networks with learned delays.

See docs/snn.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path
from typing import Any

from edgekit.errors import EdgekitError
from edgekit.progress import track

EPILOG = """\
examples:
  edgekit snn convert ckpt.pt --config model.json -o shd.ekir     SNN-delays checkpoint (.pt/.npz)
  edgekit snn convert net.nir --dt 0.001 -o net.ekir               NIR graph, 1 ms time step
  edgekit snn quantize shd.ekir --calib spikes.npz -o shd_q.ekir   re-quantise on real spikes
  edgekit snn generate shd.ekir --target cortex-m4 --snn-kernel auto -o build/shd
  edgekit snn verify shd.ekir --target cortex-m4 --emulate         C vs golden model, bit for bit
  edgekit snn bench shd.ekir --target cortex-m4 --input-rate 0.05  instructions per time step

--snn-kernel takes auto, dense, gather or scatter, or a comma list with one per layer.
"""


def _load_ekir(path: Path) -> Any:
    from edgekit.ir import serialize
    from edgekit.snn import ops

    if not path.is_file():
        raise EdgekitError("file not found", str(path))
    data = path.read_bytes()
    if data[:4] != serialize.MAGIC:
        raise EdgekitError(
            "expected an .ekir file", str(path), hint="make one with `edgekit snn convert`"
        )
    graph = serialize.loads(data, str(path))
    if not ops.is_snn(graph):
        raise EdgekitError(
            "not a spiking network", str(path), hint="use `edgekit generate` for this model"
        )
    ops.layers(graph)
    return graph


def _name(path: Path, given: str | None) -> str:
    from edgekit.pipeline import model_name

    return given or model_name(path)


def cmd_convert(args: argparse.Namespace) -> int:
    from edgekit.ir import serialize
    from edgekit.snn import importers
    from edgekit.snn.calibrate import attach_float
    from edgekit.snn.quantize import quantize
    from edgekit.snn.verify import compare_float

    src = Path(args.checkpoint)
    if src.suffix.lower() in {".tflite", ".onnx", ".ekir"}:
        raise EdgekitError(
            "convert reads spiking networks (an SNN-delays/DCLS checkpoint .pt or .npz with "
            "--config, or a NIR graph .nir); this is a feed-forward model",
            str(src),
            hint="generate, verify and bench take .tflite/.onnx/.ekir directly; "
            "float models go through `edgekit quantize` first",
        )
    if src.suffix == ".nir":
        if args.dt is None:
            raise EdgekitError("a NIR graph needs the time step", str(src), hint="--dt SECONDS")
        net = importers.read_nir(src, args.dt)
    else:
        if args.config is None:
            raise EdgekitError(
                "an SNN-delays checkpoint needs its config", str(src), hint="--config model.json"
            )
        net = importers.read_snn_delays(src, args.config)
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    out = Path(args.output)
    graph = quantize(net, _name(out, args.name), {"source_sha256": digest})
    graph.meta["snn"].update({k: v for k, v in net.meta.items() if k != "source_format"})
    graph.meta["source_format"] = net.meta.get("source_format", "snn")
    agreement = compare_float(net, graph, args.samples, args.steps, args.input_rate, args.seed)
    graph.meta["snn"]["float_agreement"] = agreement
    attach_float(graph, net)  # so `edgekit quantize --calib` can re-quantise on real spikes
    out.parent.mkdir(parents=True, exist_ok=True)
    serialize.save(graph, out)
    sig = float(net.meta.get("max_abs_sig", 0.0))
    if args.json:
        result = {"output": str(out), "agreement": agreement, "max_abs_sig": sig}
        print(json.dumps(result, indent=2))
        return 0
    print(
        f"{src.name}: {net.n_inputs} inputs, layers "
        + ", ".join(f"{la.n_out} {la.neuron} (D={la.max_delay})" for la in net.layers)
    )
    if sig > 0.5:
        print(f"note: SIG is up to {sig:.2f}; one tap per synapse assumes it was annealed to 0")
    print(
        f"float vs quantized on {agreement['samples']} random trains of {agreement['steps']} steps"
        f" at rate {agreement['input_rate']:g}: readout argmax agrees on "
        f"{100 * agreement['argmax_agreement']:.0f}%; spikes per layer float "
        f"{agreement['float_spikes']} vs quantized {agreement['quantized_spikes']}"
    )
    print(f"wrote {out}")
    return 0


def cmd_quantize(args: argparse.Namespace) -> int:
    """`edgekit quantize net.ekir --calib spikes.npz -o net_q.ekir` for a spiking .ekir.

    The float network `convert` kept is re-quantised with the weight clipping that agrees best
    with it on the calibration spike trains (edgekit/snn/calibrate.py). Without --calib the file
    is already quantised (convert did it with unclipped scales) and is written unchanged.
    """
    from edgekit.commands.quantize import write_atomic
    from edgekit.ir import serialize
    from edgekit.snn import calibrate

    src, out = Path(args.model), Path(args.output)
    graph = _load_ekir(src)
    if args.calib is None:
        write_atomic(out, src.read_bytes())
        note = "already quantized by `edgekit convert` (no --calib: written unchanged)"
        if args.json:
            print(json.dumps({"output": str(out), "spiking": True, "note": note}, indent=2))
        else:
            print(f"{src}: {note}\nwrote {out}")
        return 0
    net = calibrate.float_of(graph, str(src))
    trains = calibrate.load_calib(args.calib, net.n_inputs, args.limit)
    meta = {k: v for k, v in graph.meta.items() if k not in {"snn", "source_format", "lowered"}}
    qgraph, report = calibrate.calibrate(net, trains, args.name or graph.name, meta)
    kept = {"float_agreement", "calibration", "weight_clip_percentile", "float_layers"}
    for k, v in graph.meta["snn"].items():
        if k not in kept:
            qgraph.meta["snn"].setdefault(k, v)
    qgraph.meta["source_format"] = graph.meta.get("source_format", "snn")
    write_atomic(out, serialize.dumps(qgraph))
    if args.json:
        print(json.dumps({"output": str(out), "spiking": True, "calibration": report}, indent=2))
        return 0
    print(f"{src}: {len(trains)} calibration trains of {report['steps']} steps")
    for c in report["candidates"]:
        mark = "  <- chosen" if c["clip_percentile"] == report["chosen_clip_percentile"] else ""
        print(
            f"  weight clip at the {c['clip_percentile']:g}th percentile: readout argmax agrees "
            f"on {100 * c['argmax_agreement']:.0f}%, spikes per layer float {c['float_spikes']} "
            f"vs quantized {c['quantized_spikes']}{mark}"
        )
    print(f"wrote {out}")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from edgekit.pipeline import write_output
    from edgekit.snn.compile import compile_snn

    graph = _load_ekir(Path(args.model))
    if args.name:
        graph.name = args.name
    compiled = compile_snn(
        graph, args.target, args.snn_kernel, _rate(args.input_rate), args.harness_steps,
        args.ram_budget,
    )  # fmt: skip
    report = compiled.report()
    report["options"] = {
        "target": args.target, "snn_kernel": args.snn_kernel, "input_rate": _rate(args.input_rate),
        "ram_budget": args.ram_budget,
    }  # fmt: skip
    # trace the firmware back (issue 10): the tool version, the .ekir read here, and the
    # checkpoint or NIR file that `snn convert` made it from
    from edgekit import __version__

    report["edgekit_version"] = __version__
    report["source_sha256"] = hashlib.sha256(Path(args.model).read_bytes()).hexdigest()
    report["origin_sha256"] = graph.meta.get("source_sha256", "")
    out = write_output(compiled.as_compiled(), args.output, report, force=args.force)
    if args.json:
        print(json.dumps({"output": str(out), "report": report}, indent=2))
        return 0
    for la in report["layers"]:
        est = la.get("estimates", {})
        costs = ", ".join(f"{k} {v:,.0f}" for k, v in est.items())
        print(
            f"{la['synapse']:14s} {la['n_in']:4d} -> {la['n_out']:4d} {la['neuron']:8s} "
            f"D={la['max_delay']:<3d} {la['kernel']:8s} state {la['state_bytes']:6d} B"
            + (f"   est. instr/step: {costs}" if costs else "")
        )
    print(
        f"RAM: state {report['state_bytes']} B + step activations {report['arena_bytes']} B; "
        f"constants {report['const_bytes']} B (flash)"
    )
    name = compiled.generated.name
    print(f"wrote {len(compiled.generated.files)} files, model.ekir and report.json to {out}/")
    print(f"API: {name}_step(spikes_in, out), {name}_run_steps(...), {name}_reset() in {name}.h")
    return 0


def _rate(text: str) -> float:
    try:
        rate = float(text)
    except ValueError:
        raise EdgekitError(f"--input-rate '{text}' is not a number") from None
    if not 0.0 <= rate <= 1.0:
        raise EdgekitError(f"--input-rate {rate:g} must lie in [0, 1]")
    return rate


def _kernels(spec: str) -> list[str]:
    return ["dense", "gather", "scatter"] if spec == "all" else [spec]


def cmd_verify(args: argparse.Namespace) -> int:
    from edgekit.snn.verify import verify

    graph = _load_ekir(Path(args.model))
    if args.target != "host" and not args.emulate:
        raise EdgekitError(
            f"verifying target '{args.target}' needs --emulate", hint="or use --target host"
        )
    where = f"{args.target}{' (emulated) + host' if args.emulate else ''}"
    results = [
        verify(
            graph,
            args.target,
            k,
            args.emulate,
            args.steps,
            _rate(args.input_rate),
            args.seed,
            ram_budget=args.ram_budget,
        )
        for k in track(_kernels(args.snn_kernel), f"verifying kernel choices on {where}")
    ]
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for r in results:
            status = "bit-exact" if r["match"] else (
                f"MISMATCH in {r['mismatched_steps']} steps, first at step "
                f"{r['first_mismatch_step']}"
                + ("" if r["host_match"] else " (the host C differs too)")
            )  # fmt: skip
            print(
                f"{where:24s} kernels {','.join(r['kernels']):26s} {r['steps']} steps "
                f"(reset half way): {status}"
            )
    return 0 if all(r["match"] for r in results) else 1


def cmd_bench(args: argparse.Namespace) -> int:
    from edgekit.snn.verify import bench

    graph = _load_ekir(Path(args.model))
    rates = [_rate(r) for r in str(args.input_rate).split(",")]
    runs = [(r, k) for r in rates for k in _kernels(args.snn_kernel)]
    rows = [
        bench(graph, args.target, k, r, args.steps, args.seed, ram_budget=args.ram_budget)
        for r, k in track(runs, f"counting instructions under the {args.target} emulator")
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'rate':>5s} {'kernels':26s} {'instr/step':>11s}  per layer{'':22s} state+act RAM")
    for r in rows:
        layers = " ".join(f"{v:,.0f}" for v in r["layer_instructions_per_step"])
        print(
            f"{r['input_rate']:5.2f} {','.join(r['kernels']):26s} "
            f"{r['instructions_per_step']:11,.0f}  {layers:31s} "
            f"{r['state_bytes']} + {r['arena_bytes']} B"
        )
    return 0


def register(add: Any) -> None:
    p = add(
        "snn",
        "spiking networks with learned synaptic delays: convert, quantize, generate, verify, bench",
        EPILOG,
    )  # fmt: skip
    sub = p.add_subparsers(dest="snn_command", metavar="SUBCOMMAND")

    def sub_add(name: str, help_: str) -> argparse.ArgumentParser:
        return sub.add_parser(
            name, help=help_, description=help_, epilog=EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )  # fmt: skip

    def common(q: argparse.ArgumentParser, default_kernel: str) -> None:
        q.add_argument("model", type=Path, help="an .ekir file written by `edgekit snn convert`")
        q.add_argument("--target", default="host", help="target name (default host)")
        q.add_argument(
            "--snn-kernel",
            default=default_kernel,
            help=f"auto|dense|gather|scatter or one per layer, comma separated "
            f"(default {default_kernel})",
        )
        q.add_argument(
            "--input-rate",
            default="0.05",
            help="input spike probability per step (default 0.05); bench takes a comma list",
        )
        q.add_argument("--seed", type=int, default=0, help="seed of the random spike trains")
        q.add_argument(
            "--ram-budget",
            type=int,
            metavar="BYTES",
            help="auto: bytes of state (membranes, delay lines) the kernels may use",
        )
        q.add_argument("--json", action="store_true", help="machine-readable output")

    c = sub_add("convert", "SNN-delays checkpoint (.pt/.npz + --config) or NIR graph -> .ekir")
    c.add_argument("checkpoint", type=Path, help=".pt, .npz or .nir")
    c.add_argument("--config", type=Path, help="SNN-delays config as JSON")
    c.add_argument("--dt", type=float, help="time step in seconds (NIR)")
    c.add_argument("-o", "--output", type=Path, required=True, help="the .ekir file to write")
    c.add_argument("--name", help="C identifier prefix (default: output file name)")
    c.add_argument("--samples", type=int, default=20, help="random trains for the float check")
    c.add_argument("--steps", type=int, default=100, help="steps per random train")
    c.add_argument("--input-rate", type=float, default=0.05,
                   help="spike probability per step of the check's random trains (default 0.05)")
    c.add_argument("--seed", type=int, default=0, help="seed of the random trains (default 0)")
    c.add_argument("--json", action="store_true", help="machine-readable summary")
    c.set_defaults(fn=cmd_convert)

    qz = sub_add("quantize", "re-quantise a converted .ekir on calibration spike trains")
    qz.add_argument("model", type=Path, help="an .ekir file written by `edgekit convert`")
    qz.add_argument("-o", "--output", type=Path, required=True, help="the .ekir file to write")
    qz.add_argument(
        "--calib", type=Path, help=".npz of 0/1 spike trains [N, T, n_inputs] (array 'spikes')"
    )
    qz.add_argument("--limit", type=int, help="use at most this many calibration trains")
    qz.add_argument("--name", help="C identifier prefix (default: the model's name)")
    qz.add_argument("--json", action="store_true", help="machine-readable summary")
    qz.set_defaults(fn=cmd_quantize)

    g = sub_add("generate", "C with a per-time-step API for an .ekir spiking network")
    common(g, "auto")
    g.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    g.add_argument("--name", help="C identifier prefix (default: the model's name)")
    g.add_argument(
        "--harness-steps",
        type=int,
        default=64,
        help="time steps per sample of the firmware harness (default 64)",
    )
    g.add_argument("--force", action="store_true", help="replace a folder edgekit did not write")
    g.set_defaults(fn=cmd_generate)

    v = sub_add("verify", "generated C against the golden integer model, bit for bit")
    common(v, "all")
    v.add_argument("--emulate", action="store_true", help="cross-compile and run under QEMU")
    v.add_argument("--steps", type=int, default=256, help="time steps (reset half way)")
    v.set_defaults(fn=cmd_verify)

    b = sub_add("bench", "executed instructions per time step on an emulated target")
    common(b, "all")
    b.add_argument("--steps", type=int, default=64, help="measured steps (after a warm-up)")
    b.set_defaults(fn=cmd_bench)

    def need_sub(a: argparse.Namespace) -> int:
        p.print_help()
        return 2

    p.set_defaults(fn=need_sub)
