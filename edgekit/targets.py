"""Target and board descriptions, loaded from the data files in targets/ and boards/.

A target says how to compile for a core (compiler and flags), what the generated code may use
(capabilities, kernel preference), how to run it (emulator) and how instructions are counted. A
board is the virtual machine a target links for: memory map, startup code, I/O, tick counter.
Adding a target or a board means adding a TOML file; see docs/targets.md for the format.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekit.errors import EdgekitError
from edgekit.resources import resource_dir

#: Capability names a target may declare; codegen keys kernel selection on these.
KNOWN_CAPABILITIES = frozenset(
    {
        "hwdiv",  # integer divide instruction
        "unaligned",  # unaligned word loads/stores are legal
        "dsp",  # Arm DSP extension (saturating, MAC)
        "simd32",  # Arm packed 8/16-bit SIMD in general registers (SMLAD, SADD8, ...)
        "fpu-sp",
        "fpu-dp",
        "fp16",  # scalar half-precision arithmetic
        "mve-i",  # Arm Helium integer
        "mve-f",  # Arm Helium floating point
        "rvv",  # RISC-V vector 1.0
        "zvfh",  # RISC-V vector half-precision arithmetic
        "neon",
        "neon-fp16",
        "dotprod",
    }
)
#: Kernel families codegen knows, in the order a target prefers them.
def _kernel_families() -> frozenset[str]:
    """Families that have templates: adding a family's template folder makes it selectable."""
    import codegen

    templates = Path(codegen.__file__).resolve().parent / "templates"
    return frozenset(p.name for p in templates.iterdir() if p.is_dir() and p.name != "hls")


# families a target may already prefer before their templates exist (it falls back to the next)
KNOWN_KERNELS = _kernel_families() | {"dsp", "mve", "rvv", "neon", "portable"}
EMULATOR_KINDS = frozenset({"qemu-system", "qemu-user", "native", "none"})
COUNTING_METHODS = frozenset({"icount-timer", "icount-csr", "none"})
BOARD_IO = frozenset({"semihost", "stdio", "uart"})
COUNTER_KINDS = frozenset(
    {
        "cmsdk-timer",
        "sse-counter",
        "nrf-timer",
        "riscv-minstret",
        "arm-generic-timer",
        # cycle counters of physical boards (the firmware projects of edgekit build):
        "dwt-cyccnt",  # Armv7-M / Armv8-M DWT CYCCNT at 0xE0001004, core clock
        "riscv-mcycle",  # RISC-V mcycle CSR, core clock
        "esp32c3-mpccr",  # ESP32-C3 custom performance counter CSR 0x7E2 (no mcycle)
    }
)
BOARD_KINDS = frozenset({"virtual", "physical"})
#: Serial drivers of the benchmark firmware (boards/common/app/ek_uart.c).
UART_KINDS = frozenset(
    {
        "cmsdk-uart",  # Arm CMSDK APB UART (MPS2/MPS3 FPGA images, Corstone-300)
        "stm32-usart",  # STM32 USART (BRR = f / baud)
        "stm32-lpuart",  # STM32 LPUART (BRR = 256 f / baud)
        "nrf-uarte",  # Nordic UARTE with EasyDMA (nRF52840, nRF5340)
        "pl011",  # Arm PL011 (RP2350)
        "esp32-uart",  # Espressif UART (ESP32-C3)
        "sifive-uart",  # SiFive UART (FE310)
        "ns16550",  # 16550-compatible (QEMU virt)
    }
)
FLASH_TOOLS = frozenset({"pyocd", "openocd", "picotool", "esptool", "qemu"})
FLASH_IMAGES = frozenset({"elf", "hex", "bin", "esp"})
#: Placeholders a flash command template may use (edgekit/flash.py fills them in).
FLASH_PLACEHOLDERS = frozenset({"elf", "hex", "bin", "esp", "probe", "probe_args"})


@dataclass(frozen=True)
class MemoryRegion:
    name: str
    origin: int
    size: int
    contents: str


@dataclass(frozen=True)
class Counter:
    """A free-running tick counter of a board; `clock_hz` is its rate in emulated time."""

    kind: str
    clock_hz: int
    base: int | None = None

    def ticks_per_instruction(self, icount_shift: int) -> float:
        """Ticks per instruction when QEMU runs with `-icount shift=N` (2^N ns per insn)."""
        return self.clock_hz * (1 << icount_shift) / 1e9


@dataclass(frozen=True)
class Uart:
    """The serial console of a physical board (io = "uart")."""

    kind: str
    base: int
    baud: int = 115200
    clock_hz: int | None = None  # peripheral clock the baud divider is computed from
    tx_pin: int | None = None  # GPIO numbers of TX / RX, where the driver routes the pins
    rx_pin: int | None = None


