"""`edgekit flash` on pyOCD boards: the API adapter against a fake probe layer, and the names
of the real pyOCD API (skipped when pyOCD is not installed)."""

from __future__ import annotations

import importlib.util
import inspect
import json
import sys
from pathlib import Path
from typing import Any

import pytest

import edgekit.flash as flash
from edgekit.cli import main
from edgekit.flash import PyocdApi, pyocd_call, run_flash


class FakeError(RuntimeError):
    """Stands for pyocd.core.exceptions.Error."""


class FakeProbe:
    def __init__(self, uid: str, description: str = "STLINK-V3") -> None:
        self.unique_id, self.description = uid, description


class FakeLayer:
    """ConnectHelper and FileProgrammer as far as edgekit uses them; records every call."""

    def __init__(self, probes: list[FakeProbe], fail: str | None = None) -> None:
        self.probes, self.fail, self.calls = probes, fail, []

    def api(self) -> PyocdApi:
        layer = self

        class Target:
            def reset(self) -> None:
                layer.calls.append(("reset",))

        class Session:
            target = Target()

            def __enter__(self) -> Session:
                layer.calls.append(("open",))
                return self

            def __exit__(self, *exc: Any) -> None:
                layer.calls.append(("close",))

        class ConnectHelper:
            @staticmethod
            def get_all_connected_probes(blocking: bool = True, unique_id: str | None = None,
                                         print_wait_message: bool = True) -> list[FakeProbe]:
                assert blocking is False
                return [p for p in layer.probes if unique_id is None or unique_id in p.unique_id]

            @staticmethod
            def session_with_chosen_probe(**kwargs: Any) -> Session:
                layer.calls.append(("session", kwargs))
                return Session()

        class FileProgrammer:
            def __init__(self, session: Session, progress: Any = None) -> None:
                self.progress = progress

            def program(self, path: str, file_format: str | None = None) -> None:
                layer.calls.append(("program", path, file_format))
                if layer.fail:
                    raise FakeError(layer.fail)
                for f in (0.0, 0.25, 0.5, 1.0):
                    self.progress(f)

        return PyocdApi(ConnectHelper, FileProgrammer, FakeError, "0.0-fake")


class RecordingBar:
    updates: list[int] = []

    def __init__(self, label: str, total: int | None, enabled: bool | None = None,
                 unit: str = "") -> None:
        RecordingBar.updates = []
        self.label, self.total = label, total

    def update(self, done: int, final: bool = False) -> None:
        RecordingBar.updates.append(done)

    def close(self) -> None:
        RecordingBar.updates.append(-1)


def _build(tmp_path: Path, board: str) -> Path:
    d = tmp_path / board
    d.mkdir()
    (d / "edgekit-build.json").write_text(json.dumps({"board": board}))
    for f in ("firmware.elf", "firmware.hex", "firmware.bin"):
        (d / f).write_bytes(b"\x7fELF")
    return d.resolve()


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeLayer:
    layer = FakeLayer([FakeProbe("0670FF383930")])
    monkeypatch.setattr(flash, "import_pyocd", layer.api)
    monkeypatch.setattr(flash, "Progress", RecordingBar)
    return layer


def test_flash_goes_through_the_pyocd_api(tmp_path: Path, fake: FakeLayer) -> None:
    d = _build(tmp_path, "nucleo-l4r5zi")
    run_flash(d, probe="0670FF")
    assert fake.calls == [
        ("session", {"blocking": False, "return_first": True, "unique_id": "0670FF",
                     "target_override": "stm32l4r5zitx", "options": {}}),
        ("open",),
        ("program", str(d / "firmware.elf"), "elf"),
        ("reset",),
        ("close",),
    ]
    # pyOCD's fractions drive our bar, in percent, and the bar is taken down after
    assert RecordingBar.updates == [0, 25, 50, 100, -1]


