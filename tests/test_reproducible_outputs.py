"""Byte-identical sources and reports from every code generator, across processes.

tests/test_output_safety.py checks the INT8 host build. Here the other generators run twice in
separate Python processes (different PYTHONHASHSEEDs, different working and output folders):
float ONNX at fp16, the DSP and RVV kernel families, and the spiking path from a NIR file
(`snn convert` and `snn generate`). Every file must be identical, hold no absolute path, and
each report.json must trace the firmware back: edgekit version, sha256 of the input, options.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edgekit import __version__

REPO = Path(__file__).resolve().parents[1]


def _run(args: list[str], seed: str, cwd: Path) -> None:
    env = {**os.environ, "PYTHONHASHSEED": seed}
    proc = subprocess.run([sys.executable, "-m", "edgekit.cli", *args], capture_output=True,
                          text=True, env=env, cwd=cwd)  # fmt: skip
    assert proc.returncode == 0, proc.stderr


def _onnx_model(folder: Path) -> Path:
    pytest.importorskip("onnx")
    spec = importlib.util.spec_from_file_location("fuzz_readers", REPO / "bench/fuzz_readers.py")
    assert spec and spec.loader
    fuzz = sys.modules.get("fuzz_readers")
    if fuzz is None:
        fuzz = importlib.util.module_from_spec(spec)
        sys.modules["fuzz_readers"] = fuzz
        spec.loader.exec_module(fuzz)
    path = folder / "cnn.onnx"
    path.write_bytes(dict(fuzz.onnx_seed_models())["onnx_cnn"])
    return path


def _tflite_model(folder: Path) -> Path:
    from edgekit.models.dscnn import build_dscnn_kws

    path = folder / "dscnn.tflite"
    path.write_bytes(build_dscnn_kws(0))
    return path


def _nir_model(folder: Path) -> Path:
    nir = pytest.importorskip("nir")
    sys.path.insert(0, str(REPO / "bench"))
    from fuzz_nir import nir_seed

    path = folder / "net.nir"
    buf = io.BytesIO(nir_seed(3))
    nir.write(str(path), nir.read(buf))
    return path


def _compare(a: Path, b: Path, tmp: Path) -> list[str]:
    names = sorted(str(p.relative_to(a)) for p in a.rglob("*") if p.is_file())
    assert names == sorted(str(p.relative_to(b)) for p in b.rglob("*") if p.is_file())
    for f in names:
        data = (a / f).read_bytes()
        assert data == (b / f).read_bytes(), f
        assert str(tmp).encode() not in data, f"{f} holds an absolute path"
    return names


CASES = {
    "onnx-fp16": (_onnx_model, ["generate", "{model}", "--precision", "fp16", "-o", "{out}"]),
    "dsp-m4": (_tflite_model, ["generate", "{model}", "--target", "cortex-m4", "-o", "{out}"]),
    "rvv": (_tflite_model, ["generate", "{model}", "--target", "rv32imc-zve32x", "-o", "{out}"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_generators_write_identical_files_and_traceable_reports(case: str, tmp_path: Path) -> None:
    make, argv = CASES[case]
    model = make(tmp_path)
    outs = []
    for sub, seed in (("a", "1"), ("b", "424242")):
        (tmp_path / sub).mkdir()
        out = tmp_path / sub / f"out_{sub}"
        _run([x.format(model=model, out=out) for x in argv], seed, tmp_path / sub)
        outs.append(out)
    names = _compare(outs[0], outs[1], tmp_path)
    assert "report.json" in names and any(n.endswith(".c") for n in names)
    report = json.loads((outs[0] / "report.json").read_text())
    assert report["edgekit_version"] == __version__
    assert report["source_sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()
    target = argv[argv.index("--target") + 1] if "--target" in argv else "host"
    assert report["options"]["target"] == target


def test_spiking_convert_and_generate_are_reproducible(tmp_path: Path) -> None:
    model = _nir_model(tmp_path)
    outs = []
    for sub, seed in (("a", "7"), ("b", "99991")):
        (tmp_path / sub).mkdir()
        ekir = tmp_path / sub / "net.ekir"
        _run(["snn", "convert", str(model), "--dt", "0.001", "-o", str(ekir), "--samples", "2",
              "--steps", "20"], seed, tmp_path / sub)  # fmt: skip
        out = tmp_path / sub / "gen"
        _run(["snn", "generate", str(ekir), "-o", str(out)], seed, tmp_path / sub)
        outs.append((ekir, out))
    assert outs[0][0].read_bytes() == outs[1][0].read_bytes()
    names = _compare(outs[0][1], outs[1][1], tmp_path)
    assert any(n.endswith(".c") for n in names) and "report.json" in names
    report = json.loads((outs[0][1] / "report.json").read_text())
    assert report["edgekit_version"] == __version__
    assert report["source_sha256"] == hashlib.sha256(outs[0][0].read_bytes()).hexdigest()
    assert report["origin_sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()
    assert report["options"]["target"] == "host"
