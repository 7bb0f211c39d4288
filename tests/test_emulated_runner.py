"""The emulated runner end to end, with the hand-written fake model in tests/fixtures."""

from __future__ import annotations

import dataclasses
import importlib.util
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from edgekit.errors import EdgekitError
from edgekit.runners.emulated import (
    CALIBRATION_EXPECTED,
    build_firmware,
    elf_sizes,
    firmware_key,
    run_firmware,
)
from edgekit.targets import Counting, Emulator, Target, list_targets, load_board, load_target

FIXTURE = Path(__file__).parent / "fixtures" / "fake_model"
OUTPUT_SPECS = [((12,), np.uint8), ((1,), np.uint32)]
# Every target that can run / count is exercised, so a new target file is tested by default.
RUN_TARGETS = [n for n in list_targets() if load_target(n).can_run]
COUNT_TARGETS = [n for n in list_targets() if load_target(n).can_count]

pytestmark = pytest.mark.emulated


def fake_model_reference(in0: np.ndarray, in1: np.ndarray) -> list[np.ndarray]:
    i = np.arange(490)
    weights = (np.arange(256) * 37 + 11) & 0xFF
    a = (in0.astype(np.int64) * 3 + in1[i % 10] + weights[i & 255]) & 0xFF
    b = a ^ a[(i + 7) % 490]
    out0 = (b[:480].reshape(12, 40).sum(axis=1) & 0xFF).astype(np.uint8)
    h = 0
    for v in b.tolist():
        h = ((h + v) * 2654435761) & 0xFFFFFFFF
    return [out0, np.array([h], dtype=np.uint32)]


def _samples(n: int, seed: int = 0) -> list[list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [
        [rng.integers(0, 256, 490, dtype=np.uint8), rng.integers(0, 256, 10, dtype=np.uint8)]
        for _ in range(n)
    ]


def _missing_tool(t: Target) -> str | None:
    """Why `t` cannot be built and run here, or None."""
    for cmd in {t.compiler.command, t.compiler.linker, t.emulator.command or ""} - {""}:
        if cmd == "ziglang":
            if importlib.util.find_spec("ziglang") is None:
                return "the ziglang wheel is not installed"
        elif shutil.which(cmd) is None:
            return f"{cmd} is not installed"
    if any("picolibc.specs" in f for f in (*t.compiler.cflags, *t.compiler.ldflags)):
        probe = subprocess.run(
            [t.compiler.linker, "--specs=picolibc.specs", "-E", "-x", "c", "/dev/null"],
            capture_output=True,
        )
        if probe.returncode != 0:
            return f"picolibc for {t.compiler.linker} is not installed"
    return None


def _target(name: str) -> Target:
    t = load_target(name)
    reason = _missing_tool(t)
    if reason:
        pytest.skip(f"{name}: {reason} ({', '.join(t.compiler.packages + t.emulator.packages)})")
    return t


@pytest.fixture(scope="module")
def firmware(tmp_path_factory: pytest.TempPathFactory):
    """Build the fake model once per (target, defines) for the whole module."""
    cache: dict[tuple[str, tuple[tuple[str, object], ...]], Path] = {}

    def get(name: str, **defines: object) -> tuple[Target, Path]:
        t = _target(name)
        key = (name, tuple(sorted(defines.items())))
        if key not in cache:
            out = tmp_path_factory.mktemp(f"fw-{name}")
            cache[key] = build_firmware(t, [FIXTURE / "fake_model.c"], [FIXTURE], out, defines)
        return t, cache[key]

    return get


@pytest.mark.parametrize("name", RUN_TARGETS)
def test_outputs_match_reference(firmware, name: str) -> None:
    t, elf = firmware(name)
    samples = _samples(3)
    result = run_firmware(t, elf, samples, OUTPUT_SPECS, timeout_s=30)
    assert len(result.outputs) == 3
    for got, sample in zip(result.outputs, samples, strict=True):
        want = fake_model_reference(*sample)
        assert got[0].dtype == np.uint8 and got[1].dtype == np.uint32
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
    assert result.instructions is None


@pytest.mark.parametrize("name", COUNT_TARGETS)
def test_instruction_counts_exact_and_repeatable(firmware, name: str) -> None:
    t, elf = firmware(name)
    samples = _samples(2, seed=1)
    first = run_firmware(t, elf, samples, OUTPUT_SPECS, count_instructions=True)
    second = run_firmware(t, elf, samples, OUTPUT_SPECS, count_instructions=True)

    # Hand-written calibration code of known length: 1000 nops, and loops of 2n+1 instructions.
    calib = {k: v for k, v in first.calibration.items() if k != "overhead"}
    assert calib == CALIBRATION_EXPECTED
    assert first.calibration == second.calibration

    assert first.instructions == second.instructions
    assert first.layer_instructions == second.layer_instructions
    assert first.load_instructions == second.load_instructions
    assert first.store_instructions == second.store_instructions
    # The fake model's work does not depend on the data, so samples cost the same.
    assert first.instructions[0] == first.instructions[1] > 1000
    assert len(first.layer_instructions[0]) == 3 and min(first.layer_instructions[0]) > 100
    # Whole-model count = load + layers + store, give or take call overhead per window.
    parts = first.load_instructions[0] + sum(first.layer_instructions[0])
    parts += first.store_instructions[0]
    assert abs(first.instructions[0] - parts) < 60
    assert first.layerwise_mismatches == []
    for got, sample in zip(first.outputs, samples, strict=True):
        np.testing.assert_array_equal(got[0], fake_model_reference(*sample)[0])


@pytest.mark.parametrize("name", ["cortex-m4", "cortex-m0plus"])
def test_hardfault_is_reported(firmware, name: str) -> None:
    t, elf = firmware(name, FAKE_MODEL_FAULT=1)
    with pytest.raises(EdgekitError, match="HardFault") as info:
        run_firmware(t, elf, _samples(1), OUTPUT_SPECS, timeout_s=10)
    assert "pc=0x" in str(info.value)
    if name == "cortex-m4":
        assert "UNDEFINSTR" in str(info.value)


def test_riscv_trap_is_reported(firmware) -> None:
    t, elf = firmware("rv32imc", FAKE_MODEL_FAULT=1)
    with pytest.raises(EdgekitError, match="CPU fault Breakpoint") as info:
        run_firmware(t, elf, _samples(1), OUTPUT_SPECS, timeout_s=10)
    assert "mcause=0x00000003" in str(info.value)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("cortex-m33", "STKOF"),  # Armv8-M stack limit register
        ("cortex-m4", "CPU lockup"),  # stack runs below RAM into unmapped space
        ("rv32imc", "StoreAccessFault"),  # PMP guard page below RAM
        ("aarch64-neon-fp16", "DataAbort"),  # unmapped space below DRAM
    ],
)
def test_stack_overflow_is_reported(firmware, name: str, expected: str) -> None:
    t, elf = firmware(name, FAKE_MODEL_STACK_OVERFLOW=1)
    with pytest.raises(EdgekitError, match=expected):
        run_firmware(t, elf, _samples(1), OUTPUT_SPECS, timeout_s=10)


