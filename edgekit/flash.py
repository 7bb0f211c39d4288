"""`edgekit flash`: put a built firmware image on its board with the board's own tool.

The command comes from the [flash] table of boards/<id>/board.toml (tool, argv template with
{elf} {hex} {bin} {esp} {probe} {probe_args}); see docs/boards.md. The tools are pyOCD (ST-LINK
and CMSIS-DAP probes), OpenOCD, picotool and esptool, run as commands; QEMU boards "flash" by
starting QEMU with the board's UART on a TCP port.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

from edgekit.errors import EdgekitError
from edgekit.firmware import load_manifest
from edgekit.progress import status
from edgekit.targets import FlashMethod, load_board

# What the tools print when no probe / board is attached: turned into one clear message.
_NO_PROBE = re.compile(
    r"no (connected |available )?(debug )?probes?|no device found|unable to find (a )?device|"
    r"no accessible rp-series devices|failed to connect to esp|could not open port|"
    r"unable to open (ftdi|jlink|cmsis-dap)|error: no j-link",
    re.I,
)


def install_hint(packages: tuple[str, ...]) -> str:
    """ "install it with: apt-get install ... and pip install ..." for a tool's packages."""
    from edgekit.runners.emulated import _install_hint

    return _install_hint(packages)


def _fill(template: tuple[str, ...], values: dict[str, str], method: FlashMethod,
          probe: str | None) -> list[str]:
    argv: list[str] = []
    for arg in template:
        if arg == "{probe_args}":
            if probe is not None:
                argv += [a.format(**values) for a in method.probe_args]
            continue
        argv.append(arg.format(**values))
    return argv


def flash_commands(build_dir: Path, probe: str | None = None) -> tuple[list[list[str]], Any]:
    """The exact argv lists `edgekit flash` runs (prepare step first, if any), and the board."""
    build_dir = Path(build_dir).resolve()
    m = load_manifest(build_dir)
    board = load_board(m["board"])
    method = board.flash
    if method is None:
        raise EdgekitError(f"board {board.name} has no [flash] method", str(board.path))
    values = {
        "elf": str(build_dir / "firmware.elf"),
        "hex": str(build_dir / "firmware.hex"),
        "bin": str(build_dir / "firmware.bin"),
        "esp": str(build_dir / "firmware.esp.bin"),
        "probe": probe if probe is not None else (method.probe_default or ""),
    }
    if not values["probe"] and "{probe}" in " ".join(method.command + method.prepare):
        raise EdgekitError(f"flashing {board.name} needs --probe", str(build_dir),
                           hint=method.notes or None)
    cmds = []
    if method.prepare:
        cmds.append(_fill(method.prepare, values, method, probe))
    cmds.append(_fill(method.command, values, method, probe))
    return cmds, board


def _check_image(build_dir: Path, cmds: list[list[str]], prepared: bool) -> None:
    images = {"firmware.elf", "firmware.hex", "firmware.bin"}
    for arg in cmds[-1 if prepared else 0]:
        for token in re.split(r"\s+", arg):
            p = Path(token)
            if p.name in images and not p.is_file():
                raise EdgekitError(
                    f"{p.name} has not been built", str(build_dir),
                    hint=f"install the toolchain and run make -C {build_dir} (or edgekit build "
                    "again)",
                )


def run_flash(build_dir: Path, probe: str | None = None, dry_run: bool = False) -> list[str]:
    """Run (or, with dry_run, only return) the flash commands; returns them as shell lines."""
    cmds, board = flash_commands(build_dir, probe)
    lines = [shlex.join(c) for c in cmds]
    if dry_run:
        return lines
    method = board.flash
    _check_image(Path(build_dir), cmds, bool(method.prepare))
    for argv in cmds:
        if shutil.which(argv[0]) is None:
            raise EdgekitError(
                f"{argv[0]} not found on PATH: it flashes board {board.name}",
                hint=install_hint(method.packages)
                + (f"; {method.notes}" if method.notes else ""),
            )
    for argv in cmds:
        if method.tool == "qemu":
            print(f"QEMU serves the board's UART on socket://127.0.0.1:{argv_port(argv)}; "
                  "stop it with Ctrl-C", flush=True)
        # QEMU serves the UART in the foreground until Ctrl-C: no spinner over it
        quiet = False if method.tool == "qemu" else None
        with status(f"{method.tool}: flashing {board.name}", enabled=quiet):
            proc = subprocess.run(argv, capture_output=method.tool != "qemu", text=True,
                                  stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            out = ((proc.stderr or "") + (proc.stdout or "")).strip()
            if _NO_PROBE.search(out):
                raise EdgekitError(
                    f"{method.tool} found no probe or board to flash {board.name}",
                    shlex.join(argv),
                    hint="connect the board's debug USB port"
                    + (", or name the probe with --probe" if method.probe_args else "")
                    + (f"; {method.notes}" if method.notes else ""),
                )
            tail = "\n".join(out.splitlines()[-15:])
            raise EdgekitError(f"{method.tool} failed (exit code {proc.returncode}):\n{tail}",
                               shlex.join(argv), hint=method.notes or None)
    return lines


def argv_port(argv: list[str]) -> str:
    found = re.search(r"tcp:[\d.]+:(\d+)", " ".join(argv))
    return found.group(1) if found else "?"


def flash_tools() -> list[dict[str, Any]]:
    """Each flash tool the boards use: installed or not, which boards, what to install."""
    from edgekit.targets import list_boards

    tools: dict[str, dict[str, Any]] = {}
    for name in list_boards():
        method = load_board(name).flash
        if method is None:
            continue
        row = tools.setdefault(method.command[0], {
            "tool": method.command[0], "installed": shutil.which(method.command[0]) is not None,
            "boards": [], "install": install_hint(method.packages),
        })
        row["boards"].append(name)
    return sorted(tools.values(), key=lambda r: r["tool"])