def test_nrf5340_flashes_the_application_core_hex(tmp_path: Path, fake: FakeLayer) -> None:
    d = _build(tmp_path, "nrf5340-dk")
    run_flash(d)
    session = fake.calls[0][1]
    assert session["target_override"] == "nrf5340_xxaa" and session["unique_id"] is None
    assert session["options"] == {"primary_core": 0}
    assert fake.calls[2] == ("program", str(d / "firmware.hex"), "hex")


def test_dry_run_does_not_import_pyocd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       capsys) -> None:
    def refuse() -> PyocdApi:
        raise AssertionError("--dry-run imported pyOCD")

    monkeypatch.setattr(flash, "import_pyocd", refuse)
    monkeypatch.setitem(sys.modules, "pyocd", None)
    d = _build(tmp_path, "nucleo-h7a3zi-q")
    assert main(["flash", str(d), "--dry-run", "--probe", "0670FF"]) == 0
    out = capsys.readouterr().out
    assert "unique_id='0670FF', target_override='stm32h7a3zitxq'" in out
    assert f"program('{d}/firmware.elf', file_format='elf')" in out


def test_pyocd_not_installed_names_the_install_command(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       capsys) -> None:
    monkeypatch.setitem(sys.modules, "pyocd", None)
    d = _build(tmp_path, "nucleo-l4r5zi")
    assert main(["flash", str(d)]) == 2
    err = capsys.readouterr().err
    assert "pyOCD is not installed" in err and "pip install pyocd" in err
    assert "edgekit[boards]" in err and "Traceback" not in err


def test_no_probe_is_one_clear_error(tmp_path: Path, fake: FakeLayer, capsys) -> None:
    fake.probes = []
    d = _build(tmp_path, "nrf52840-dk")
    assert main(["flash", str(d), "--probe", "1234"]) == 2
    err = capsys.readouterr().err
    assert "pyocd found no probe with unique id '1234' to flash nrf52840-dk" in err
    assert "pylink-square" in err  # the board's note: the J-Link OB interface firmware
    assert fake.calls == []  # no session was opened


def test_two_probes_without_probe_name_both(tmp_path: Path, fake: FakeLayer, capsys) -> None:
    fake.probes = [FakeProbe("0670FF383930"), FakeProbe("E6614103E7", "CMSIS-DAP")]
    d = _build(tmp_path, "nucleo-l4r5zi")
    assert main(["flash", str(d)]) == 2
    err = capsys.readouterr().err
    assert "2 debug probes are connected: 0670FF383930 (STLINK-V3), E6614103E7 (CMSIS-DAP)" in err
    assert "--probe" in err and fake.calls == []
    # a unique part of one id picks it
    run_flash(d, probe="E661")
    assert fake.calls[0][1]["unique_id"] == "E661"


def test_pyocd_error_is_one_clear_message(tmp_path: Path, fake: FakeLayer, capsys) -> None:
    fake.fail = "Target type 'stm32h7a3zitxq' not recognized"
    d = _build(tmp_path, "nucleo-h7a3zi-q")
    assert main(["flash", str(d)]) == 2
    err = capsys.readouterr().err
    assert "pyocd failed to flash nucleo-h7a3zi-q (target stm32h7a3zitxq): Target type" in err
    assert "pyocd pack install stm32h7a3zitxq" in err and "Traceback" not in err
    assert ("close",) in fake.calls and RecordingBar.updates[-1] == -1


def test_missing_image_is_refused_before_connecting(tmp_path: Path, fake: FakeLayer,
                                                    capsys) -> None:
    d = _build(tmp_path, "mps3-an547")
    (d / "firmware.elf").unlink()
    assert main(["flash", str(d)]) == 2
    assert "firmware.elf has not been built" in capsys.readouterr().err
    assert fake.calls == []