@dataclass(frozen=True)
class FlashMethod:
    """How a built image reaches the board: a tool and its argv template.

    Placeholders: {elf} {hex} {bin} {esp} (absolute image paths), {probe} (the --probe value,
    or `probe_default`), and a whole argument "{probe_args}", replaced by `probe_args` when a
    probe is given and dropped otherwise.
    """

    tool: str
    command: tuple[str, ...]
    image: str
    probe_args: tuple[str, ...]
    packages: tuple[str, ...]  # "pip: x" for PyPI, else apt
    notes: str
    prepare: tuple[str, ...] = ()  # optional command run first (e.g. esptool elf2image)
    probe_default: str | None = None  # {probe} when --probe is not given (QEMU: a TCP port)


@dataclass(frozen=True)
class Board:
    name: str
    description: str
    path: Path
    io: str
    machine: str | None
    linker_script: Path | None
    sources: tuple[Path, ...]
    qemu_args: tuple[str, ...]
    memory: tuple[MemoryRegion, ...]
    counter: Counter | None
    stack_size: int | None
    # Catalogue fields (optional in board.toml; see docs/boards.md). Defaults keep the
    # virtual boards as they were.
    kind: str = "virtual"
    target: str | None = None  # targets/<target>.toml whose compiler flags and kernels are used
    core: str | None = None
    mcu: str | None = None
    clock_hz: int | None = None
    uart: Uart | None = None
    flash: FlashMethod | None = None
    url: str | None = None

    def region_aliases(self) -> dict[str, str]:
        """EK_CODE / EK_CONST / EK_RAM -> MEMORY region name, read from the linker script."""
        if self.linker_script is None:
            return {}
        text = self.linker_script.read_text()
        return dict(re.findall(r'REGION_ALIAS\(\s*"(EK_\w+)"\s*,\s*(\w+)\s*\)', text))


@dataclass(frozen=True)
class Compiler:
    command: str  # an executable on PATH, or "ziglang" for `python -m ziglang cc`
    cflags: tuple[str, ...]
    ldflags: tuple[str, ...]
    linker: str  # same convention as command; defaults to command
    packages: tuple[str, ...]  # what provides the toolchain ("pip: x" for PyPI, else apt)


@dataclass(frozen=True)
class Emulator:
    kind: str
    command: str | None
    machine: str | None
    cpu: str | None
    args: tuple[str, ...]
    packages: tuple[str, ...]


@dataclass(frozen=True)
class Counting:
    method: str
    icount_shift: int


@dataclass(frozen=True)
class Target:
    name: str
    description: str
    arch: str
    path: Path
    board: Board
    capabilities: frozenset[str]
    kernels: tuple[str, ...]
    compiler: Compiler
    emulator: Emulator
    counting: Counting

    @property
    def can_run(self) -> bool:
        return self.emulator.kind != "none"

    @property
    def can_count(self) -> bool:
        return self.counting.method != "none"

    def ticks_per_instruction(self) -> float:
        """Counter ticks per executed instruction during a counting run."""
        if self.board.counter is None:
            raise EdgekitError(f"target {self.name} has no instruction counter", str(self.path))
        return self.board.counter.ticks_per_instruction(self.counting.icount_shift)


class _Fields:
    """Typed access to one TOML table, with errors that name the file and the key."""

    def __init__(self, data: dict[str, Any], path: Path, prefix: str = "") -> None:
        self.data = data
        self.path = path
        self.prefix = prefix

    def _fail(self, key: str, problem: str) -> EdgekitError:
        return EdgekitError(f"'{self.prefix}{key}' {problem}", str(self.path))

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
        if key not in self.data:
            if default is ...:
                raise self._fail(key, "is missing")
            return default
        value = self.data[key]
        if not isinstance(value, kind) or isinstance(value, bool) and kind is int:
            names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
            raise self._fail(key, f"must be {names}, not {type(value).__name__}")
        return value

    def strings(self, key: str, default: tuple[str, ...] | None = None) -> tuple[str, ...]:
        value = self.get(key, list, default=... if default is None else list(default))
        if not all(isinstance(v, str) for v in value):
            raise self._fail(key, "must be a list of strings")
        return tuple(value)

    def choice(self, key: str, allowed: frozenset[str], default: Any = ...) -> str:
        value = self.get(key, str, default)
        if value not in allowed:
            raise self._fail(key, f"is '{value}', expected one of {sorted(allowed)}")
        return value

    def table(self, key: str, required: bool = True) -> _Fields | None:
        if key not in self.data and not required:
            return None
        return _Fields(self.get(key, dict), self.path, f"{self.prefix}{key}.")

    def reject_unknown(self, known: set[str]) -> None:
        extra = sorted(set(self.data) - known)
        if extra:
            raise EdgekitError(
                f"unknown key(s) {', '.join(self.prefix + k for k in extra)}",
                str(self.path),
                hint=f"known keys here: {', '.join(sorted(known))}",
            )


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise EdgekitError(f"invalid TOML: {exc}", str(path)) from exc


