"""`edgekit boards`, `edgekit build`, `edgekit flash` and the board side of `edgekit bench`.

`edgekit bench DIR --port PORT` (DIR written by `edgekit build`) is routed by cli.route() to
`bench-board`, so the model path of `edgekit bench MODEL` keeps working unchanged.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from edgekit.errors import EdgekitError


def cmd_boards(args: argparse.Namespace) -> int:
    from edgekit.boards import catalogue, format_catalogue

    rows = catalogue()
    print(json.dumps(rows, indent=2) if args.json else format_catalogue(rows))
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    from edgekit.firmware import build_project, format_build

    result = build_project(args.model, args.board, args.output, args.name, args.force,
                           compile_now=not args.no_compile, precision=args.precision)
    if args.json:
        print(json.dumps({"output": str(result.out), "built": result.built,
                          "missing": result.missing, "regions": result.regions,
                          "manifest": result.manifest}, indent=2))
    else:
        print(format_build(result))
    return 0


def cmd_flash(args: argparse.Namespace) -> int:
    from edgekit.flash import run_flash

    lines = run_flash(args.folder, args.probe, args.dry_run)
    if args.dry_run:
        print("\n".join(lines))
    return 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_qemu(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Start the QEMU board of a build folder with its UART on a free TCP port."""
    import shutil

    from edgekit.flash import flash_commands, install_hint

    port = _free_port()
    cmds, board = flash_commands(folder, str(port))
    if board.flash is None or board.flash.tool != "qemu":
        raise EdgekitError(f"--qemu needs a QEMU board; {board.name} is a physical board",
                           str(folder), hint="pass --port with the board's serial port")
    argv = cmds[-1]
    if shutil.which(argv[0]) is None:
        raise EdgekitError(f"{argv[0]} not found on PATH",
                           hint=install_hint(board.flash.packages))
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    time.sleep(0.2)
    if proc.poll() is not None:
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        raise EdgekitError(f"QEMU did not start: {err.strip()[-500:]}", " ".join(argv))
    return proc, f"socket://127.0.0.1:{port}"


def cmd_bench_board(args: argparse.Namespace) -> int:
    from edgekit.serial_bench import format_serial_bench, run_bench

    if bool(args.port) == bool(args.qemu):
        raise EdgekitError("give exactly one of --port PORT and --qemu", str(args.folder),
                           hint="e.g. --port /dev/ttyACM0, or --qemu for a qemu-* board")
    proc = None
    port = args.port
    try:
        if args.qemu:
            proc, port = start_qemu(args.folder)
        result = run_bench(args.folder, port, samples=args.samples, runs=args.runs,
                           warmup=args.warmup, per_layer=not args.no_layers, seed=args.seed,
                           input_file=args.input, timeout_s=args.timeout)
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    print(json.dumps(result, indent=2) if args.json else format_serial_bench(result))
    return 0 if result["bit_exact"] else 1


def register(add: Any) -> None:
    p = add(
        "boards",
        "the board catalogue: core, clock, flash, RAM, flash method, virtual or physical",
        "examples:\n  edgekit boards\n  edgekit boards --json\n\nEach board is "
        "boards/<id>/board.toml; see docs/boards.md.",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(fn=cmd_boards)

    p = add(
        "build",
        "a standalone firmware project (Makefile + CMake) with the model and a serial benchmark",
        "examples:\n"
        "  edgekit build kws_ref_model.tflite --board nucleo-l4r5zi -o build/kws_nucleo\n"
        "  edgekit build ad01_int8.tflite --board qemu-mps2-an386 -o build/ad_qemu\n\n"
        "The model's constants and RAM (arena, I/O buffers, stack) are checked against the\n"
        "board's memory map first, the compiled objects again before linking; the linker's\n"
        "usage per memory region is printed after. Without the board's toolchain the project\n"
        "is still written and the message says what to install.",
    )
    p.add_argument("model", type=Path, help="a .tflite, .onnx or .ekir model")
    p.add_argument("--board", required=True, help="board id (see `edgekit boards`)")
    p.add_argument("-o", "--output", required=True, type=Path, help="project folder")
    p.add_argument("--name", help="C identifier prefix for the generated API")
    p.add_argument("--force", action="store_true",
                   help="replace the output folder even if edgekit did not write it")
    p.add_argument("--no-compile", action="store_true", help="only write the project")
    p.add_argument("--precision", choices=["int8", "fp16", "fp32"], default="int8",
                   help="int8 (quantized model, default), or fp16 / fp32 from a float32 model")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(fn=cmd_build)

    p = add(
        "flash",
        "put a built firmware on its board (pyocd, openocd, picotool, esptool; QEMU boards run)",
        "examples:\n  edgekit flash build/kws_nucleo\n  edgekit flash build/kws_nucleo --dry-run\n"
        "  edgekit flash build/kws_esp --probe /dev/ttyUSB1\n\n--probe selects the probe "
        "(pyOCD unique id or a unique part of it, OpenOCD serial\nnumber, picotool --ser, "
        "esptool serial port; the TCP port for QEMU boards).\nST-LINK and CMSIS-DAP boards are "
        "flashed through pyOCD's Python API (pip install pyocd);\n--dry-run prints the exact "
        "commands (for pyOCD, the API call and the same pyocd CLI line).",
    )
    p.add_argument("folder", type=Path, help="a folder written by edgekit build")
    p.add_argument("--probe", help="probe / serial port / TCP port, depending on the tool")
    p.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    p.set_defaults(fn=cmd_flash)

    p = add(
        "bench-board",
        "on-board benchmark over the serial port (what `edgekit bench DIR --port` runs)",
        "examples:\n  edgekit bench build/kws_nucleo --port /dev/ttyACM0\n"
        "  edgekit bench build/ad_qemu --qemu                (starts QEMU itself)\n"
        "  edgekit bench build/ad_qemu --port socket://127.0.0.1:5555   (after edgekit flash)\n\n"
        "Loads inputs, runs --runs timed inferences per sample, reads per-layer timings and the\n"
        "outputs, and compares them byte for byte with the host build. Exit code 1 on a\n"
        "mismatch. Physical boards report cycles and ms at the board clock; QEMU boards\n"
        "executed instructions (-icount).",
    )
    p.add_argument("folder", type=Path, help="a folder written by edgekit build")
    p.add_argument("--port", help="serial device or pyserial URL (socket://host:port)")
    p.add_argument("--qemu", action="store_true", help="run a qemu-* board's image under QEMU")
    p.add_argument("--samples", type=int, default=3, help="input samples (default 3)")
    p.add_argument("--runs", type=int, default=10, help="timed inferences per sample (default 10)")
    p.add_argument("--warmup", type=int, default=1, help="untimed runs first (default 1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random inputs")
    p.add_argument("--input", type=Path, help=".npy with one input or a batch (instead of random)")
    p.add_argument("--no-layers", action="store_true", help="skip the per-layer pass")
    p.add_argument("--timeout", type=float, default=20.0, help="seconds to wait for a line")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(fn=cmd_bench_board)
