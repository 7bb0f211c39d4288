"""`edgekit doctor` reports what each target needs, judged from PATH."""

from __future__ import annotations

import json
import subprocess
import sys


def _doctor_json(env_path: str | None = None) -> dict:
    import os

    env = dict(os.environ)
    if env_path is not None:
        env["PATH"] = env_path
    proc = subprocess.run(
        [sys.executable, "-m", "edgekit.cli", "doctor", "--json"],
        capture_output=True, text=True, env=env, check=True,
    )
    return json.loads(proc.stdout)


def _doctor(env_path: str | None = None) -> list[dict]:
    return _doctor_json(env_path)["targets"]


def test_every_target_is_listed() -> None:
    from edgekit.targets import list_targets

    assert [r["target"] for r in _doctor()] == list_targets()


def test_missing_tools_name_their_packages(tmp_path) -> None:
    rows = {r["target"]: r for r in _doctor(env_path=str(tmp_path))}  # an empty PATH
    m4 = rows["cortex-m4"]
    assert not m4["build"] and not m4["run"]
    assert "gcc-arm-none-eabi" in m4["install"] and "qemu-system-arm" in m4["install"]


def test_json_carries_the_flash_tools_and_pyocd_like_the_text(tmp_path) -> None:
    from edgekit.targets import list_boards, load_board

    doc = _doctor_json(env_path=str(tmp_path))  # an empty PATH: no flash tool on it
    assert set(doc) == {"targets", "flash_tools", "pyocd"}
    tools = {t["tool"]: t for t in doc["flash_tools"]}
    flashed = {n for n in list_boards() if load_board(n).flash is not None}
    assert {b for t in tools.values() for b in t["boards"]} == flashed
    for name, t in tools.items():
        # pyOCD is imported, not run, so PATH does not decide it; the others are commands
        assert t["installed"] == (name == "pyocd" and doc["pyocd"]["installed"]), name
    assert isinstance(doc["pyocd"]["installed"], bool)
    if doc["pyocd"]["installed"]:
        assert doc["pyocd"]["version"] and "probes" in doc["pyocd"]
    else:
        assert "pip install" in doc["pyocd"]["install"]