def _names(folder: Path, pattern: str) -> list[str]:
    return sorted(p.parent.name if pattern != "*.toml" else p.stem for p in folder.glob(pattern))


def list_targets() -> list[str]:
    """Names of all targets, i.e. the targets/*.toml files."""
    return _names(resource_dir("targets"), "*.toml")


def list_boards() -> list[str]:
    """Names of all boards, i.e. the boards/*/board.toml folders."""
    return _names(resource_dir("boards"), "*/board.toml")


def load_board(name: str) -> Board:
    """Load and validate boards/<name>/board.toml."""
    root = resource_dir("boards")
    path = root / name / "board.toml"
    if not path.is_file():
        raise EdgekitError(
            f"unknown board '{name}'", hint=f"known boards: {', '.join(list_boards())}"
        )
    f = _Fields(_read_toml(path), path)
    f.reject_unknown(
        {
            "name",
            "description",
            "machine",
            "io",
            "linker_script",
            "sources",
            "qemu_args",
            "memory",
            "counter",
            "stack_size",
            "kind",
            "target",
            "core",
            "mcu",
            "clock_hz",
            "uart",
            "flash",
            "url",
        }
    )
    if f.get("name", str) != name:
        raise EdgekitError(f"'name' must equal the folder name '{name}'", str(path))
    io = f.choice("io", BOARD_IO)
    uart = None
    u = f.table("uart", required=False)
    if u is not None:
        u.reject_unknown({"kind", "base", "baud", "clock_hz", "tx_pin", "rx_pin"})
        uart = Uart(
            kind=u.choice("kind", UART_KINDS),
            base=u.get("base", int),
            baud=u.get("baud", int, 115200),
            clock_hz=u.get("clock_hz", int, None),
            tx_pin=u.get("tx_pin", int, None),
            rx_pin=u.get("rx_pin", int, None),
        )
    if io == "uart" and uart is None:
        raise EdgekitError('io = "uart" needs a [uart] table', str(path))
    flash = None
    fl = f.table("flash", required=False)
    if fl is not None:
        fl.reject_unknown(
            {"tool", "command", "image", "probe_args", "packages", "notes", "prepare",
             "probe_default"}
        )
        flash = FlashMethod(
            tool=fl.choice("tool", FLASH_TOOLS),
            command=fl.strings("command"),
            image=fl.choice("image", FLASH_IMAGES, "elf"),
            probe_args=fl.strings("probe_args", default=()),
            packages=fl.strings("packages", default=()),
            notes=fl.get("notes", str, ""),
            prepare=fl.strings("prepare", default=()),
            probe_default=fl.get("probe_default", str, None),
        )
        if not flash.command or not flash.command[0].startswith(flash.tool):
            raise EdgekitError("'flash.command' must start with the tool's name", str(path))
        if not any(f"{{{flash.image}}}" in a for a in flash.command):
            raise EdgekitError(f"'flash.command' must contain {{{flash.image}}}", str(path))
        for arg in flash.command + flash.probe_args + flash.prepare:
            bad = set(re.findall(r"\{(\w+)\}", arg)) - FLASH_PLACEHOLDERS
            if bad:
                raise EdgekitError(
                    f"'flash' uses unknown placeholder(s) {sorted(bad)}", str(path),
                    hint=f"known: {', '.join(sorted(FLASH_PLACEHOLDERS))}",
                )
    kind = f.choice("kind", BOARD_KINDS, "virtual")
    target = f.get("target", str, None)
    if target is not None and not (resource_dir("targets") / f"{target}.toml").is_file():
        raise EdgekitError(f"'target' names unknown target '{target}'", str(path))
    if kind == "physical":
        for key in ("target", "core", "clock_hz", "linker_script"):
            if key not in f.data:
                raise EdgekitError(f"'{key}' is required for a physical board", str(path))
    linker_script = f.get("linker_script", str, None)
    sources = tuple(root / s for s in f.strings("sources"))
    for file in sources + ((path.parent / linker_script,) if linker_script else ()):
        if not file.is_file():
            raise EdgekitError(f"board file {file} does not exist", str(path))
    memory = []
    mem = f.table("memory", required=False)
    for region in sorted(mem.data) if mem else []:
        r = mem.table(region)
        r.reject_unknown({"origin", "size", "contents"})
        memory.append(
            MemoryRegion(region, r.get("origin", int), r.get("size", int), r.get("contents", str))
        )
    counter = None
    c = f.table("counter", required=False)
    if c is not None:
        c.reject_unknown({"kind", "base", "clock_hz"})
        counter = Counter(
            kind=c.choice("kind", COUNTER_KINDS),
            clock_hz=c.get("clock_hz", int),
            base=c.get("base", int, None),
        )
    return Board(
        name=name,
        description=f.get("description", str),
        path=path.parent,
        io=io,
        machine=f.get("machine", str, None),
        linker_script=path.parent / linker_script if linker_script else None,
        sources=sources,
        qemu_args=f.strings("qemu_args", default=()),
        memory=tuple(memory),
        counter=counter,
        stack_size=f.get("stack_size", int, None),
        kind=kind,
        target=target,
        core=f.get("core", str, None),
        mcu=f.get("mcu", str, None),
        clock_hz=f.get("clock_hz", int, None),
        uart=uart,
        flash=flash,
        url=f.get("url", str, None),
    )