def test_hang_times_out(firmware) -> None:
    t, elf = firmware("cortex-m3", FAKE_MODEL_HANG=1)
    with pytest.raises(EdgekitError, match="did not finish within 1 s"):
        run_firmware(t, elf, _samples(1), OUTPUT_SPECS, timeout_s=1)


def test_model_error_code_is_reported(firmware) -> None:
    t, elf = firmware("cortex-m4", FAKE_MODEL_RC=7)
    with pytest.raises(EdgekitError, match="harness_run returned 7"):
        run_firmware(t, elf, _samples(1), OUTPUT_SPECS)


def test_wrong_input_size_is_reported(firmware) -> None:
    t, elf = firmware("cortex-m4")
    bad = [[np.zeros(491, np.uint8), np.zeros(10, np.uint8)]]
    with pytest.raises(EdgekitError, match="byte size differs"):
        run_firmware(t, elf, bad, OUTPUT_SPECS)


def test_counting_unavailable_is_an_error(firmware) -> None:
    t, elf = firmware("host")
    with pytest.raises(EdgekitError, match="cannot count instructions"):
        run_firmware(t, elf, _samples(1), OUTPUT_SPECS, count_instructions=True)


SEMIHOST_RISCV = [
    n for n in RUN_TARGETS
    if load_target(n).arch.startswith("rv") and load_target(n).board.io == "semihost"
]  # fmt: skip


@pytest.mark.parametrize("name", SEMIHOST_RISCV)
def test_riscv_semihosting_markers_share_one_page(firmware, name: str) -> None:
    """QEMU takes `slli x0,x0,0x1f; ebreak; srai x0,x0,7` as a semihosting call only when all
    three sit in one page; across a page end the ebreak traps and the firmware hangs (it did,
    once a model grew the code by the right amount). The markers start a 16-byte block."""
    objdump = shutil.which("riscv64-unknown-elf-objdump")
    if objdump is None:
        pytest.skip("riscv64-unknown-elf-objdump is not installed (gcc-riscv64-unknown-elf)")
    _, elf = firmware(name)
    listing = subprocess.run([objdump, "-d", str(elf)], capture_output=True, text=True,
                             check=True).stdout.splitlines()  # fmt: skip
    words = [m.groups() for m in map(re.compile(r"\s*([0-9a-f]+):\s+([0-9a-f]+)\s").match, listing)
             if m]  # fmt: skip
    calls = [i for i, w in enumerate(words) if w[1] == "00100073"]
    assert calls, "no ebreak in the harness"
    for i in calls:
        (before, slli), (_, srai) = words[i - 1], words[i + 1]
        assert (slli, srai) == ("01f01013", "40705013"), words[i - 1 : i + 2]
        assert int(before, 16) % 16 == 0, words[i - 1 : i + 2]


