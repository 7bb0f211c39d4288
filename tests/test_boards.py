"""Board catalogue, firmware projects (`edgekit build`) and flashing (`edgekit flash`)."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgekit.cli import main
from edgekit.errors import EdgekitError
from edgekit.firmware import build_project, fit_check, object_needs, target_for_board
from edgekit.flash import flash_commands, run_flash
from edgekit.models.dscnn import build_tiny_mlp
from edgekit.targets import list_boards, load_board

ISSUE_BOARDS = {
    "nucleo-l4r5zi", "nucleo-h7a3zi-q", "nrf52840-dk", "nrf5340-dk", "rpi-pico2",
    "esp32-c3-devkit", "hifive1-revb", "mps3-an547",
}
FIRMWARE_BOARDS = [b for b in list_boards() if load_board(b).uart is not None]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("models") / "tiny.tflite"
    path.write_bytes(build_tiny_mlp())
    return path


def _toolchain(board: str) -> str | None:
    t = target_for_board(load_board(board))
    prefix = t.compiler.command[: -len("gcc")]
    for tool in (t.compiler.command, prefix + "objcopy", "make"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    return None


# --- catalogue --------------------------------------------------------------------------------


def test_catalogue_lists_the_issue_boards_and_the_virtual_ones(capsys) -> None:
    assert main(["boards", "--json"]) == 0
    rows = {r["id"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(rows) >= ISSUE_BOARDS
    assert {"qemu-mps2-an386", "qemu-mps3-an547", "qemu-riscv32-virt"} <= set(rows)
    for board in ISSUE_BOARDS:
        r = rows[board]
        assert r["kind"] == "physical" and r["firmware"]
        assert r["clock_hz"] and r["flash_bytes"] and r["ram_bytes"] and r["core"]
        assert r["flash_method"] in {"pyocd", "openocd", "picotool", "esptool"}
    assert rows["qemu-mps2-an386"]["kind"] == "virtual"
    assert rows["nucleo-l4r5zi"]["clock_hz"] == 120_000_000  # the MLPerf Tiny reference setup
    assert main(["boards"]) == 0
    assert "nucleo-l4r5zi" in capsys.readouterr().out


# Datasheet figures, written out here rather than read from board.toml: (code+const, RAM) KiB.
DATASHEET_KIB = {
    "nucleo-l4r5zi": (2048, 640),
    "nucleo-h7a3zi-q": (2048, 1024),
    "nrf52840-dk": (1024, 256),
    "nrf5340-dk": (1024, 512),
    "rpi-pico2": (4096, 512),
    "rpi-pico2-riscv": (4096, 512),
    "hifive1-revb": (4096 - 64, 16),
    "mps3-an547": (512 + 2048, 512),
    "esp32-c3-devkit": (64 + 128, 0x2C700 / 1024),
}


@pytest.mark.parametrize("board", sorted(DATASHEET_KIB))
def test_memory_map_matches_the_datasheet_and_link_ld(board: str, capsys) -> None:
    main(["boards", "--json"])
    row = {r["id"]: r for r in json.loads(capsys.readouterr().out)}[board]
    assert (row["flash_bytes"] / 1024, row["ram_bytes"] / 1024) == DATASHEET_KIB[board]
    # every region of the linker script is declared in board.toml with the same origin
    b = load_board(board)
    declared = {m.name: (m.origin, m.size) for m in b.memory}
    text = b.linker_script.read_text()
    for name, origin in re.findall(r"^\s*(\w+)\s*\([rwx]+\)\s*:\s*ORIGIN\s*=\s*(\w+)", text, re.M):
        assert declared[name][0] == int(origin, 0), name


# Clock trees, from the reference manuals rather than board.toml: (core, UART kernel clock) Hz.
# H7A3: PLL1 280 MHz at VOS0, USART3 on rcc_pclk1 = 280 / 2 (RM0455); ESP32-C3: 160 MHz CPU from
# the 480 MHz PLL, UART0 on the 80 MHz APB clock (TRM "Reset and Clock"); L4R5: LPUART1 on HSI16.
CLOCKS = {
    "nucleo-l4r5zi": (120_000_000, 16_000_000),
    "nucleo-h7a3zi-q": (280_000_000, 140_000_000),
    "esp32-c3-devkit": (160_000_000, 80_000_000),
}
CYCLE_COUNTERS = {"dwt-cyccnt", "riscv-mcycle", "esp32c3-mpccr"}


@pytest.mark.parametrize("board", sorted(CLOCKS))
def test_clock_tree_matches_the_reference_manual(board: str) -> None:
    b = load_board(board)
    assert (b.clock_hz, b.uart.clock_hz) == CLOCKS[board]


def test_cycle_counters_tick_at_the_core_clock() -> None:
    # bench turns ticks into milliseconds with the counter's rate: a core clock changed
    # without its cycle counter would report every board time off by the ratio
    boards = [load_board(n) for n in list_boards()]
    counted = [b for b in boards if b.counter and b.counter.kind in CYCLE_COUNTERS]
    assert {b.name for b in counted} >= set(CLOCKS)
    for b in counted:
        assert b.counter.clock_hz == b.clock_hz, b.name


def test_board_without_serial_port_is_refused(tiny: Path, tmp_path: Path) -> None:
    with pytest.raises(EdgekitError, match="no serial port"):
        build_project(tiny, "qemu-mps2-an385", tmp_path / "x")
    assert not (tmp_path / "x").exists()


# --- build ------------------------------------------------------------------------------------


@pytest.mark.parametrize("board", FIRMWARE_BOARDS)
def test_every_board_builds_and_links(board: str, tiny: Path, tmp_path: Path) -> None:
    why = _toolchain(board)
    if why:
        pytest.skip(why)
    out = tmp_path / board
    result = build_project(tiny, board, out)
    assert result.built, result.missing
    for f in ("Makefile", "CMakeLists.txt", "edgekit-build.json", "firmware.elf", "firmware.hex",
              "model/tiny.c", "model/model.ekir", "app/ek_bench_main.c", "board/link.ld"):
        assert (out / f).is_file(), f
    b = load_board(board)
    names = {r["region"] for r in result.regions}
    assert set(b.region_aliases().values()) <= names
    assert all(0 < r["used"] <= r["size"] for r in result.regions if r["region"] in names)
    # the reset vector / entry lies in the board's code region
    t = target_for_board(b)
    readelf = shutil.which(t.compiler.command[: -len("gcc")] + "readelf")
    if readelf:
        hdr = subprocess.run([readelf, "-h", str(out / "firmware.elf")], capture_output=True,
                             text=True, check=True).stdout
        entry = int(re.search(r"Entry point address:\s+(0x[0-9a-f]+)", hdr).group(1), 16)
        code = next(m for m in b.memory if m.name == b.region_aliases()["EK_CODE"])
        assert code.origin <= entry < code.origin + code.size


BOARD_C = sorted(b for b in FIRMWARE_BOARDS if (load_board(b).path / "board.c").is_file())


@pytest.mark.parametrize("board", BOARD_C)
def test_board_firmware_compiles_without_warnings(board: str, tiny: Path, tmp_path: Path) -> None:
    # the clock trees are register code nobody runs here: the compiler is its only reviewer
    why = _toolchain(board)
    if why:
        pytest.skip(why)
    out = tmp_path / board
    build_project(tiny, board, out, compile_now=False)
    cflags = re.search(r"^CFLAGS := (.*)$", (out / "Makefile").read_text(), re.M).group(1)
    proc = subprocess.run(["make", "-C", str(out), f"CFLAGS={cflags} -Wextra -Werror"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (out / "firmware.elf").is_file()


def test_cortex_m7_caches_come_on_before_a_model_runs_unchanged(tiny: Path, tmp_path: Path) -> None:
    # The H7A3 board runs the same sequence from ek_board_init; here it runs under QEMU's M7
    # before a model whose outputs are checked, and the board image must really call it
    # (--gc-sections drops an uncalled function, so its symbol proves the call).
    from edgekit.runners.emulated import build_firmware, run_firmware
    from edgekit.targets import load_target
    from tests.test_emulated_runner import FIXTURE, OUTPUT_SPECS, _samples, fake_model_reference

    t = load_target("cortex-m7")
    for tool in (t.compiler.command, t.emulator.command):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    common = Path(__file__).parents[1] / "boards" / "common"
    sources = [FIXTURE / "fake_model.c", common / "cortex_m7_cache.c",
               Path(__file__).parent / "fixtures" / "m7_caches_first.c"]
    elf = build_firmware(t, sources, [FIXTURE, common / "app"], tmp_path / "fw",
                         extra_cflags=["-Wall", "-Wextra", "-Werror"])
    samples = _samples(2, seed=5)
    result = run_firmware(t, elf, samples, OUTPUT_SPECS, timeout_s=30)
    for got, sample in zip(result.outputs, samples, strict=True):
        for g, want in zip(got, fake_model_reference(*sample), strict=True):
            np.testing.assert_array_equal(g, want)

    board = "nucleo-h7a3zi-q"
    why = _toolchain(board)
    if why:
        pytest.skip(why)
    out = tmp_path / board
    assert build_project(tiny, board, out).built
    nm = subprocess.run(["arm-none-eabi-nm", str(out / "firmware.elf")], capture_output=True,
                        text=True, check=True).stdout
    assert re.search(r" T ek_cortex_m7_caches_on$", nm, re.M), "board.c does not enable the caches"


@pytest.mark.parametrize("board, image_type", [("rpi-pico2", "42012110"),
                                               ("rpi-pico2-riscv", "42010111")])
def test_pico2_image_carries_the_boot_rom_block(board: str, image_type: str, tiny: Path,
                                                tmp_path: Path) -> None:
    if _toolchain(board):
        pytest.skip("no toolchain")
    build_project(tiny, board, tmp_path / "p")
    image = (tmp_path / "p" / "firmware.bin").read_bytes()
    start = image.find(bytes.fromhex("d3deffff"))  # PICOBIN_BLOCK_MARKER_START, little-endian
    assert 0 <= start < 4096 - 20
    # IMAGE_TYPE item: EXE for RP2350, Arm Secure (0x1021) or RISC-V (0x1101); datasheet 5.9.5
    assert image[start + 4 : start + 8] == bytes.fromhex(image_type)
    assert image[start + 16 : start + 20] == bytes.fromhex("793512ab")  # end marker


def test_cmake_project_builds_the_same_image(tiny: Path, tmp_path: Path) -> None:
    if _toolchain("nucleo-l4r5zi") or not shutil.which("cmake"):
        pytest.skip("needs arm-none-eabi-gcc and cmake")
    out = tmp_path / "l4"
    build_project(tiny, "nucleo-l4r5zi", out)
    bld = tmp_path / "cmake-build"
    subprocess.run(["cmake", "-S", str(out), "-B", str(bld)], check=True, capture_output=True)
    subprocess.run(["cmake", "--build", str(bld)], check=True, capture_output=True)
    size = shutil.which("arm-none-eabi-size")

    def sizes(elf: Path) -> str:
        return subprocess.run([size, str(elf)], capture_output=True, text=True,
                              check=True).stdout.split("\n")[1].split()[:3]

    assert (bld / "firmware.hex").is_file()
    assert sizes(bld / "firmware.elf") == sizes(out / "firmware.elf")


def test_missing_toolchain_still_writes_the_project(tiny: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    result = build_project(tiny, "nucleo-l4r5zi", tmp_path / "l4")
    assert not result.built
    assert "arm-none-eabi-gcc" in result.missing and "gcc-arm-none-eabi" in result.missing
    assert (tmp_path / "l4" / "Makefile").is_file()
    assert not (tmp_path / "l4" / "firmware.elf").exists()


def test_fit_check_message_names_need_and_capacity() -> None:
    board = load_board("nrf52840-dk")
    with pytest.raises(EdgekitError, match=r"model needs 1100 KiB flash \(FLASH\), board "
                       r"nrf52840-dk has 1024 KiB"):
        fit_check(board, {"EK_CODE": 100 * 1024, "EK_CONST": 1000 * 1024}, "model")
    with pytest.raises(EdgekitError, match=r"needs 300 KiB RAM \(RAM\), board nrf52840-dk has "
                       r"256 KiB"):
        fit_check(board, {"EK_RAM": 300 * 1024}, "firmware")
    fit_check(board, {"EK_CODE": 500 * 1024, "EK_CONST": 500 * 1024, "EK_RAM": 200 * 1024},
              "model")


def test_fit_check_fails_before_anything_is_written(tmp_path: Path, capsys) -> None:
    from tests.conftest import mlperf_model

    kws = mlperf_model("kws")  # arena and I/O alone exceed the HiFive1's 16 KB
    assert main(["build", str(kws), "--board", "hifive1-revb", "-o", str(tmp_path / "k")]) == 2
    err = capsys.readouterr().err
    assert re.search(r"model needs \d+ KiB RAM \(DTIM\), board hifive1-revb has 16 KiB", err)
    assert not (tmp_path / "k").exists()


def test_object_sizes_feed_the_pre_link_check(tmp_path: Path) -> None:
    if not shutil.which("arm-none-eabi-gcc"):
        pytest.skip("no arm toolchain")
    src = tmp_path / "x.c"
    src.write_text("const char w[5000] = {1};\nchar b[3000];\nint d = 7;\n"
                   "int f(void) { return b[d] + w[d]; }\n")
    obj = tmp_path / "x.o"
    subprocess.run(["arm-none-eabi-gcc", "-mthumb", "-mcpu=cortex-m4", "-O2", "-c",
                    "-fdata-sections", str(src), "-o", str(obj)], check=True)
    needs = object_needs([obj])
    assert needs["EK_CONST"] == 5000 + 4  # w, and the load image of d
    assert needs["EK_RAM"] == 3000 + 4
    assert needs["EK_CODE"] > 0
    with pytest.raises(EdgekitError, match="firmware needs"):
        fit_check(load_board("hifive1-revb"), {"EK_RAM": needs["EK_RAM"] * 6}, "firmware")


# --- flash ------------------------------------------------------------------------------------


def _pyocd(target: str, image: str, uid: str | None = None, opts: str = "",
           cli_opts: str = "") -> list[str]:
    """The pyOCD API call `edgekit flash` makes, then the `pyocd flash` command it equals."""
    fmt = image.rsplit(".", 1)[1]
    uid_arg = "None" if uid is None else f"'{uid}'"
    cli_uid = "" if uid is None else f" --uid {uid}"
    return [
        f"pyocd API: ConnectHelper.session_with_chosen_probe(unique_id={uid_arg}, "
        f"target_override='{target}'{opts}); FileProgrammer(session).program('{{d}}/{image}', "
        f"file_format='{fmt}'); session.target.reset()",
        f"# the same as: pyocd flash --target {target}{cli_opts}{cli_uid} {{d}}/{image}",
    ]


# The exact commands, written out by hand from each tool's documentation (pyOCD's: the API call
# edgekit makes, and the CLI line that does the same).
EXPECTED_FLASH = {
    "nucleo-l4r5zi": _pyocd("stm32l4r5zitx", "firmware.elf"),
    "nucleo-h7a3zi-q": _pyocd("stm32h7a3zitxq", "firmware.elf"),
    "nrf52840-dk": _pyocd("nrf52840", "firmware.hex"),
    "nrf5340-dk": _pyocd("nrf5340_xxaa", "firmware.hex", opts=", options={{'primary_core': 0}}",
                         cli_opts=" -O primary_core=0"),
    "mps3-an547": _pyocd("cortex_m", "firmware.elf"),
    "rpi-pico2": ["picotool load --update --verify --execute {d}/firmware.elf"],
    "hifive1-revb": ["openocd -f board/sifive-hifive1-revb.cfg -c 'program {d}/firmware.elf "
                     "verify reset exit'"],
    "esp32-c3-devkit": [
        "esptool.py --chip esp32c3 elf2image --flash_mode dio --output {d}/firmware.esp.bin "
        "{d}/firmware.elf",
        "esptool.py --chip esp32c3 --port /dev/ttyUSB0 --baud 460800 write_flash 0x0 "
        "{d}/firmware.esp.bin",
    ],
    "rpi-pico2-riscv": ["picotool load --update --verify --execute {d}/firmware.elf"],
    "qemu-mps3-an547": [
        "qemu-system-arm -M mps3-an547 -nographic -monitor none -serial "
        "tcp:127.0.0.1:5555,server=on,wait=on -icount shift=7,sleep=off -kernel {d}/firmware.elf"
    ],
    "qemu-mps2-an386": [
        "qemu-system-arm -M mps2-an386 -nographic -monitor none -serial "
        "tcp:127.0.0.1:5555,server=on,wait=on -icount shift=7,sleep=off -kernel {d}/firmware.elf"
    ],
}
WITH_PROBE = {
    "nucleo-l4r5zi": _pyocd("stm32l4r5zitx", "firmware.elf", uid="066DFF")[-1],
    "rpi-pico2": "picotool load --update --verify --execute --ser 066DFF {d}/firmware.elf",
    "hifive1-revb": "openocd -f board/sifive-hifive1-revb.cfg -c 'adapter serial 066DFF' -c "
    "'program {d}/firmware.elf verify reset exit'",
    "esp32-c3-devkit": "esptool.py --chip esp32c3 --port 066DFF --baud 460800 write_flash 0x0 "
    "{d}/firmware.esp.bin",
}


def _fake_build(tmp_path: Path, board: str) -> Path:
    """A build folder as far as flashing cares: the manifest and the images."""
    d = tmp_path / board
    d.mkdir()
    (d / "edgekit-build.json").write_text(json.dumps({"board": board}))
    for f in ("firmware.elf", "firmware.hex", "firmware.bin"):
        (d / f).write_bytes(b"\x7fELF")
    return d.resolve()


def test_every_board_with_a_flash_method_has_an_expected_command() -> None:
    assert {b for b in list_boards() if load_board(b).flash} == set(EXPECTED_FLASH)


@pytest.mark.parametrize("board", sorted(EXPECTED_FLASH))
def test_flash_dry_run_prints_the_exact_command(board: str, tmp_path: Path, capsys) -> None:
    d = _fake_build(tmp_path, board)
    assert main(["flash", str(d), "--dry-run"]) == 0
    assert capsys.readouterr().out.splitlines() == [c.format(d=d) for c in EXPECTED_FLASH[board]]
    if board in WITH_PROBE:
        assert main(["flash", str(d), "--dry-run", "--probe", "066DFF"]) == 0
        assert capsys.readouterr().out.splitlines()[-1] == WITH_PROBE[board].format(d=d)


def _fake_tool(bin_dir: Path, name: str, body: str) -> None:
    bin_dir.mkdir(exist_ok=True)
    tool = bin_dir / name
    tool.write_text(f"#!{sys.executable}\nimport sys, pathlib\n{body}\n")
    tool.chmod(tool.stat().st_mode | stat.S_IEXEC)


def test_fake_probe_receives_the_dry_run_command(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    d = _fake_build(tmp_path, "hifive1-revb")
    log = tmp_path / "calls.txt"
    _fake_tool(tmp_path / "bin", "openocd",
               f"pathlib.Path({str(log)!r}).open('a').write(' '.join(sys.argv[1:]) + '\\n')")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    run_flash(d, probe="066DFF")
    cmds, _ = flash_commands(d, "066DFF")
    assert log.read_text().splitlines() == [" ".join(cmds[0][1:])]


def test_esptool_runs_elf2image_then_write_flash(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    d = _fake_build(tmp_path, "esp32-c3-devkit")
    log = tmp_path / "calls.txt"
    _fake_tool(tmp_path / "bin", "esptool.py",
               f"pathlib.Path({str(log)!r}).open('a').write(sys.argv[3] + '\\n')")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    run_flash(d, probe="/dev/ttyUSB3")
    assert log.read_text().splitlines() == ["elf2image", "--port"]


def test_no_probe_attached_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys) -> None:
    d = _fake_build(tmp_path, "rpi-pico2")
    _fake_tool(tmp_path / "bin", "picotool",
               "print('No accessible RP-series devices in BOOTSEL mode were found.')\n"
               "sys.exit(249)")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    assert main(["flash", str(d)]) == 2
    err = capsys.readouterr().err
    assert "picotool found no probe or board to flash rpi-pico2" in err
    assert "BOOTSEL" in err  # the board's note says what to do


def test_missing_flash_tool_names_the_install_command(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      capsys) -> None:
    d = _fake_build(tmp_path, "hifive1-revb")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert main(["flash", str(d)]) == 2
    err = capsys.readouterr().err
    assert "openocd not found on PATH" in err and "apt-get install openocd" in err
    d2 = _fake_build(tmp_path, "nrf52840-dk")
    monkeypatch.setitem(sys.modules, "pyocd", None)  # pyOCD is imported, not looked up on PATH
    assert main(["flash", str(d2)]) == 2
    assert "pip install pyocd" in capsys.readouterr().err


def test_flash_needs_a_build_folder(tmp_path: Path, capsys) -> None:
    assert main(["flash", str(tmp_path), "--dry-run"]) == 2
    assert "edgekit build" in capsys.readouterr().err


def test_doctor_lists_the_flash_tools(tmp_path: Path) -> None:
    env = dict(os.environ, PATH=str(tmp_path))  # nothing installed
    out = subprocess.run([sys.executable, "-m", "edgekit.cli", "doctor"], capture_output=True,
                         text=True, env=env, check=True).stdout
    table = out.split("flash tool", 1)[1].split("\n\n", 1)[0]
    rows = {line.split()[0]: line for line in table.splitlines()[1:]}
    assert "nucleo-l4r5zi" in rows["pyocd"]
    # pyOCD is a Python module: an empty PATH does not hide it
    if importlib.util.find_spec("pyocd") is None:
        assert "pip install pyocd" in rows["pyocd"]
    else:
        assert rows["pyocd"].split()[1] == "yes"
    assert "apt-get install picotool" in rows["picotool"]
    assert "pip install esptool" in rows["esptool.py"]
    assert "apt-get install openocd" in rows["openocd"]
