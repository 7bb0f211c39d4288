"""`edgekit build`: a standalone firmware project for a board around a generated model.

The project folder holds the generated model, the serial benchmark main (boards/common/app),
the board's startup, clock and UART code, a Makefile and a CMakeLists.txt that build the same
image, and edgekit-build.json (what `edgekit flash` and `edgekit bench --port` read). When the
board's toolchain is installed the image is built right away: objects first, then a fit check
against the board's memory map, then the link, whose per-region usage is reported.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekit.errors import EdgekitError
from edgekit.resources import resource_dir
from edgekit.targets import Board, Target, list_targets, load_board, load_target

MANIFEST = "edgekit-build.json"
_SHF_WRITE, _SHF_ALLOC, _SHF_EXECINSTR, _SHF_TLS = 0x1, 0x2, 0x4, 0x400
_SHT_NOBITS = 8
_DEFAULT_STACK = 0x4000  # ek_sections.ld's default


@dataclass
class BuildResult:
    out: Path
    manifest: dict[str, Any]
    built: bool
    missing: str | None = None  # install hint when the toolchain is absent
    regions: list[dict[str, Any]] = field(default_factory=list)  # linker memory usage


def kib(n: int) -> str:
    return f"{n / 1024:.0f} KiB" if n >= 10 * 1024 else f"{n / 1024:.1f} KiB"


def target_for_board(board: Board) -> Target:
    """The target whose compiler flags and kernels a board's firmware uses."""
    if board.target:
        return load_target(board.target)
    for name in list_targets():
        t = load_target(name)
        if t.board.name == board.name:
            return t
    raise EdgekitError(f"no target builds for board '{board.name}'", str(board.path))


def _define(kind: str, prefix: str) -> str:
    return prefix + re.sub(r"[^A-Z0-9]", "_", kind.upper())


def board_defines(board: Board) -> list[str]:
    """-D flags that select the board's UART driver and cycle counter in the shared C."""
    if board.uart is None:
        raise EdgekitError(
            f"board '{board.name}' has no serial port for the benchmark firmware",
            str(board.path / "board.toml"),
            hint="boards with a [uart] table: see `edgekit boards`",
        )
    u = board.uart
    defs = [_define(u.kind, "EK_UART_"), f"EK_UART_BASE={u.base:#x}u", f"EK_UART_BAUD={u.baud}u"]
    if u.clock_hz is not None:
        defs.append(f"EK_UART_CLOCK_HZ={u.clock_hz}u")
    if u.tx_pin is not None:
        defs.append(f"EK_UART_TX_PIN={u.tx_pin}u")
    if u.rx_pin is not None:
        defs.append(f"EK_UART_RX_PIN={u.rx_pin}u")
    if board.counter is not None:
        defs.append(_define(board.counter.kind, "EK_COUNTER_"))
        if board.counter.base is not None:
            defs.append(f"EK_COUNTER_BASE={board.counter.base:#x}u")
    if board.kind == "physical":
        defs.append("EK_NO_STACK_GUARD")  # the PMP guard of riscv_crt0.S is for QEMU virt
    return [f"-D{d}" for d in defs]


def _regions(board: Board) -> dict[str, tuple[str, int]]:
    """EK_CODE / EK_CONST / EK_RAM -> (MEMORY region, size in bytes) from link.ld."""
    text = board.linker_script.read_text() if board.linker_script else ""
    sizes: dict[str, int] = {}
    for name, length in re.findall(r"^\s*(\w+)\s*\([rwx]+\)\s*:.*LENGTH\s*=\s*(\w+)", text, re.M):
        if length[-1] in "KM":
            sizes[name] = int(length[:-1], 0) * (1024 if length[-1] == "K" else 1024 * 1024)
        else:
            sizes[name] = int(length, 0)
    return {alias: (region, sizes[region]) for alias, region in board.region_aliases().items()}


