"""`edgekit doctor` reports what each target needs, judged from PATH."""

from __future__ import annotations

import json
import subprocess
import sys


def _doctor(env_path: str | None = None) -> list[dict]:
    import os

    env = dict(os.environ)
    if env_path is not None:
        env["PATH"] = env_path
    proc = subprocess.run(
        [sys.executable, "-m", "edgekit.cli", "doctor", "--json"],
        capture_output=True, text=True, env=env, check=True,
    )
    return json.loads(proc.stdout)


def test_every_target_is_listed() -> None:
    from edgekit.targets import list_targets

    assert [r["target"] for r in _doctor()] == list_targets()


def test_missing_tools_name_their_packages(tmp_path) -> None:
    rows = {r["target"]: r for r in _doctor(env_path=str(tmp_path))}  # an empty PATH
    m4 = rows["cortex-m4"]
    assert not m4["build"] and not m4["run"]
    assert "gcc-arm-none-eabi" in m4["install"] and "qemu-system-arm" in m4["install"]
