"""Cross-compile a model with the firmware harness and run it under QEMU (or natively).

build_firmware() links the model sources with csrc/harness and the target's board support into
one image; run_firmware() feeds it input samples through a file, reads the outputs back and,
when asked, turns the firmware's counter ticks into exact executed-instruction counts.
The file and log protocol is described at the top of csrc/harness/emu_main.c.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.resources import resource_dir
from edgekit.targets import Target, load_target

IN_FILE = "ek_in.bin"
OUT_FILE = "ek_out.bin"
IN_MAGIC = 0x31494B45  # "EKI1"
FLAG_COUNT = 1
FLAG_LAYERS = 2
EXIT_FAULT = 13  # EK_EXIT_FAULT in csrc/harness/ek_platform.h
ELF_NAME = "firmware.elf"
#: Instruction counts the firmware's hand-written calibration thunks must produce.
CALIBRATION_EXPECTED = {"nop1000": 1000, "loop1000": 2 * 1000 + 1, "loop5000": 2 * 5000 + 1}

_COUNTER_DEFINE = {
    "cmsdk-timer": "EK_COUNTER_CMSDK_TIMER",
    "sse-counter": "EK_COUNTER_SSE_COUNTER",
    "nrf-timer": "EK_COUNTER_NRF_TIMER",
    "riscv-minstret": "EK_COUNTER_RISCV_MINSTRET",
    "arm-generic-timer": "EK_COUNTER_ARM_GENERIC_TIMER",
}
# Cortex-M CFSR bits worth naming in a fault message.
_CFSR_BITS = {
    0: "IACCVIOL",
    1: "DACCVIOL",
    8: "IBUSERR",
    9: "PRECISERR",
    10: "IMPRECISERR",
    12: "STKERR",
    16: "UNDEFINSTR",
    17: "INVSTATE",
    18: "INVPC",
    19: "NOCP",
    20: "STKOF",
    24: "UNALIGNED",
    25: "DIVBYZERO",
}


@dataclass
class EmulatedResult:
    """What one run_firmware() call produced. Instruction lists are per sample."""

    outputs: list[list[np.ndarray]]
    log: str
    command: list[str]
    wall_time_s: float
    instructions: list[int] | None = None
    layer_instructions: list[list[int]] | None = None
    load_instructions: list[int] | None = None
    store_instructions: list[int] | None = None
    calibration: dict[str, int] = field(default_factory=dict)
    layerwise_mismatches: list[int] = field(default_factory=list)


def _as_target(target: Target | str) -> Target:
    return load_target(target) if isinstance(target, str) else target


def _install_hint(packages: Sequence[str]) -> str:
    apt = [p for p in packages if not p.startswith("pip:")]
    pip = [p.removeprefix("pip:").strip() for p in packages if p.startswith("pip:")]
    parts = []
    if apt:
        parts.append(f"apt-get install {' '.join(apt)}")
    if pip:
        parts.append(f"pip install {' '.join(pip)}")
    return "install it with: " + " and ".join(parts) if parts else "install the toolchain"


def _tool(command: str, packages: Sequence[str], role: str, target: Target) -> list[str]:
    """The argv prefix that runs `command`, or a clear error naming what to install."""
    if command == "ziglang":
        if importlib.util.find_spec("ziglang") is None:
            raise EdgekitError(
                f"{role} 'ziglang' (clang from the ziglang wheel) is not installed",
                f"target {target.name}",
                hint=_install_hint(packages),
            )
        return [sys.executable, "-m", "ziglang", "cc"]
    found = shutil.which(command)
    if found is None:
        raise EdgekitError(
            f"{role} '{command}' not found on PATH",
            f"target {target.name}",
            hint=_install_hint(packages),
        )
    return [found]


def _define_flags(defines: Mapping[str, Any] | Sequence[str] | None) -> list[str]:
    if defines is None:
        return []
    if isinstance(defines, Mapping):
        return [f"-D{k}" if v is None else f"-D{k}={v}" for k, v in defines.items()]
    return [d if d.startswith("-D") else f"-D{d}" for d in defines]


def _harness_sources(target: Target) -> list[Path]:
    harness = resource_dir("csrc") / "harness"
    io = ["ek_semihost.c", "ek_counter.c"] if target.board.io == "semihost" else ["ek_stdio.c"]
    return [harness / n for n in ("emu_main.c", "ek_print.c", *io)] + list(target.board.sources)


def firmware_key(target: Target) -> Any:
    """A sha256 already fed with everything `build_firmware` adds to the generated sources: the
    target file, the harness (sources and headers), the board's files and its startup code.
    Cached firmware keyed on the generated files alone outlived a harness fix."""
    harness = resource_dir("csrc") / "harness"
    files = [target.path, *sorted(harness.iterdir()), *target.board.sources]
    if target.board.path.is_dir():
        files += sorted(p for p in target.board.path.iterdir() if p.is_file())
    if target.board.linker_script is not None:
        files += [target.board.linker_script, resource_dir("boards") / "common" / "ek_sections.ld"]
    key = hashlib.sha256()
    for path in files:
        if path.is_file():
            key.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return key


def _run_tool(argv: list[str], what: str, where: str, target: Target) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if proc.returncode == 0:
        return
    err = (proc.stderr + proc.stdout).strip()
    hint = None
    if "picolibc.specs" in err or re.search(r"fatal error: (stdint|string|math)\.h", err):
        hint = "the C library is missing; " + _install_hint(target.compiler.packages)
    overflow = re.search(r"region [`'](\w+)' overflowed by (\d+) bytes", err)
    if overflow:
        what = (
            f"the image does not fit in region {overflow.group(1)} of board "
            f"{target.board.name} (over by {overflow.group(2)} bytes)"
        )
        hint = f"memory map: {target.board.linker_script}"
    lines = err.splitlines()
    excerpt = "\n".join(lines[:40] + (["..."] if len(lines) > 40 else []))
    raise EdgekitError(f"{what}:\n{excerpt}", where, hint)


def build_firmware(
    target: Target | str,
    sources: Sequence[Path],
    include_dirs: Sequence[Path],
    out_dir: Path,
    defines: Mapping[str, Any] | Sequence[str] | None = None,
    *,
    extra_cflags: Sequence[str] = (),
) -> Path:
    """Compile `sources` (a generated model with its harness_model.h) into a runnable image.

    The harness main and the board's startup code are added automatically; `include_dirs` must
    make harness_model.h findable. Returns the path of the linked ELF in `out_dir`.
    """
    t = _as_target(target)
    out_dir = Path(out_dir)
    obj_dir = out_dir / "obj"
    obj_dir.mkdir(parents=True, exist_ok=True)
    cc = _tool(t.compiler.command, t.compiler.packages, "compiler", t)
    ld = _tool(t.compiler.linker, t.compiler.packages, "linker", t)

    flags = [*t.compiler.cflags, *extra_cflags, "-ffunction-sections", "-fdata-sections"]
    flags += _define_flags(defines)
    counter = t.board.counter
    if counter is not None:
        flags.append(f"-D{_COUNTER_DEFINE[counter.kind]}")
        if counter.base is not None:
            flags.append(f"-DEK_COUNTER_BASE={counter.base:#x}u")
    incs = [f"-I{Path(d)}" for d in include_dirs] + [f"-I{resource_dir('csrc') / 'harness'}"]

    all_sources = [Path(s) for s in sources] + _harness_sources(t)
    objects = [obj_dir / f"{i:03d}_{s.stem}.o" for i, s in enumerate(all_sources)]

    def compile_one(pair: tuple[Path, Path]) -> None:
        src, obj = pair
        argv = [*cc, *flags, *incs, "-c", str(src), "-o", str(obj)]
        _run_tool(argv, f"compiling for target {t.name} failed", str(src), t)

    with ThreadPoolExecutor(max_workers=max(1, min(8, os.cpu_count() or 1))) as pool:
        list(pool.map(compile_one, zip(all_sources, objects, strict=True)))

    elf = out_dir / ELF_NAME
    # The link driver needs the target flags to pick the matching libc/libgcc multilib, unless a
    # different driver links (then its own ldflags carry that choice).
    link = [*ld]
    if t.compiler.linker == t.compiler.command:
        link += [*t.compiler.cflags, *extra_cflags]
    link += [*t.compiler.ldflags, *map(str, objects), "-Wl,--gc-sections"]
    if t.board.linker_script is not None:
        link += [
            "-nostartfiles",
            f"-L{resource_dir('boards') / 'common'}",
            f"-T{t.board.linker_script}",
            f"-Wl,-Map={out_dir / 'firmware.map'}",
        ]
        if t.board.stack_size is not None:
            link.append(f"-Wl,--defsym=__ek_stack_size={t.board.stack_size}")
    link += ["-lm", "-o", str(elf)]
    _run_tool(link, f"linking for target {t.name} failed", str(out_dir), t)
    return elf


def _spec_shape_dtype(spec: Any) -> tuple[tuple[int, ...], np.dtype]:
    if hasattr(spec, "shape") and hasattr(spec, "dtype"):
        return tuple(int(d) for d in spec.shape), np.dtype(spec.dtype)
    shape, dtype = spec
    return tuple(int(d) for d in shape), np.dtype(dtype)


def _write_inputs(
    path: Path, inputs: Sequence[Sequence[np.ndarray]], out_bytes: list[int], flags: int
) -> None:
    if not inputs:
        raise EdgekitError("run_firmware needs at least one input sample")
    n_in = len(inputs[0])
    blobs = []
    for s, sample in enumerate(inputs):
        if len(sample) != n_in:
            raise EdgekitError(f"sample {s} has {len(sample)} inputs, sample 0 has {n_in}")
        blobs.append(
            [
                np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<")).tobytes()
                for a in map(np.asarray, sample)
            ]
        )
    in_bytes = [len(b) for b in blobs[0]]
    for s, sample in enumerate(blobs):
        if [len(b) for b in sample] != in_bytes:
            raise EdgekitError(f"sample {s} has input sizes that differ from sample 0")
    header = struct.pack(
        f"<5I{n_in + len(out_bytes)}I",
        IN_MAGIC,
        len(inputs),
        flags,
        n_in,
        len(out_bytes),
        *in_bytes,
        *out_bytes,
    )
    with path.open("wb") as f:
        f.write(header)
        for sample in blobs:
            f.writelines(sample)


def _emulator_argv(t: Target, elf: Path, count: bool) -> list[str]:
    e = t.emulator
    if e.kind == "native":
        return [str(elf.resolve())]
    argv = _tool(e.command or "", e.packages, "emulator", t)
    if e.kind == "qemu-user":
        return [*argv, *(["-cpu", e.cpu] if e.cpu else []), *e.args, str(elf.resolve())]
    argv += ["-M", e.machine or ""]
    if e.cpu:
        argv += ["-cpu", e.cpu]
    argv += [*t.board.qemu_args, *e.args]
    argv += ["-nographic", "-monitor", "none", "-serial", "null"]
    argv += ["-semihosting-config", "enable=on,target=native", "-kernel", str(elf.resolve())]
    if count:
        # Virtual time advances exactly 2^shift ns per executed instruction; sleep=off keeps
        # the guest from ever being throttled to real time.
        argv += ["-icount", f"shift={t.counting.icount_shift},sleep=off"]
    return argv


def _fault_error(line: str, t: Target, elf: Path) -> EdgekitError:
    parts = line.split()
    kind = parts[1] if len(parts) > 1 else "fault"
    fields = dict(p.split("=", 1) for p in parts[2:] if "=" in p)
    detail = " ".join(parts[2:])
    cfsr = int(fields.get("cfsr", "0"), 16)
    named = [name for bit, name in _CFSR_BITS.items() if cfsr >> bit & 1]
    if named:
        detail += f" ({', '.join(named)})"
    return EdgekitError(
        f"CPU fault {kind} while running on {t.name}: {detail}",
        str(elf),
        hint="pc is the faulting instruction; look it up with objdump -d on the ELF",
    )


def _check_exit(proc_rc: int, log: str, t: Target, elf: Path, argv: list[str]) -> None:
    # QEMU's own fatal errors first: a lockup can cut a fault report off half way.
    fatal = re.search(r"qemu: fatal: (.*)", log)
    if fatal:
        kind = f"emulator stopped: {fatal.group(1)}"
        if "Lockup" in fatal.group(1):
            kind = "CPU lockup (a fault while handling a fault)"
        raise EdgekitError(
            f"{kind} on {t.name}",
            str(elf),
            hint="often a stack overflow or a jump into unmapped memory; log tail:\n" + log[-2000:],
        )
    for line in log.splitlines():
        if line.startswith("EK_FAULT"):
            raise _fault_error(line, t, elf)
    for line in log.splitlines():
        if line.startswith("EK_ERROR"):
            raise EdgekitError(f"firmware error: {line[9:]}", str(elf))
        if line.startswith("EK_MODEL_ERROR"):
            raise EdgekitError(f"harness_run returned {line.split()[1]}", str(elf))
    if proc_rc < 0:
        try:
            name = signal.Signals(-proc_rc).name
        except ValueError:
            name = f"signal {-proc_rc}"
        raise EdgekitError(
            f"CPU fault: firmware killed by {name} on {t.name}", str(elf), log[-2000:] or None
        )
    if proc_rc == EXIT_FAULT:
        raise EdgekitError(f"fault while running on {t.name}", str(elf), log[-2000:])
    if proc_rc != 0 or "EK_DONE" not in log:
        raise EdgekitError(
            f"firmware run failed on {t.name} (exit code {proc_rc})",
            str(elf),
            hint=f"command: {' '.join(argv)}\nlog tail:\n{log[-2000:]}",
        )


def _parse_ticks(log: str) -> dict[tuple[str, str], list[int]]:
    """EK_TICKS lines as {(sample or "-", window): [ticks, ...]} in log order."""
    ticks: dict[tuple[str, str], list[int]] = {}
    for line in log.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[0] == "EK_TICKS":
            ticks.setdefault((parts[1], parts[2]), []).append(int(parts[3]))
    return ticks


def _apply_counts(result: EmulatedResult, log: str, t: Target, n: int, layers: bool) -> None:
    ticks = _parse_ticks(log)
    per_insn = t.ticks_per_instruction()

    def insns(raw: int) -> int:
        # Both counter reads truncate, so a window's tick count is within one tick of
        # instructions * ticks-per-instruction; with > 2 ticks per instruction, rounding is exact.
        return round(raw / per_insn)

    empties = {insns(v) for v in ticks.get(("-", "empty"), [])}
    if len(empties) != 1:
        raise EdgekitError(
            f"counter calibration on {t.name} is missing or unstable: empty windows of "
            f"{sorted(empties)} instructions",
            hint=log[-2000:],
        )
    overhead = empties.pop()
    calib = {k: insns(v[0]) - overhead for (s, k), v in ticks.items() if s == "-" and k != "empty"}
    result.calibration = {"overhead": overhead, **calib}
    if calib != CALIBRATION_EXPECTED:
        raise EdgekitError(
            f"instruction-count self-check failed on {t.name}: got {calib}, "
            f"expected {CALIBRATION_EXPECTED}",
            hint="the counter or icount settings of this target/board are wrong",
        )

    def count(sample: int, what: str) -> int:
        return insns(ticks[(str(sample), what)][0]) - overhead

    result.instructions = [count(s, "run") for s in range(n)]
    if layers:
        n_layers = sum(1 for s, k in ticks if s == "0" and k.startswith("layer"))
        result.load_instructions = [count(s, "load") for s in range(n)]
        result.store_instructions = [count(s, "store") for s in range(n)]
        result.layer_instructions = [
            [count(s, f"layer{i}") for i in range(n_layers)] for s in range(n)
        ]


def run_firmware(
    target: Target | str,
    elf: Path,
    inputs: Sequence[Sequence[np.ndarray]],
    output_specs: Sequence[Any],
    timeout_s: float = 60.0,
    count_instructions: bool = False,
    *,
    per_layer: bool = True,
    work_dir: Path | None = None,
) -> EmulatedResult:
    """Run an image from build_firmware() on `inputs` (samples x model inputs).

    `output_specs` gives each model output as (shape, dtype) or anything with .shape/.dtype.
    With `count_instructions`, QEMU runs in icount mode and the result carries exact executed
    instruction counts per inference and, if `per_layer`, per layer (a second, layer-by-layer
    pass whose outputs are checked against the whole-model pass).
    """
    t = _as_target(target)
    elf = Path(elf)
    if not t.can_run:
        raise EdgekitError(
            f"target {t.name} has no emulator; it can be built but not run", str(t.path)
        )
    if count_instructions and not t.can_count:
        raise EdgekitError(
            f"target {t.name} cannot count instructions (counting.method = none)", str(t.path)
        )
    specs = [_spec_shape_dtype(s) for s in output_specs]
    out_bytes = [int(np.prod(shape, dtype=np.int64)) * dt.itemsize for shape, dt in specs]
    flags = (FLAG_COUNT | (FLAG_LAYERS if per_layer else 0)) if count_instructions else 0
    argv = _emulator_argv(t, elf, count_instructions)

    with tempfile.TemporaryDirectory(prefix="edgekit-run-", dir=work_dir) as tmp:
        run_dir = Path(tmp)
        _write_inputs(run_dir / IN_FILE, inputs, out_bytes, flags)
        start = time.monotonic()
        proc = subprocess.Popen(
            argv,
            cwd=run_dir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # so a timeout can kill QEMU and anything it spawned
        )
        try:
            raw, _ = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raw, _ = proc.communicate()
            raise EdgekitError(
                f"firmware did not finish within {timeout_s:g} s on {t.name}",
                str(elf),
                hint="an endless loop, or a slow model: raise timeout_s. Log tail:\n"
                + raw.decode(errors="replace")[-1500:],
            ) from None
        wall = time.monotonic() - start
        log = raw.decode(errors="replace")
        _check_exit(proc.returncode, log, t, elf, argv)
        data = (run_dir / OUT_FILE).read_bytes() if (run_dir / OUT_FILE).exists() else b""

    per_sample = sum(out_bytes)
    if len(data) != per_sample * len(inputs):
        raise EdgekitError(
            f"expected {per_sample * len(inputs)} output bytes, firmware wrote {len(data)}",
            str(elf),
            hint=log[-2000:],
        )
    outputs = []
    for s in range(len(inputs)):
        offset = s * per_sample
        sample = []
        for (shape, dt), nbytes in zip(specs, out_bytes, strict=True):
            buf = data[offset : offset + nbytes]
            sample.append(np.frombuffer(buf, dtype=dt.newbyteorder("<")).reshape(shape).copy())
            offset += nbytes
        outputs.append(sample)
    result = EmulatedResult(outputs=outputs, log=log, command=argv, wall_time_s=wall)
    result.layerwise_mismatches = [
        int(line.split()[1])
        for line in log.splitlines()
        if line.startswith("EK_LAYERWISE_MISMATCH")
    ]
    if count_instructions:
        _apply_counts(result, log, t, len(inputs), per_layer)
    return result


_SHF_WRITE, _SHF_ALLOC, _SHF_EXECINSTR, _SHF_TLS = 0x1, 0x2, 0x4, 0x400
_SHT_NOBITS = 8


def _elf_sections(elf: Path) -> list[tuple[str, int, int, int]]:
    """(name, type, flags, size) of every section, read straight from the ELF headers."""
    data = Path(elf).read_bytes()
    if data[:4] != b"\x7fELF":
        raise EdgekitError("not an ELF file", str(elf))
    is64 = data[4] == 2
    end = "<" if data[5] == 1 else ">"
    if is64:
        (shoff,) = struct.unpack_from(end + "Q", data, 0x28)
        shentsize, shnum, shstrndx = struct.unpack_from(end + "3H", data, 0x3A)
        fmt = end + "IIQQQQ"
    else:
        (shoff,) = struct.unpack_from(end + "I", data, 0x20)
        shentsize, shnum, shstrndx = struct.unpack_from(end + "3H", data, 0x2E)
        fmt = end + "IIIIII"
    headers = [struct.unpack_from(fmt, data, shoff + i * shentsize) for i in range(shnum)]
    str_off = headers[shstrndx][4]

    def name(off: int) -> str:
        start = str_off + off
        return data[start : data.index(b"\0", start)].decode()

    return [(name(h[0]), h[1], h[2], h[5]) for h in headers]


def elf_symbol_sizes(elf: Path) -> dict[str, int]:
    """Size in bytes of every named data or function symbol in the ELF's symbol table.

    Kernels unrolled to a layer's real channel counts let the compiler fold some constant
    arrays into immediates, so what a model's constants cost in flash is read from here.
    """
    data = Path(elf).read_bytes()
    if data[:4] != b"\x7fELF":
        raise EdgekitError("not an ELF file", str(elf))
    is64 = data[4] == 2
    end = "<" if data[5] == 1 else ">"
    if is64:
        (shoff,) = struct.unpack_from(end + "Q", data, 0x28)
        shentsize, shnum = struct.unpack_from(end + "2H", data, 0x3A)
        sh_fmt, sym_fmt, sym_size = end + "IIQQQQIIQQ", end + "IBBHQQ", 24
    else:
        (shoff,) = struct.unpack_from(end + "I", data, 0x20)
        shentsize, shnum = struct.unpack_from(end + "2H", data, 0x2E)
        sh_fmt, sym_fmt, sym_size = end + "IIIIIIIIII", end + "IIIBBH", 16
    headers = [struct.unpack_from(sh_fmt, data, shoff + i * shentsize) for i in range(shnum)]
    sizes: dict[str, int] = {}
    for h in headers:
        if h[1] != 2:  # SHT_SYMTAB
            continue
        offset, total, link = h[4], h[5], h[6]
        str_off = headers[link][4]
        for k in range(total // sym_size):
            fields = struct.unpack_from(sym_fmt, data, offset + k * sym_size)
            st_name, st_size = (fields[0], fields[5]) if is64 else (fields[0], fields[2])
            if not st_name or not st_size:
                continue
            start = str_off + st_name
            name = data[start : data.index(b"\0", start)].decode(errors="replace")
            sizes[name] = sizes.get(name, 0) + st_size
    return sizes


def elf_sizes(elf: Path) -> dict[str, int]:
    """Bytes of code, constants, initialised and zeroed data and stack, and flash / RAM totals.

    flash = text + rodata + data (the .data load image lives in flash); ram = data + bss +
    stack (the board's reserved stack). The harness I/O pool takes RAM on top of that.
    """
    sizes = {"text": 0, "rodata": 0, "data": 0, "bss": 0, "stack": 0}
    for name, sh_type, flags, size in _elf_sections(elf):
        # .tbss takes no address space of its own; the boards reserve it in .ek_tbss_space.
        if not flags & _SHF_ALLOC or (flags & _SHF_TLS and sh_type == _SHT_NOBITS):
            continue
        if name == ".ek_stack":
            sizes["stack"] += size
        elif flags & _SHF_EXECINSTR:
            sizes["text"] += size
        elif not flags & _SHF_WRITE:
            sizes["rodata"] += size
        elif sh_type == _SHT_NOBITS:
            sizes["bss"] += size
        else:
            sizes["data"] += size
    sizes["flash"] = sizes["text"] + sizes["rodata"] + sizes["data"]
    sizes["ram"] = sizes["data"] + sizes["bss"] + sizes["stack"]
    return sizes