def fit_check(board: Board, needs: dict[str, int], what: str) -> None:
    """Fail with "model needs X flash, board has Y" when `needs` (alias -> bytes) overflows.

    Aliases that share one MEMORY region are added up before comparing.
    """
    regions = _regions(board)
    used: dict[str, int] = {}
    for alias, n in needs.items():
        region, _ = regions[alias]
        used[region] = used.get(region, 0) + n
    for alias in ("EK_CODE", "EK_CONST", "EK_RAM"):
        region, size = regions[alias]
        if used.get(region, 0) > size:
            kind = "RAM" if alias == "EK_RAM" else "flash"
            raise EdgekitError(
                f"{what} needs {kib(used[region])} {kind} ({region}), board {board.name} has "
                f"{kib(size)}",
                str(board.path / "board.toml"),
                hint="pick a board with more memory (`edgekit boards`), or a smaller model",
            )


def _io_bytes(graph: Any) -> int:
    pad = lambda n: (n + 15) & ~15  # noqa: E731 - ek_bench_main.c aligns each buffer to 16
    ins = sum(pad(graph.tensor(t).nbytes) for t in graph.inputs)
    return ins + 2 * sum(pad(graph.tensor(t).nbytes) for t in graph.outputs)


def _model_fit(board: Board, compiled: Any, io_bytes: int) -> None:
    """Before any compiling: constants against flash, arena + I/O + stack against RAM."""
    graph = compiled.graph
    consts = sum(graph.tensor(t).nbytes for t in compiled.generated.consts)
    ram = compiled.plan.arena_bytes + io_bytes + (board.stack_size or _DEFAULT_STACK)
    fit_check(board, {"EK_CONST": consts, "EK_RAM": ram}, "model")


def object_needs(objects: list[Path]) -> dict[str, int]:
    """Bytes per EK_ alias the compiled objects ask for (before --gc-sections drops any)."""
    from edgekit.runners.emulated import _elf_sections

    needs = {"EK_CODE": 0, "EK_CONST": 0, "EK_RAM": 0}
    for obj in objects:
        for name, sh_type, flags, size in _elf_sections(obj):
            if not flags & _SHF_ALLOC or name.startswith(".ARM.exidx"):
                continue
            if flags & _SHF_EXECINSTR:
                needs["EK_CODE"] += size
            elif not flags & _SHF_WRITE:
                needs["EK_CONST"] += size
            elif sh_type == _SHT_NOBITS:
                needs["EK_RAM"] += size
            else:  # .data: RAM at run time, its load image in flash
                needs["EK_RAM"] += size
                needs["EK_CONST"] += size
    return needs


def _tool_prefix(target: Target) -> str:
    cc = target.compiler.command
    if not cc.endswith("gcc"):
        raise EdgekitError(
            f"board firmware needs a GCC toolchain; target {target.name} uses {cc}",
            str(target.path),
        )
    return cc[: -len("gcc")]


def _makefile(m: dict[str, Any]) -> str:
    lines = [
        f"# Benchmark firmware for {m['model']} on {m['board']}, written by `edgekit build`.",
        "# make builds firmware.elf/.hex (and .bin where the image is one block); make objects",
        "# compiles only. CMakeLists.txt builds the same image.",
        f"CC := {m['cc']}",
        f"LD := {m['ld']}",
        f"OBJCOPY := {m['objcopy']}",
        f"CFLAGS := {' '.join(m['cflags'])}",
        f"DEFS := {' '.join(m['defines'])}",
        "INCS := -Imodel -Iapp -Iharness",
        f"LDFLAGS := {' '.join(m['ldflags'])}",
        f"SRCS := {' '.join(m['sources'])}",
        "OBJS := $(patsubst %,obj/%.o,$(basename $(SRCS)))",
        f"IMAGES := firmware.elf firmware.hex{' firmware.bin' if m['bin'] else ''}",
        "",
        ".PHONY: all objects clean",
        "all: $(IMAGES)",
        "objects: $(OBJS)",
        "",
        "obj/%.o: %.c",
        "\t@mkdir -p $(dir $@)",
        "\t$(CC) $(CFLAGS) $(DEFS) $(INCS) -c $< -o $@",
        "obj/%.o: %.S",
        "\t@mkdir -p $(dir $@)",
        "\t$(CC) $(CFLAGS) $(DEFS) $(INCS) -c $< -o $@",
        "",
        "firmware.elf: $(OBJS) board/link.ld board/ek_sections.ld",
        "\t$(LD) $(LDFLAGS) $(OBJS) -lm -o $@",
        "firmware.hex: firmware.elf",
        "\t$(OBJCOPY) -O ihex $< $@",
        "firmware.bin: firmware.elf",
        "\t$(OBJCOPY) -O binary $< $@",
        "",
        "clean:",
        "\trm -rf obj firmware.elf firmware.hex firmware.bin firmware.map",
        "",
    ]
    return "\n".join(lines)


