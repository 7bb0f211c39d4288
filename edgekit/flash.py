"""`edgekit flash`: put a built firmware image on its board with the board's own tool.

The command comes from the [flash] table of boards/<id>/board.toml (tool, argv template with
{elf} {hex} {bin} {esp} {probe} {probe_args}); see docs/boards.md. OpenOCD, picotool and
esptool run as commands; QEMU boards "flash" by starting QEMU with the board's UART on a TCP
port. pyOCD boards (ST-LINK and CMSIS-DAP probes) go through pyOCD's Python API instead, so the
progress comes back to our bar and errors come back as exceptions rather than scraped text; the
board's `pyocd flash ...` argv still says which target, options and image, and is what
--dry-run prints beside the API call.
"""

from __future__ import annotations

import importlib.util
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekit.errors import EdgekitError
from edgekit.firmware import load_manifest
from edgekit.progress import Progress, status
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


PYOCD_INSTALL = "pip install pyocd (or pip install 'edgekit[boards]')"


@dataclass(frozen=True)
class PyocdApi:
    """The pieces of pyOCD that `edgekit flash` calls; tests hand in fakes with the same shape."""

    connect_helper: Any  # pyocd.core.helpers.ConnectHelper
    file_programmer: Any  # pyocd.flash.file_programmer.FileProgrammer
    error: type[BaseException]  # pyocd.core.exceptions.Error, the base of what pyOCD raises
    version: str


def import_pyocd() -> PyocdApi:
    """pyOCD's API, or one clear error naming the install command when it is not installed."""
    try:
        import pyocd
        from pyocd.core.exceptions import Error
        from pyocd.core.helpers import ConnectHelper
        from pyocd.flash.file_programmer import FileProgrammer
    except ImportError as e:
        raise EdgekitError(f"pyOCD is not installed ({e})",
                           hint=f"install it with: {PYOCD_INSTALL}") from None
    return PyocdApi(ConnectHelper, FileProgrammer, Error, str(getattr(pyocd, "__version__", "?")))


def pyocd_available() -> bool:
    return importlib.util.find_spec("pyocd") is not None


@dataclass(frozen=True)
class PyocdCall:
    """What one `pyocd flash` argv asks for, as arguments of pyOCD's API."""

    target: str
    image: Path
    file_format: str
    unique_id: str | None
    options: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        """The API calls `edgekit flash` makes, with the exact values (the --dry-run line)."""
        opts = f", options={self.options!r}" if self.options else ""
        return (f"pyocd API: ConnectHelper.session_with_chosen_probe(unique_id={self.unique_id!r}, "
                f"target_override={self.target!r}{opts}); FileProgrammer(session).program("
                f"{str(self.image)!r}, file_format={self.file_format!r}); session.target.reset()")


def _option_value(text: str) -> Any:
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    try:
        return int(text, 0)
    except ValueError:
        return text


def pyocd_call(argv: list[str]) -> PyocdCall:
    """Read a filled-in `pyocd flash --target T [--uid U] [-O k=v ...] IMAGE` argv."""
    target, uid, image = None, None, None
    options: dict[str, Any] = {}
    args = iter(argv[2:])
    for arg in args:
        if arg in ("--target", "-t"):
            target = next(args, None)
        elif arg in ("--uid", "-u"):
            uid = next(args, None)
        elif arg == "-O":
            key, _, value = next(args, "").partition("=")
            options[key] = _option_value(value)
        elif arg.startswith("-"):
            raise EdgekitError(f"pyocd flash option {arg} has no pyOCD API equivalent here",
                               shlex.join(argv), hint="use --target, --uid or -O key=value")
        else:
            image = Path(arg)
    if argv[1:2] != ["flash"] or target is None or image is None:
        raise EdgekitError("a pyocd flash command needs 'pyocd flash --target NAME IMAGE'",
                           shlex.join(argv))
    fmt = image.suffix.lstrip(".").lower()
    return PyocdCall(target, image, "elf" if fmt == "axf" else fmt, uid, options)


def _probe_rows(probes: list[Any]) -> list[dict[str, str]]:
    return [{"unique_id": str(p.unique_id), "description": str(p.description)} for p in probes]


def pyocd_probes(api: PyocdApi | None = None) -> list[dict[str, str]]:
    """The debug probes pyOCD sees now (unique id and description), without waiting for one."""
    api = api or import_pyocd()
    try:
        probes = api.connect_helper.get_all_connected_probes(blocking=False,
                                                             print_wait_message=False)
    except api.error as e:
        raise EdgekitError(f"pyOCD could not list the debug probes: {e}") from None
    return _probe_rows(probes)