def test_firmware_cache_key_covers_the_harness(tmp_path: Path, monkeypatch) -> None:
    """Cached firmware is keyed on the harness too, not only the generated files: a changed
    harness source gives a new key, so a fixed harness is never masked by an old ELF."""
    import edgekit.runners.emulated as emulated

    t = load_target("rv32imc")
    before = firmware_key(t).hexdigest()
    real = emulated.resource_dir
    harness = tmp_path / "csrc" / "harness"
    shutil.copytree(real("csrc") / "harness", harness)
    (harness / "ek_semihost.c").write_text((harness / "ek_semihost.c").read_text() + "\n")
    monkeypatch.setattr(
        emulated, "resource_dir", lambda name: tmp_path / "csrc" if name == "csrc" else real(name)
    )
    assert firmware_key(t).hexdigest() != before


def test_elf_sizes(firmware) -> None:
    _, elf = firmware("cortex-m4")
    sizes = elf_sizes(elf)
    assert sizes["rodata"] >= 256  # the fake weight table
    assert sizes["bss"] >= 490 * 3  # the fake arena
    assert sizes["flash"] == sizes["text"] + sizes["rodata"] + sizes["data"]
    assert sizes["stack"] == 0x4000
    assert sizes["ram"] == sizes["data"] + sizes["bss"] + sizes["stack"]


def test_image_too_large_for_board(tmp_path: Path) -> None:
    t = _target("cortex-m4")
    (tmp_path / "big.c").write_text("const unsigned char huge[5u << 20] = {1};\n")
    # A harness that touches the table, so --gc-sections cannot drop it.
    glue = (FIXTURE / "harness_model.h").read_text()
    glue = glue.replace(
        "static inline void harness_run_layer(int i) { fake_layer(i); }",
        "extern const unsigned char huge[];\n"
        "static inline void harness_run_layer(int i)\n"
        "{\n    fake_layer(i + *(volatile const unsigned char *)huge);\n}",
    )
    (tmp_path / "harness_model.h").write_text(glue)
    sources = [FIXTURE / "fake_model.c", tmp_path / "big.c"]
    with pytest.raises(EdgekitError, match="does not fit in region SSRAM1"):
        build_firmware(t, sources, [tmp_path, FIXTURE], tmp_path / "out")


def test_missing_toolchain_names_the_package(tmp_path: Path) -> None:
    t = load_target("cortex-m4")
    broken = dataclasses.replace(
        t,
        compiler=dataclasses.replace(
            t.compiler, command="edgekit-no-such-gcc", linker="edgekit-no-such-gcc"
        ),
    )
    with pytest.raises(EdgekitError, match="'edgekit-no-such-gcc' not found") as info:
        build_firmware(broken, [FIXTURE / "fake_model.c"], [FIXTURE], tmp_path)
    assert "apt-get install gcc-arm-none-eabi picolibc-arm-none-eabi" in (info.value.hint or "")


def test_missing_emulator_names_the_package(tmp_path: Path) -> None:
    t = load_target("cortex-m4")
    broken = dataclasses.replace(
        t, emulator=dataclasses.replace(t.emulator, command="edgekit-no-such-qemu")
    )
    with pytest.raises(EdgekitError, match="emulator 'edgekit-no-such-qemu' not found") as info:
        run_firmware(broken, tmp_path / "x.elf", _samples(1), OUTPUT_SPECS)
    assert "apt-get install qemu-system-arm" in (info.value.hint or "")


def test_build_only_target_cannot_run(tmp_path: Path) -> None:
    with pytest.raises(EdgekitError, match="no emulator"):
        run_firmware("cortex-m85", tmp_path / "x.elf", _samples(1), OUTPUT_SPECS)


def test_linux_user_mode_target(tmp_path: Path) -> None:
    """The qemu-user path: a static Linux binary with stdio I/O (no shipped target uses it)."""
    base = load_target("aarch64-neon-fp16")
    t = dataclasses.replace(
        base,
        board=load_board("hosted"),
        compiler=dataclasses.replace(base.compiler, cflags=("-O2",), ldflags=("-static",)),
        emulator=Emulator("qemu-user", "qemu-aarch64", None, "cortex-a76", (), ("qemu-user",)),
        counting=Counting("none", 0),
    )
    for tool in (t.compiler.command, "qemu-aarch64"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    elf = build_firmware(t, [FIXTURE / "fake_model.c"], [FIXTURE], tmp_path)
    samples = _samples(2, seed=3)
    result = run_firmware(t, elf, samples, OUTPUT_SPECS)
    for got, sample in zip(result.outputs, samples, strict=True):
        np.testing.assert_array_equal(got[1], fake_model_reference(*sample)[1])