def _cmake(m: dict[str, Any]) -> str:
    def q(items: list[str]) -> str:
        return "\n    ".join(f'"{i}"' for i in items)

    ld_only = [f.replace("-Lboard", "-L${CMAKE_CURRENT_SOURCE_DIR}/board")
               .replace("-Tboard/", "-T${CMAKE_CURRENT_SOURCE_DIR}/board/")
               .replace("-Map=firmware.map", "-Map=${CMAKE_CURRENT_BINARY_DIR}/firmware.map")
               for f in m["ldflags"] if f not in m["cflags"]]
    outputs = ["ihex firmware.hex"] + (["binary firmware.bin"] if m["bin"] else [])
    posts = "\n".join(
        f"  COMMAND ${{EK_OBJCOPY}} -O {fmt.split()[0]} firmware.elf {fmt.split()[1]}"
        for fmt in outputs
    )
    return f"""# Benchmark firmware for {m['model']} on {m['board']}, written by `edgekit build`.
# cmake -S . -B build && cmake --build build   (the toolchain is set here, no toolchain file)
cmake_minimum_required(VERSION 3.16)
set(CMAKE_SYSTEM_NAME Generic)
set(CMAKE_SYSTEM_PROCESSOR {m['arch']})
set(CMAKE_C_COMPILER {m['cc']})
set(CMAKE_ASM_COMPILER {m['cc']})
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)
set(EK_OBJCOPY {m['objcopy']})
project(ek_bench_{m['model']} C ASM)

add_executable(firmware.elf
    {q(m['sources'])}
)
target_include_directories(firmware.elf PRIVATE model app harness)
target_compile_options(firmware.elf PRIVATE
    {q(m['cflags'])}
)
target_compile_definitions(firmware.elf PRIVATE
    {q([d[2:] for d in m['defines']])}
)
target_link_options(firmware.elf PRIVATE
    {q(m['cflags'] + ld_only)}
)
target_link_libraries(firmware.elf PRIVATE m)
add_custom_command(TARGET firmware.elf POST_BUILD
{posts}
  WORKING_DIRECTORY ${{CMAKE_CURRENT_BINARY_DIR}})
"""


def _config_h(board: Board, name: str, tick_hz: int, io_bytes: int) -> str:
    return (
        "/* Written by `edgekit build`: what ek_bench_main.c reports and allocates. */\n"
        "#ifndef EK_BENCH_CONFIG_H\n#define EK_BENCH_CONFIG_H\n"
        f'#define EK_BENCH_BOARD "{board.name}"\n'
        f'#define EK_BENCH_MODEL "{name}"\n'
        f"#define EK_BENCH_TICK_HZ {tick_hz}u\n"
        f"#define EK_BENCH_IO_BYTES {io_bytes}u\n"
        "#endif\n"
    )


