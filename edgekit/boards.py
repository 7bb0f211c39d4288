"""The board catalogue behind `edgekit boards`: one row per boards/<id>/board.toml."""

from __future__ import annotations

import shutil
from typing import Any

from edgekit.errors import EdgekitError
from edgekit.firmware import _regions, kib, target_for_board
from edgekit.flash import tool_installed
from edgekit.targets import Board, list_boards, load_board


def _memory(board: Board) -> tuple[int | None, int | None]:
    """(flash, RAM) bytes the firmware may use: the regions behind EK_CODE/EK_CONST and EK_RAM."""
    if board.linker_script is None:
        return None, None
    regions = _regions(board)
    flash = {regions[a] for a in ("EK_CODE", "EK_CONST") if a in regions}
    ram = regions.get("EK_RAM")
    return sum(size for _, size in flash), ram[1] if ram else None


def board_row(board: Board) -> dict[str, Any]:
    try:
        target = target_for_board(board)
        target_name, cc = target.name, target.compiler.command
    except EdgekitError:
        target_name, cc = None, None
    flash, ram = _memory(board)
    if board.flash is not None:
        method = board.flash.tool
    elif board.machine:
        method = "none (emulated runner: --emulate)"
    else:
        method = "none"
    return {
        "id": board.name,
        "kind": board.kind,
        "core": board.core or target_name,
        "mcu": board.mcu,
        "target": target_name,
        "clock_hz": board.clock_hz,
        "flash_bytes": flash,
        "ram_bytes": ram,
        "flash_method": method,
        "serial": board.uart.kind if board.uart else None,
        "counter": board.counter.kind if board.counter else None,
        "firmware": board.uart is not None,  # `edgekit build` can target it
        "toolchain_installed": bool(cc) and shutil.which(cc or "") is not None,
        "flash_tool_installed": board.flash is not None and tool_installed(board.flash),
        "description": board.description,
    }


def catalogue() -> list[dict[str, Any]]:
    """Every board, physical ones first, each group by id."""
    rows = [board_row(load_board(name)) for name in list_boards()]
    return sorted(rows, key=lambda r: (r["kind"] != "physical", r["id"]))


def format_catalogue(rows: list[dict[str, Any]]) -> str:
    head = (f"{'board':17s} {'kind':8s} {'core':17s} {'clock':>8s} {'flash':>9s} {'RAM':>9s}  "
            f"{'flash method':17s} build")
    lines = [head]
    for r in rows:
        clock = f"{r['clock_hz'] / 1e6:g} MHz" if r["clock_hz"] else "-"
        flash = kib(r["flash_bytes"]) if r["flash_bytes"] else "-"
        ram = kib(r["ram_bytes"]) if r["ram_bytes"] else "-"
        if not r["firmware"]:
            build = "runner only"
        else:
            build = "yes" if r["toolchain_installed"] else "toolchain missing"
        method = r["flash_method"].split(" ")[0]
        if r["flash_method"] != "none" and not method.startswith("none"):
            method += "" if r["flash_tool_installed"] else " (absent)"
        lines.append(f"{r['id']:17s} {r['kind']:8s} {str(r['core'] or '-'):17s} {clock:>8s} "
                     f"{flash:>9s} {ram:>9s}  {method:17s} {build}")
    lines += [
        "",
        "build: `edgekit build MODEL --board ID -o DIR` writes a firmware project for boards",
        "with a serial port; 'runner only' boards serve --emulate / bench --target. One board's",
        "details: boards/<id>/board.toml; the format and every board: docs/boards.md.",
    ]
    return "\n".join(lines)