def load_target(name: str) -> Target:
    """Load and validate targets/<name>.toml together with its board."""
    path = resource_dir("targets") / f"{name}.toml"
    if not path.is_file():
        raise EdgekitError(
            f"unknown target '{name}'",
            hint=f"known targets: {', '.join(list_targets())}",
        )
    f = _Fields(_read_toml(path), path)
    f.reject_unknown(
        {
            "name",
            "description",
            "arch",
            "board",
            "capabilities",
            "kernels",
            "compiler",
            "emulator",
            "counting",
        }
    )
    if f.get("name", str) != name:
        raise EdgekitError(f"'name' must equal the file name '{name}'", str(path))

    capabilities = frozenset(f.strings("capabilities"))
    unknown = sorted(capabilities - KNOWN_CAPABILITIES)
    if unknown:
        raise EdgekitError(
            f"unknown capabilities {unknown}",
            str(path),
            hint=f"known: {', '.join(sorted(KNOWN_CAPABILITIES))}",
        )
    kernels = f.strings("kernels")
    if not kernels or kernels[-1] != "portable" or not set(kernels) <= KNOWN_KERNELS:
        raise EdgekitError(
            "'kernels' must list known kernel families and end with 'portable'",
            str(path),
            hint=f"known: {', '.join(sorted(KNOWN_KERNELS))}",
        )

    c = f.table("compiler")
    c.reject_unknown({"command", "cflags", "ldflags", "linker", "packages"})
    command = c.get("command", str)
    compiler = Compiler(
        command=command,
        cflags=c.strings("cflags"),
        ldflags=c.strings("ldflags", default=()),
        linker=c.get("linker", str, command),
        packages=c.strings("packages", default=()),
    )

    e = f.table("emulator")
    e.reject_unknown({"kind", "command", "machine", "cpu", "args", "packages"})
    kind = e.choice("kind", EMULATOR_KINDS)
    emulator = Emulator(
        kind=kind,
        command=e.get("command", str, None),
        machine=e.get("machine", str, None),
        cpu=e.get("cpu", str, None),
        args=e.strings("args", default=()),
        packages=e.strings("packages", default=()),
    )
    if kind.startswith("qemu") and not emulator.command:
        raise EdgekitError("'emulator.command' is required for QEMU emulators", str(path))

    k = f.table("counting")
    k.reject_unknown({"method", "icount_shift"})
    counting = Counting(
        method=k.choice("method", COUNTING_METHODS), icount_shift=k.get("icount_shift", int, 0)
    )
    board = load_board(f.get("board", str))
    target = Target(
        name=name,
        description=f.get("description", str),
        arch=f.get("arch", str),
        path=path,
        board=board,
        capabilities=capabilities,
        kernels=kernels,
        compiler=compiler,
        emulator=emulator,
        counting=counting,
    )
    _check_consistency(target)
    return target


def _check_consistency(t: Target) -> None:
    where = str(t.path)
    if t.emulator.kind == "qemu-system" and t.emulator.machine != t.board.machine:
        raise EdgekitError(
            f"emulator.machine '{t.emulator.machine}' differs from board "
            f"{t.board.name}'s machine '{t.board.machine}'",
            where,
        )
    if t.emulator.kind == "qemu-system" and t.board.io != "semihost":
        raise EdgekitError("a qemu-system target needs a semihosting board", where)
    if t.counting.method == "none":
        return
    if t.emulator.kind != "qemu-system" or t.board.counter is None:
        raise EdgekitError(
            "instruction counting needs a qemu-system emulator and a board with a [counter]",
            where,
        )
    r = t.ticks_per_instruction()
    if t.counting.method == "icount-csr" and r != int(r):
        raise EdgekitError("icount-csr needs a whole number of ticks per instruction", where)
    if t.counting.method == "icount-timer" and r <= 2:
        # With more than 2 ticks per instruction, rounding a tick difference (off by < 1 tick
        # because both reads truncate) recovers the instruction count exactly.
        raise EdgekitError(
            f"counter gives {r:g} ticks per instruction at icount shift "
            f"{t.counting.icount_shift}; exact counting needs more than 2",
            where,
            hint="raise counting.icount_shift",
        )