def _write_project(tmp: Path, board: Board, target: Target, compiled: Any, model: Path) -> dict:
    from edgekit.ir import serialize

    gen = compiled.generated
    graph = compiled.graph
    io_bytes = _io_bytes(graph)
    counter = board.counter
    tick_hz = counter.clock_hz if counter else 0
    for sub in ("model", "app", "harness", "board"):
        (tmp / sub).mkdir()
    for fname, text in sorted(gen.files.items()):
        (tmp / "model" / fname).write_text(text)
    serialize.save(graph, tmp / "model" / "model.ekir")
    app = resource_dir("boards") / "common" / "app"
    for fname in ("ek_bench_main.c", "ek_uart.c", "ek_board.h"):
        shutil.copyfile(app / fname, tmp / "app" / fname)
    (tmp / "app" / "ek_bench_config.h").write_text(_config_h(board, gen.name, tick_hz, io_bytes))
    harness = resource_dir("csrc") / "harness"
    for fname in ("ek_counter.c", "ek_print.c", "ek_platform.h"):
        shutil.copyfile(harness / fname, tmp / "harness" / fname)
    assert board.linker_script is not None
    shutil.copyfile(board.linker_script, tmp / "board" / "link.ld")
    shutil.copyfile(resource_dir("boards") / "common" / "ek_sections.ld",
                    tmp / "board" / "ek_sections.ld")
    board_srcs = []
    for src in board.sources:
        if src.name in {p.name for p in board_srcs}:
            raise EdgekitError(f"two board sources named {src.name}", str(board.path))
        shutil.copyfile(src, tmp / "board" / src.name)
        board_srcs.append(src)

    prefix = _tool_prefix(target)
    cflags = [*target.compiler.cflags, "-ffunction-sections", "-fdata-sections", "-Wall"]
    ldflags = [
        *(cflags if target.compiler.linker == target.compiler.command else []),
        *target.compiler.ldflags,
        "-nostartfiles", "-Lboard", "-Tboard/link.ld", "-Wl,--gc-sections",
        "-Wl,-Map=firmware.map", "-Wl,--print-memory-usage",
    ]
    if board.stack_size is not None:
        ldflags.append(f"-Wl,--defsym=__ek_stack_size={board.stack_size}")
    regions = _regions(board)
    one_block = len({regions[a][0] for a in ("EK_CODE", "EK_CONST")}) == 1
    outs = [graph.tensor(t) for t in graph.outputs]
    ins = [graph.tensor(t) for t in graph.inputs]
    ticks_per_insn = None
    if board.kind == "virtual" and counter is not None:
        ticks_per_insn = counter.clock_hz * (1 << target.counting.icount_shift) / 1e9
    return {
        "format": 1,
        "board": board.name,
        "board_kind": board.kind,
        "target": target.name,
        "arch": target.arch,
        "model": gen.name,
        "source": str(Path(model).resolve()),
        "clock_hz": board.clock_hz or (counter.clock_hz if counter else None),
        "tick_hz": tick_hz,
        "counter": counter.kind if counter else None,
        "ticks_per_instruction": ticks_per_insn,
        "baud": board.uart.baud if board.uart else None,
        "inputs": [{"shape": list(t.shape), "dtype": t.dtype, "bytes": t.nbytes} for t in ins],
        "outputs": [{"shape": list(t.shape), "dtype": t.dtype, "bytes": t.nbytes} for t in outs],
        "arena_bytes": compiled.plan.arena_bytes,
        "io_bytes": io_bytes,
        "cc": f"{prefix}gcc",
        "ld": target.compiler.linker,
        "objcopy": f"{prefix}objcopy",
        "cflags": cflags,
        "ldflags": ldflags,
        "defines": board_defines(board),
        "sources": [
            f"model/{gen.name}.c", "app/ek_bench_main.c", "app/ek_uart.c",
            "harness/ek_counter.c", "harness/ek_print.c",
            *(f"board/{s.name}" for s in board_srcs),
        ],
        "bin": one_block,
    }


def _run(argv: list[str], cwd: Path, what: str) -> str:
    from edgekit.progress import status

    with status(what):
        proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True,
                              stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        err = (proc.stderr + proc.stdout).strip().splitlines()
        overflow = re.search(r"region [`'](\w+)' overflowed by (\d+) bytes", "\n".join(err))
        if overflow:
            raise EdgekitError(
                f"the image does not fit in region {overflow.group(1)} "
                f"(over by {overflow.group(2)} bytes)", str(cwd),
                hint="memory map: board/link.ld",
            )
        raise EdgekitError(f"{what} failed:\n" + "\n".join(err[-30:]), str(cwd))
    return proc.stdout


def parse_memory_usage(text: str) -> list[dict[str, Any]]:
    """GNU ld's --print-memory-usage table as [{region, used, size}]."""
    units = {"B": 1, "KB": 1024, "MB": 1024 * 1024, "GB": 1024**3}
    rows = []
    for region, used, uu, size, su in re.findall(
        r"^\s*(\w+):\s+(\d+)\s+(B|KB|MB|GB)\s+(\d+)\s+(B|KB|MB|GB)\s+[\d.]+%", text, re.M
    ):
        rows.append({"region": region, "used": int(used) * units[uu],
                     "size": int(size) * units[su]})
    return rows


