"""`edgekit doctor`: which targets can be built, run and counted here, and what to install."""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
from typing import Any

from edgekit.targets import Target, list_targets, load_target


def _tool_present(command: str | None) -> bool:
    if not command:
        return True
    if command == "ziglang":
        return importlib.util.find_spec("ziglang") is not None
    return shutil.which(command) is not None


def _check(t: Target) -> dict[str, Any]:
    missing: list[str] = []
    build_ok = _tool_present(t.compiler.command) and _tool_present(t.compiler.linker)
    if not build_ok:
        missing += list(t.compiler.packages)
    run_ok = t.can_run and _tool_present(t.emulator.command)
    if t.can_run and not run_ok:
        missing += list(t.emulator.packages)
    return {
        "target": t.name,
        "build": build_ok,
        "run": run_ok,
        "count": run_ok and t.can_count,
        "emulator": t.emulator.machine or t.emulator.kind,
        "install": sorted(set(missing)),
    }


def _install_line(packages: list[str]) -> str:
    apt = [p for p in packages if not p.startswith("pip:")]
    pip = [p.split(":", 1)[1].strip() for p in packages if p.startswith("pip:")]
    parts = []
    if apt:
        parts.append("apt-get install " + " ".join(apt))
    if pip:
        parts.append("pip install " + " ".join(pip))
    return "; ".join(parts)


def cmd_doctor(args: argparse.Namespace) -> int:
    from edgekit.flash import flash_tools, format_pyocd_status, pyocd_status

    rows = [_check(load_target(name)) for name in list_targets()]
    tools = flash_tools()
    pyocd = pyocd_status()
    if args.json:
        print(json.dumps({"targets": rows, "flash_tools": tools, "pyocd": pyocd}, indent=2))
        return 0
    mark = {True: "yes", False: "-"}
    print(f"{'target':18s} {'build':6s} {'run':5s} {'count':6s} {'emulator':14s} missing")
    for r in rows:
        print(f"{r['target']:18s} {mark[r['build']]:6s} {mark[r['run']]:5s} {mark[r['count']]:6s} "
              f"{str(r['emulator']):14s} {_install_line(r['install'])}")
    missing = sorted({p for r in rows for p in r["install"]})
    print()
    if missing:
        print(f"to enable everything: {_install_line(missing)}")
    else:
        print("every target's toolchain and emulator is installed")
    print(f"\n{'flash tool':18s} {'here':5s} boards")
    for t in tools:
        print(f"{t['tool']:18s} {mark[t['installed']]:5s} {', '.join(t['boards'])}"
              + ("" if t["installed"] else f"  ({t['install']})"))
    print("\n" + format_pyocd_status(pyocd))
    return 0


def register(add: Any) -> None:
    p = add(
        "doctor",
        "which targets can be built, run under emulation and counted here, and what to install",
        "example:\n  edgekit doctor\n\n'build' needs the target's compiler, 'run' its emulator, "
        "'count' an emulator\nwith exact instruction counting (QEMU -icount).",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(fn=cmd_doctor)
