"""The four MLPerf Tiny int8 models, cross-compiled and run under QEMU, equal TFLite Micro."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from edgekit.pipeline import compile_file
from edgekit.reference.tflm import run_tflm
from edgekit.targets import load_target
from edgekit.verify import compare, random_inputs
from tests.conftest import mlperf_model

pytestmark = [pytest.mark.mlperf, pytest.mark.emulated]

SAMPLES = 4


def _require(target: str) -> None:
    t = load_target(target)
    for tool in (t.compiler.command, t.emulator.command):
        if tool and not shutil.which(tool):
            pytest.skip(f"{tool} is not installed (needed for {target})")


@pytest.mark.parametrize("target", ["cortex-m4", "cortex-m55", "cortex-m33"])
@pytest.mark.parametrize("key", ["ad", "kws", "ic", "vww"])
def test_bit_exact_under_qemu(target: str, key: str) -> None:
    from edgekit.runners.emulated_model import EmulatedModel

    _require(target)
    path = mlperf_model(key)
    compiled = compile_file(path, target)
    inputs = random_inputs(compiled.graph, SAMPLES, seed=7)
    ours = EmulatedModel(compiled).run(inputs).outputs
    result = compare(compiled, ours, run_tflm(path.read_bytes(), inputs))
    assert result.ok, result.to_json()


def test_bench_reports_exact_counts_as_json() -> None:
    _require("cortex-m4")
    path = mlperf_model("ad")
    cmd = [
        sys.executable,
        "-m",
        "edgekit.cli",
        "bench",
        str(path),
        "--target",
        "cortex-m4",
        "--per-layer",
        "--json",
    ]
    first = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
    second = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
    for key in ("instructions", "macs", "arena_bytes", "flash_bytes"):
        assert first[key] > 0
    assert first["instructions"] == second["instructions"]  # deterministic
    assert first["macs"] == 264_192  # the published MAC count of the AD autoencoder
    assert sum(layer["instructions"] for layer in first["layers"]) <= first["instructions"]
    assert sum(layer["macs"] for layer in first["layers"]) == first["macs"]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edgekit.cli", *args], capture_output=True, text=True, timeout=600
    )


def test_cli_verify_int8_on_rv32imc_under_qemu() -> None:
    """Issue 4's command line: `edgekit verify kws_ref_model.tflite --target rv32imc --emulate`."""
    _require("rv32imc")
    done = _cli("verify", str(mlperf_model("kws")), "--target", "rv32imc", "--emulate",
                "--samples", "2")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "bit-exact" in done.stdout and "rv32imc" in done.stdout


def test_cli_bench_fp16_next_to_fp32() -> None:
    """Issue 4's `edgekit bench MODEL --precision fp16 --target cortex-m55 --compare fp32`."""
    _require("cortex-m55")
    path = mlperf_model("ad").with_name("ad01_fp32.tflite")
    if not path.is_file():
        pytest.skip(f"{path} not found")
    done = _cli("bench", str(path), "--precision", "fp16", "--target", "cortex-m55",
                "--compare", "fp32", "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    res = json.loads(done.stdout)
    assert res["target"] == "cortex-m55"
    fp16, fp32 = res["precisions"]["fp16"], res["precisions"]["fp32"]
    for r in (fp16, fp32):
        assert r["macs"] == 264_192 and r["instructions"] > 0 and r["flash_bytes"] > 0
    # activations take 2 bytes instead of 4: the arena plan of the same graph halves exactly
    assert 2 * fp16["arena_bytes"] == fp32["arena_bytes"]