def missing_toolchain(m: dict[str, Any], target: Target) -> str | None:
    """Install hint when something the project build needs is not on PATH, else None."""
    from edgekit.runners.emulated import _install_hint

    for tool in (m["cc"], m["ld"], m["objcopy"]):
        if shutil.which(tool) is None:
            return f"{tool} is not installed; {_install_hint(target.compiler.packages)}"
    if shutil.which("make") is None:
        return "make is not installed; install it with: apt-get install make"
    return None


def compile_and_link(out: Path, board: Board, m: dict[str, Any]) -> list[dict[str, Any]]:
    """make objects, fit check on the objects, make (link + images). Returns region usage."""
    jobs = f"-j{max(1, min(4, os.cpu_count() or 1))}"
    _run(["make", jobs, "objects"], out, f"compiling the firmware for {board.name}")
    objects = sorted((out / "obj").rglob("*.o"))
    fit_check(board, object_needs(objects), "firmware")
    log = _run(["make", jobs], out, f"linking the firmware for {board.name}")
    return parse_memory_usage(log)


def build_project(
    model: Path,
    board_id: str,
    out: Path,
    name: str | None = None,
    force: bool = False,
    compile_now: bool = True,
    precision: str = "int8",
) -> BuildResult:
    """Write the firmware project for `model` on board `board_id` into `out`, and build it."""
    from edgekit.pipeline import MARKER, compile_file

    board = load_board(board_id)
    target = target_for_board(board)
    board_defines(board)  # a board without a UART fails here, before any work
    compiled = compile_file(model, target.name, name, precision)
    _model_fit(board, compiled, _io_bytes(compiled.graph))

    out = Path(out)
    if out.exists():
        if not out.is_dir():
            raise EdgekitError("output path exists and is not a folder", str(out))
        ours = (out / MANIFEST).exists() or (out / MARKER).exists()
        if any(out.iterdir()) and not ours and not force:
            raise EdgekitError(
                "output folder exists and was not written by edgekit", str(out),
                "choose another -o folder, or pass --force to replace it",
            )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        m = _write_project(tmp, board, target, compiled, Path(model))
        m["precision"] = precision
        (tmp / "Makefile").write_text(_makefile(m))
        (tmp / "CMakeLists.txt").write_text(_cmake(m))
        missing = missing_toolchain(m, target) if compile_now else "not built (--no-compile)"
        regions: list[dict[str, Any]] = []
        if missing is None:
            regions = compile_and_link(tmp, board, m)
            m["images"] = sorted(p.name for p in tmp.glob("firmware.*") if p.suffix != ".map")
            m["regions"] = regions
        (tmp / MANIFEST).write_text(json.dumps(m, indent=2) + "\n")
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return BuildResult(out, m, missing is None, missing, regions)


def load_manifest(build_dir: Path) -> dict[str, Any]:
    """edgekit-build.json of a folder written by `edgekit build`."""
    path = Path(build_dir) / MANIFEST
    if not path.is_file():
        raise EdgekitError(
            "not a firmware folder written by `edgekit build` (no edgekit-build.json)",
            str(build_dir),
            hint="edgekit build MODEL --board BOARD -o DIR first",
        )
    return json.loads(path.read_text())


def format_build(r: BuildResult) -> str:
    m = r.manifest
    lines = [f"wrote firmware project for {m['model']} on {m['board']} ({m['target']}) "
             f"to {r.out}/  (Makefile, CMakeLists.txt)"]
    if not r.built:
        lines.append(f"not built: {r.missing}")
        lines.append(f"then: make -C {r.out}")
        return "\n".join(lines)
    lines.append(f"built {', '.join(m['images'])}; memory used per region:")
    for row in r.regions:
        pct = 100 * row["used"] / row["size"] if row["size"] else 0
        lines.append(f"  {row['region']:12s} {kib(row['used']):>10s} of {kib(row['size']):>10s}"
                     f"  {pct:5.1f}%")
    lines.append(f"next: edgekit flash {r.out}   then: edgekit bench {r.out} --port PORT")
    return "\n".join(lines)