def test_pyocd_argv_parsing() -> None:
    call = pyocd_call(["pyocd", "flash", "--target", "t1", "-O", "primary_core=1", "-O",
                       "x=off", "--uid", "U", "/a/b.axf"])
    assert (call.target, call.unique_id, call.image, call.file_format) == ("t1", "U",
                                                                          Path("/a/b.axf"), "elf")
    assert call.options == {"primary_core": 1, "x": "off"}
    with pytest.raises(flash.EdgekitError, match="no pyOCD API equivalent"):
        pyocd_call(["pyocd", "flash", "--target", "t", "--erase", "chip", "/a.hex"])


def test_doctor_probe_rows_come_from_the_api(fake: FakeLayer) -> None:
    fake.probes = [FakeProbe("0670FF383930"), FakeProbe("E6614103E7", "CMSIS-DAP")]
    assert flash.pyocd_probes(fake.api()) == [
        {"unique_id": "0670FF383930", "description": "STLINK-V3"},
        {"unique_id": "E6614103E7", "description": "CMSIS-DAP"},
    ]


# --- the real pyOCD ---------------------------------------------------------------------------

needs_pyocd = pytest.mark.skipif(importlib.util.find_spec("pyocd") is None,
                                 reason="pyOCD is not installed")


@needs_pyocd
def test_real_pyocd_has_the_api_edgekit_calls() -> None:
    api = flash.import_pyocd()
    inspect.signature(api.connect_helper.get_all_connected_probes).bind(
        blocking=False, unique_id="x", print_wait_message=False)
    sig = inspect.signature(api.connect_helper.session_with_chosen_probe)
    assert {"blocking", "return_first", "unique_id", "options"} <= set(sig.parameters)
    inspect.signature(api.file_programmer).bind(object(), progress=print)
    inspect.signature(api.file_programmer.program).bind(object(), "f.elf", file_format="elf")
    from pyocd.core.options import OPTIONS_INFO

    # session_with_chosen_probe passes these on as session options: they must exist
    assert {"target_override", "primary_core"} <= set(OPTIONS_INFO)
    assert issubclass(api.error, Exception)


@needs_pyocd
def test_board_targets_are_pyocd_builtins_or_pack_part_numbers() -> None:
    from pyocd.target import TARGET, normalise_target_type_name

    from edgekit.targets import list_boards, load_board

    # CMSIS-pack part numbers, as the vendors' device family packs spell them
    pack_parts = {"stm32l4r5zitx": "STM32L4R5ZITx", "stm32h7a3zitxq": "STM32H7A3ZITxQ",
                  "nrf5340_xxaa": "nRF5340_xxAA"}
    seen = set()
    for name in list_boards():
        method = load_board(name).flash
        if method is None or method.tool != "pyocd":
            continue
        target = pyocd_call([a for a in method.command if a != "{probe_args}"]).target
        seen.add(target)
        if target in pack_parts:
            assert normalise_target_type_name(pack_parts[target]) == target
        else:
            assert target in TARGET, f"{name}: {target} is not a pyOCD builtin target"
    assert seen == {"stm32l4r5zitx", "stm32h7a3zitxq", "nrf52840", "nrf5340_xxaa", "cortex_m"}


def test_doctor_shows_pyocd_version_and_probes(fake: FakeLayer, capsys) -> None:
    fake.probes = [FakeProbe("0670FF383930"), FakeProbe("E6614103E7", "CMSIS-DAP")]
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert ("pyOCD 0.0-fake (Python API): 2 debug probe(s): 0670FF383930 (STLINK-V3), "
            "E6614103E7 (CMSIS-DAP)") in out.splitlines()
    fake.probes = []
    assert main(["doctor"]) == 0
    assert "pyOCD 0.0-fake (Python API): no debug probe connected" in capsys.readouterr().out


def test_doctor_names_the_pyocd_install_when_missing(monkeypatch: pytest.MonkeyPatch,
                                                    capsys) -> None:
    monkeypatch.setitem(sys.modules, "pyocd", None)
    assert main(["doctor"]) == 0
    line = capsys.readouterr().out.splitlines()[-1]
    assert line.startswith("pyOCD (flashes the ST-LINK / CMSIS-DAP boards): not installed")
    assert "pip install pyocd" in line
