"""The CLI as a user meets it: outputs, exit codes, clean errors, no partial output."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgekit.frontends.tflite_writer import TFLiteBuilder
from edgekit.models.dscnn import build_dscnn_kws, build_tiny_mlp


def edgekit(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edgekit.cli", *args], capture_output=True, text=True, cwd=cwd
    )


@pytest.fixture(scope="module")
def dscnn(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("models") / "dscnn.tflite"
    path.write_bytes(build_dscnn_kws(0))
    return path


def _unsupported_model(tmp: Path) -> Path:
    """A valid model: two ops edgekit does not compile (GELU, ELU) around RELU."""
    b = TFLiteBuilder()
    x = b.tensor("x", (1, 8), np.int8, scale=0.1, zero_point=0)
    y = b.tensor("y", (1, 8), np.int8, scale=0.1, zero_point=0)
    z = b.tensor("z", (1, 8), np.int8, scale=0.1, zero_point=0)
    w = b.tensor("w", (1, 8), np.int8, scale=0.1, zero_point=0)
    b.op("GELU", [x], [y])
    b.op("RELU", [y], [z])
    b.op("ELU", [z], [w])
    b.inputs([x])
    b.outputs([w])
    path = tmp / "unsupported.tflite"
    path.write_bytes(b.finish())
    return path


def test_generate_writes_promised_files_reproducibly(dscnn: Path, tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    assert edgekit("generate", str(dscnn), "-o", str(a), "--name", "kws").returncode == 0
    assert edgekit("generate", str(dscnn), "-o", str(b), "--name", "kws").returncode == 0
    names = sorted(p.name for p in a.iterdir())
    for expected in ("kws.h", "kws.c", "kws_weights.h", "edgekit_fixedpoint.h", "model.ekir",
                     "report.json", "harness_model.h"):
        assert expected in names
    for f in names:
        assert (a / f).read_bytes() == (b / f).read_bytes(), f
    report = json.loads((a / "report.json").read_text())
    assert report["totals"]["arena_bytes"] > 0
    assert report["source_sha256"]
    # regenerating into a folder edgekit wrote is allowed
    assert edgekit("generate", str(dscnn), "-o", str(a), "--name", "kws").returncode == 0


@pytest.mark.parametrize("compiler", ["gcc", "clang"])
def test_generated_code_compiles_strictly(dscnn: Path, tmp_path: Path, compiler: str) -> None:
    import shutil

    if not shutil.which(compiler):
        pytest.skip(f"{compiler} is not installed")
    out = tmp_path / "gen"
    assert edgekit("generate", str(dscnn), "-o", str(out), "--name", "kws").returncode == 0
    proc = subprocess.run(
        [compiler, "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O2", "-c",
         str(out / "kws.c"), "-o", str(tmp_path / "kws.o")],
        capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stderr


def test_unsupported_ops_are_listed_in_one_error(tmp_path: Path) -> None:
    model = _unsupported_model(tmp_path)
    out = tmp_path / "never"
    proc = edgekit("generate", str(model), "-o", str(out))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "#0 GELU" in proc.stderr and "#2 ELU" in proc.stderr
    assert "2 unsupported operator(s)" in proc.stderr
    assert not out.exists()
    assert not list(tmp_path.glob(".never*"))


@pytest.mark.parametrize(
    "args, message",
    [
        (["generate", "missing.tflite", "-o", "x"], "model file not found"),
        (["report", "garbage.tflite"], "not a readable TFLite flatbuffer"),
        (["inspect", "garbage.tflite"], "not a readable TFLite flatbuffer"),
        # verify reads the .ekir (its own precision) first, so a corrupt one is named as such
        (["verify", "garbage.ekir"], "garbage.ekir: .ekir format version 0.0 is not supported"),
    ],
)
def test_bad_input_gives_one_clean_error(tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "garbage.tflite").write_bytes(b"\x10\x00\x00\x00TFL3" + b"\xff" * 40)
    (tmp_path / "garbage.ekir").write_bytes(b"EKIR" + b"\x00" * 40)
    proc = edgekit(*args, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("edgekit: error:")


def test_verify_of_an_int8_ekir_asks_for_the_tflite_reference(dscnn: Path, tmp_path: Path) -> None:
    out = tmp_path / "gen"
    assert edgekit("generate", str(dscnn), "-o", str(out), cwd=tmp_path).returncode == 0
    proc = edgekit("verify", str(out / "model.ekir"), cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "verification compares with TFLite Micro, which needs the .tflite model" in proc.stderr
    assert "--reference model.tflite" in proc.stderr


def test_foreign_output_folder_is_refused_without_force(dscnn: Path, tmp_path: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("precious")
    proc = edgekit("generate", str(dscnn), "-o", str(out))
    assert proc.returncode == 2 and "--force" in proc.stderr
    assert (out / "notes.txt").read_text() == "precious"
    assert edgekit("generate", str(dscnn), "-o", str(out), "--force").returncode == 0
    assert not (out / "notes.txt").exists()


def test_verify_passes_and_reports_json(dscnn: Path) -> None:
    proc = edgekit("verify", str(dscnn), "--samples", "20", "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["ok"] and result["samples"] == 20
    assert result["outputs"][0]["mismatched_elements"] == 0


def test_verify_detects_a_wrong_reference_and_names_the_layer(tmp_path: Path) -> None:
    """Compile one model, compare it with another: verify must fail and locate the first layer."""
    ours = tmp_path / "ours.tflite"
    ours.write_bytes(build_tiny_mlp(0))
    other = tmp_path / "other.tflite"
    other.write_bytes(build_tiny_mlp(1))
    ekir_dir = tmp_path / "gen"
    assert edgekit("generate", str(ours), "-o", str(ekir_dir)).returncode == 0
    proc = edgekit("verify", str(ekir_dir / "model.ekir"), "--reference", str(other),
                   "--samples", "10")
    assert proc.returncode == 1
    assert "MISMATCH" in proc.stdout and "first differing layer: #0" in proc.stdout


def test_run_and_dequantize(dscnn: Path, tmp_path: Path) -> None:
    x = np.random.default_rng(0).integers(-128, 128, size=(5, 1, 49, 10, 1), dtype=np.int8)
    np.save(tmp_path / "x.npy", x)
    proc = edgekit("run", str(dscnn), "--input", str(tmp_path / "x.npy"), "-o",
                   str(tmp_path / "y.npy"))
    assert proc.returncode == 0, proc.stderr
    y = np.load(tmp_path / "y.npy")
    assert y.shape == (5, 1, 12) and y.dtype == np.int8
    proc = edgekit("run", str(dscnn), "--input", str(tmp_path / "x.npy"), "-o",
                   str(tmp_path / "yf.npy"), "--dequantize")
    yf = np.load(tmp_path / "yf.npy")
    np.testing.assert_allclose(yf, (y.astype(np.float64) + 128) / 256.0, rtol=1e-6)
    np.testing.assert_allclose(yf.sum(axis=-1), 1.0, atol=0.1)  # softmax probabilities


def test_run_rejects_wrong_input_shape(dscnn: Path, tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.zeros((3, 7), dtype=np.int8))
    proc = edgekit("run", str(dscnn), "--input", str(tmp_path / "x.npy"), "-o",
                   str(tmp_path / "y.npy"))
    assert proc.returncode == 2 and "not a whole number of inputs" in proc.stderr
    assert not (tmp_path / "y.npy").exists()


def test_report_inspect_and_help(dscnn: Path, tmp_path: Path) -> None:
    proc = edgekit("report", str(dscnn), "--json")
    assert proc.returncode == 0
    report = json.loads(proc.stdout)
    assert report["totals"]["macs"] == sum(layer["macs"] for layer in report["layers"]) > 0
    out = tmp_path / "g"
    edgekit("generate", str(dscnn), "-o", str(out))
    proc = edgekit("inspect", str(out / "model.ekir"))
    assert proc.returncode == 0 and "q.multiplier" in proc.stdout and "lowered: yes" in proc.stdout
    for cmd in ("generate", "verify", "run", "report", "inspect", "bench", "demo"):
        helped = edgekit(cmd, "--help")
        assert helped.returncode == 0 and "example" in helped.stdout


def test_model_that_only_reshapes_compiles(tmp_path: Path) -> None:
    b = TFLiteBuilder()
    x = b.tensor("x", (1, 2, 4), np.int8, scale=0.1, zero_point=0)
    y = b.tensor("y", (1, 8), np.int8, scale=0.1, zero_point=0)
    b.op("RESHAPE", [x], [y])
    b.inputs([x])
    b.outputs([y])
    model = tmp_path / "reshape.tflite"
    model.write_bytes(b.finish())
    proc = edgekit("verify", str(model), "--samples", "5")
    assert proc.returncode == 0, proc.stderr


def test_host_bench_reports_arena_and_m4_code_size(dscnn: Path) -> None:
    r = edgekit("bench", str(dscnn), "--samples", "3", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["arena_bytes"] == out["arena_lower_bound_bytes"] > 0
    assert out["tflm_arena_bytes"] > out["arena_bytes"]
    if shutil.which("arm-none-eabi-gcc"):
        # the cross compiler is installed by scripts/test.sh: its code size must be measured
        assert out["cortex_m4_object"]["text"] > 0, r.stderr