def pyocd_status() -> dict[str, Any]:
    """pyOCD for `edgekit doctor`: importable or not, its version, and the probes it sees now."""
    try:
        api = import_pyocd()
    except EdgekitError:
        return {"installed": False, "install": PYOCD_INSTALL}
    try:
        return {"installed": True, "version": api.version, "probes": pyocd_probes(api)}
    except EdgekitError as e:
        return {"installed": True, "version": api.version, "probes": None, "error": e.what}


def format_pyocd_status(st: dict[str, Any]) -> str:
    if not st["installed"]:
        return f"pyOCD (flashes the ST-LINK / CMSIS-DAP boards): not installed; {st['install']}"
    head = f"pyOCD {st['version']} (Python API)"
    if st["probes"] is None:
        return f"{head}: {st['error']}"
    if not st["probes"]:
        return f"{head}: no debug probe connected"
    listed = ", ".join(f"{p['unique_id']} ({p['description']})" for p in st["probes"])
    return f"{head}: {len(st['probes'])} debug probe(s): {listed}"


def program_with_pyocd(call: PyocdCall, board: Any, api: PyocdApi | None = None) -> None:
    """Flash `call.image` through pyOCD's API with a progress bar; errors as EdgekitError."""
    api = api or import_pyocd()
    method = board.flash
    notes = f"; {method.notes}" if method.notes else ""
    try:
        probes = api.connect_helper.get_all_connected_probes(
            blocking=False, unique_id=call.unique_id, print_wait_message=False)
    except api.error as e:
        raise EdgekitError(f"pyOCD could not list the debug probes: {e}", str(call.image)) from None
    if not probes:
        which = f" with unique id {call.unique_id!r}" if call.unique_id else ""
        raise EdgekitError(f"pyocd found no probe{which} to flash {board.name}", str(call.image),
                           hint="connect the board's debug USB port, or name the probe with "
                           "--probe (pyocd list shows the unique ids)" + notes)
    if len(probes) > 1:
        listed = ", ".join(f"{r['unique_id']} ({r['description']})" for r in _probe_rows(probes))
        # pyOCD would ask on stdin which one; a flash command must not stop and wait
        raise EdgekitError(f"{len(probes)} debug probes are connected: {listed}",
                           f"flashing {board.name}",
                           hint="name one with --probe UNIQUE_ID (a unique part of it is enough)")
    bar = Progress(f"pyocd: flashing {board.name}", 100, unit="%")
    try:
        session = api.connect_helper.session_with_chosen_probe(
            blocking=False, return_first=True, unique_id=call.unique_id,
            target_override=call.target, options=dict(call.options))
        if session is None:
            raise EdgekitError(f"pyocd found no probe to flash {board.name}", str(call.image),
                               hint="connect the board's debug USB port" + notes)
        with session:
            programmer = api.file_programmer(session, progress=lambda f: bar.update(
                min(100, max(0, round(float(f) * 100)))))
            programmer.program(str(call.image), file_format=call.file_format)
            # like `pyocd flash`: start the new image rather than leave the core halted
            session.target.reset()
    except (api.error, OSError, ValueError) as e:  # USB and image errors are not pyOCD's own
        raise EdgekitError(f"pyocd failed to flash {board.name} (target {call.target}): {e}",
                           str(call.image), hint=method.notes or None) from None
    finally:
        bar.close()


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
    method = board.flash
    if method.tool == "pyocd":
        call = pyocd_call(cmds[-1])
        lines = [call.describe(), "# the same as: " + lines[-1]]
        if dry_run:
            return lines
        _check_image(Path(build_dir), cmds, False)
        program_with_pyocd(call, board)
        return lines
    if dry_run:
        return lines
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


def tool_installed(method: FlashMethod) -> bool:
    """pyOCD counts when Python can import it; the other tools when they are on PATH."""
    if method.tool == "pyocd":
        return pyocd_available()
    return shutil.which(method.command[0]) is not None


def flash_tools() -> list[dict[str, Any]]:
    """Each flash tool the boards use: installed or not, which boards, what to install."""
    from edgekit.targets import list_boards

    tools: dict[str, dict[str, Any]] = {}
    for name in list_boards():
        method = load_board(name).flash
        if method is None:
            continue
        row = tools.setdefault(method.command[0], {
            "tool": method.command[0], "installed": tool_installed(method),
            "boards": [], "install": install_hint(method.packages),
        })
        if method.tool == "pyocd":
            row["install"] = f"install it with: {PYOCD_INSTALL}"
            row["api"] = True  # imported, not run: PATH does not matter
        row["boards"].append(name)
    return sorted(tools.values(), key=lambda r: r["tool"])
