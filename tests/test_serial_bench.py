"""The serial benchmark protocol end to end: firmware from `edgekit build` running on QEMU's
model of a board, its UART on a TCP port, and `edgekit bench DIR --port socket://...`."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from edgekit.cli import main
from edgekit.firmware import build_project
from edgekit.flash import flash_commands
from edgekit.models.dscnn import build_tiny_mlp

pytestmark = pytest.mark.emulated
if not (shutil.which("qemu-system-arm") and shutil.which("arm-none-eabi-gcc")):
    pytest.skip("needs qemu-system-arm and arm-none-eabi-gcc", allow_module_level=True)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("models") / "tiny.tflite"
    path.write_bytes(build_tiny_mlp())
    return path


@pytest.fixture(scope="module")
def an386(tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("fw") / "tiny_an386"
    assert build_project(tiny, "qemu-mps2-an386", out).built
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _bench_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict]:
    rc = main(["bench", *argv, "--json"])
    return rc, json.loads(capsys.readouterr().out)


def test_bench_over_qemu_uart_is_bit_exact(an386: Path, tiny: Path, capsys) -> None:
    """`edgekit flash` starts QEMU (UART0 on TCP); `edgekit bench DIR --port socket://`."""
    port = _free_port()
    argv = flash_commands(an386, str(port))[0][-1]
    qemu = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        rc, r = _bench_json(capsys, str(an386), "--port", f"socket://127.0.0.1:{port}",
                            "--samples", "3", "--runs", "2")
    finally:
        qemu.terminate()
        qemu.wait(timeout=10)
    assert rc == 0 and r["bit_exact"] and r["mismatched_samples"] == []
    assert r["reference"] == "the host build of the same generated C"
    assert r["samples"] == 3 and r["runs_per_sample"] == 2
    assert [row["kind"] for row in r["layers"]] == ["fully_connected", "fully_connected"]
    assert r["layerwise_matches_whole_run"]
    # An independent measurement: the emulated runner (a different firmware main, semihosted)
    # counts the same generated code under the same -icount. The two harnesses differ only in
    # how the counter window is framed, a few instructions at most.
    capsys.readouterr()
    assert main(["bench", str(tiny), "--target", "cortex-m4", "--json"]) == 0
    emulated = json.loads(capsys.readouterr().out)["instructions"]
    assert abs(r["median"]["instructions"] - emulated) <= 4


def test_bench_qemu_convenience_and_cortex_m55(tiny: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "tiny_an547"
    assert build_project(tiny, "qemu-mps3-an547", out).built
    rc, r = _bench_json(capsys, str(out), "--qemu", "--samples", "2", "--runs", "1")
    assert rc == 0 and r["bit_exact"]
    assert r["board"] == "qemu-mps3-an547" and r["median"]["instructions"] > 0
    assert {row["kernel"] for row in r["layers"]} <= {"mve", "portable"}


def test_wrong_outputs_are_reported(an386: Path, tmp_path: Path, capsys) -> None:
    """Firmware built from altered weights (the model sources put back afterwards, so the host
    side still builds the original): the comparison must fail with exit code 1."""
    bad = tmp_path / "bad"
    shutil.copytree(an386, bad)
    src = bad / "model" / "tiny_weights.h"
    original = src.read_text()
    # flip one weight byte of the first array
    altered, n = re.subn(r"(\{\s*)(-?\d+)", lambda m: f"{m.group(1)}{(int(m.group(2)) + 1) % 100}",
                         original, count=1)
    assert n == 1
    src.write_text(altered)
    subprocess.run(["make", "-B", "-C", str(bad)], check=True, capture_output=True)
    src.write_text(original)
    rc, r = _bench_json(capsys, str(bad), "--qemu", "--samples", "4", "--runs", "1",
                        "--no-layers")
    assert rc == 1 and not r["bit_exact"] and r["mismatched_samples"]


def test_no_board_on_the_port_is_a_clean_error(an386: Path, capsys) -> None:
    port = _free_port()  # nothing listens there
    assert main(["bench", str(an386), "--port", f"socket://127.0.0.1:{port}",
                 "--timeout", "1"]) == 2
    assert "cannot open serial port" in capsys.readouterr().err


def test_model_path_of_bench_still_works(tiny: Path, capsys) -> None:
    assert main(["bench", str(tiny), "--samples", "2"]) == 0
    assert "arena" in capsys.readouterr().out


def test_silent_board_times_out_with_what_to_check(an386: Path, capsys) -> None:
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    held = []
    threading.Thread(target=lambda: held.append(server.accept()), daemon=True).start()
    try:
        assert main(["bench", str(an386), "--port",
                     f"socket://127.0.0.1:{server.getsockname()[1]}", "--timeout", "2"]) == 2
    finally:
        server.close()
    err = capsys.readouterr().err
    assert "no answer from the board within 2 s" in err and "edgekit flash" in err


def test_physical_hifive1_image_runs_on_qemus_model_of_the_chip(tiny: Path, tmp_path: Path,
                                                                capsys) -> None:
    """The hifive1-revb firmware, unchanged (its board.c clock and pin set-up, the SiFive UART
    driver, mcycle), on QEMU's FE310 model of the HiFive1 Rev B: the physical board path run
    for real, reported in cycles at the board clock."""
    if not (shutil.which("qemu-system-riscv32") and shutil.which("riscv64-unknown-elf-gcc")):
        pytest.skip("needs qemu-system-riscv32 and riscv64-unknown-elf-gcc")
    out = tmp_path / "tiny_hifive1"
    assert build_project(tiny, "hifive1-revb", out).built
    port = _free_port()
    qemu = subprocess.Popen(
        ["qemu-system-riscv32", "-M", "sifive_e,revb=true", "-nographic", "-monitor", "none",
         "-serial", f"tcp:127.0.0.1:{port},server=on,wait=on", "-icount", "shift=0,sleep=off",
         "-kernel", str(out / "firmware.elf")],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        rc, r = _bench_json(capsys, str(out), "--port", f"socket://127.0.0.1:{port}",
                            "--samples", "2", "--runs", "2")
    finally:
        qemu.terminate()
        qemu.wait(timeout=10)
    assert rc == 0 and r["bit_exact"]
    assert r["board_kind"] == "physical" and r["clock_hz"] == 16_000_000
    assert r["median"]["cycles"] > 0 and r["median"]["ms"] > 0
    assert [row["kernel"] for row in r["layers"]] == ["rv32", "rv32"]


def test_physical_mps3_image_on_qemu_flags_the_missing_cycle_counter(tiny: Path, tmp_path: Path,
                                                                     capsys) -> None:
    """The mps3-an547 (FPGA board) image on QEMU's AN547: it runs and is bit-exact, but QEMU
    has no DWT, so CYCCNT reads 0; the result must say the timings are meaningless."""
    out = tmp_path / "tiny_mps3"
    assert build_project(tiny, "mps3-an547", out).built
    port = _free_port()
    qemu = subprocess.Popen(
        ["qemu-system-arm", "-M", "mps3-an547", "-nographic", "-monitor", "none", "-serial",
         f"tcp:127.0.0.1:{port},server=on,wait=on", "-kernel", str(out / "firmware.elf")],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        rc, r = _bench_json(capsys, str(out), "--port", f"socket://127.0.0.1:{port}",
                            "--samples", "1", "--runs", "1", "--no-layers")
    finally:
        qemu.terminate()
        qemu.wait(timeout=10)
    assert rc == 0 and r["bit_exact"]
    assert r["counter_advanced"] is False
