"""Target and board data files: every one loads, and bad ones fail with a clear message."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import edgekit.targets as targets_mod
from edgekit.errors import EdgekitError
from edgekit.resources import resource_dir
from edgekit.targets import list_boards, list_targets, load_board, load_target

EXPECTED_TARGETS = {
    "host",
    "cortex-m0plus",
    "cortex-m3",
    "cortex-m4",
    "cortex-m7",
    "cortex-m33",
    "cortex-m55",
    "cortex-m85",
    "rv32imc",
    "rv32imafc-zfh",
    "rv32-zfh-v",
    "aarch64-neon-fp16",
}


def test_expected_targets_exist() -> None:
    assert set(list_targets()) >= EXPECTED_TARGETS


@pytest.mark.parametrize("name", list_targets())
def test_target_loads(name: str) -> None:
    t = load_target(name)
    assert t.name == name
    assert t.compiler.cflags and t.kernels[-1] == "portable"
    if t.can_count:
        r = t.ticks_per_instruction()
        assert r > 2 or (t.counting.method == "icount-csr" and r == int(r))
    if t.emulator.kind == "qemu-system":
        assert t.board.linker_script is not None and t.board.io == "semihost"


def _linker_memory(script: Path) -> dict[str, tuple[int, int]]:
    """MEMORY regions of a linker script; lengths may be sums like 8M - 4K."""
    units = {"": 1, "K": 1024, "M": 1024 * 1024}

    def size(expr: str) -> int:
        terms = re.findall(r"([+-]?)\s*(0x[0-9a-fA-F]+|\d+)([KM]?)", expr)
        return sum((-1 if sign == "-" else 1) * int(n, 0) * units[u] for sign, n, u in terms)

    pattern = r"(\w+)\s*\([a-z!]+\)\s*:\s*ORIGIN\s*=\s*(0x[0-9a-fA-F]+)\s*,\s*LENGTH\s*=\s*([^\n]+)"
    return {
        m.group(1): (int(m.group(2), 16), size(m.group(3)))
        for m in re.finditer(pattern, script.read_text())
    }


@pytest.mark.parametrize("name", list_boards())
def test_board_memory_matches_linker_script(name: str) -> None:
    board = load_board(name)
    if board.linker_script is None:
        assert board.io == "stdio"
        return
    declared = {r.name: (r.origin, r.size) for r in board.memory}
    assert declared == _linker_memory(board.linker_script)


def test_unknown_target_lists_known_ones() -> None:
    with pytest.raises(EdgekitError) as info:
        load_target("cortex-m99")
    assert "unknown target 'cortex-m99'" in str(info.value)
    assert "cortex-m4" in (info.value.hint or "")


def _fake_targets_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    (tmp_path / "targets").mkdir()
    # the real targets stay visible: boards name them, and loading a target loads its board
    for real_target in resource_dir("targets").glob("*.toml"):
        (tmp_path / "targets" / real_target.name).write_text(real_target.read_text())
    (tmp_path / "targets" / "bad.toml").write_text(text)
    real = resource_dir

    def fake(name: str) -> Path:
        return tmp_path / "targets" if name == "targets" else real(name)

    monkeypatch.setattr(targets_mod, "resource_dir", fake)


def _valid_text() -> str:
    return (resource_dir("targets") / "cortex-m4.toml").read_text().replace("cortex-m4", "bad", 1)


def test_bad_capability_is_rejected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = _valid_text().replace('"dsp", "simd32"', '"dsp", "simd64"')
    _fake_targets_dir(tmp_path, monkeypatch, text)
    with pytest.raises(EdgekitError, match="simd64") as info:
        load_target("bad")
    assert "bad.toml" in str(info.value)


def test_missing_key_names_the_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = re.sub(r'(?m)^command = "arm-none-eabi-gcc"\n', "", _valid_text())
    _fake_targets_dir(tmp_path, monkeypatch, text)
    with pytest.raises(EdgekitError, match=r"'compiler\.command' is missing"):
        load_target("bad")


def test_inexact_counting_setup_is_rejected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 25 MHz timer at shift 5: 0.8 ticks per instruction cannot resolve single instructions.
    text = _valid_text().replace("icount_shift = 7", "icount_shift = 5")
    _fake_targets_dir(tmp_path, monkeypatch, text)
    with pytest.raises(EdgekitError, match="ticks per instruction"):
        load_target("bad")
