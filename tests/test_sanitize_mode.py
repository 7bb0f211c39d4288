"""EDGEKIT_SANITIZE=1 (scripts/sanitize_suite.sh) really sanitizes every host-loaded model: a
generated layer planted to write one byte past the arena aborts the process with a sanitizer
report, and the same model unplanted runs clean."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = r"""
import sys
from edgekit.frontends.tflite import read_tflite
from edgekit.models.dscnn import build_tiny_mlp
from edgekit.pipeline import compile_graph
from edgekit.runners.host import HostModel, STRICT_CFLAGS
import numpy as np

assert "-fsanitize=address,undefined" in STRICT_CFLAGS
compiled = compile_graph(read_tflite(build_tiny_mlp(0), "mlp", "mlp"))
if sys.argv[1] == "plant":
    files = compiled.generated.files
    name = compiled.generated.name
    files[f"{name}.c"] = files[f"{name}.c"].replace(
        "static void layer_0_fully_connected(void)\n{",
        "static void layer_0_fully_connected(void)\n{\n"
        "    { volatile size_t k = sizeof(ek_arena); ek_arena[k] = 1; }",
    )
x = np.arange(np.prod(compiled.graph.tensor(compiled.graph.inputs[0]).shape), dtype=np.int8)
out = HostModel(compiled).run([x.reshape(compiled.graph.tensor(compiled.graph.inputs[0]).shape)])
print("ran", out[0].tobytes().hex())
"""


def _env(tmp: Path) -> dict[str, str]:
    cc = shutil.which("gcc")
    if not cc:
        pytest.skip("gcc is needed for the sanitizer runtimes")
    libs = [subprocess.run([cc, f"-print-file-name={lib}"], capture_output=True, text=True)
            .stdout.strip() for lib in ("libasan.so", "libubsan.so")]  # fmt: skip
    if not all(os.path.isabs(p) for p in libs):
        pytest.skip("the sanitizer runtimes are not installed")
    return {**os.environ, "EDGEKIT_SANITIZE": "1", "EDGEKIT_CACHE": str(tmp / "cache"),
            "LD_PRELOAD": " ".join(libs),
            "ASAN_OPTIONS": "detect_leaks=0:verify_asan_link_order=0"}  # fmt: skip


def test_sanitize_mode_catches_a_planted_overflow_and_passes_clean_code(tmp_path: Path) -> None:
    env = _env(tmp_path)
    run = [sys.executable, "-c", SCRIPT]
    clean = subprocess.run([*run, "clean"], capture_output=True, text=True, env=env, cwd=REPO)
    assert clean.returncode == 0 and "ran" in clean.stdout, clean.stderr[-2000:]
    plant = subprocess.run([*run, "plant"], capture_output=True, text=True, env=env, cwd=REPO)
    # UBSan's bounds check sees the constant index first; ASan would report the same write
    assert plant.returncode != 0, plant.stderr[-2000:]
    assert "out of bounds" in plant.stderr or "global-buffer-overflow" in plant.stderr
