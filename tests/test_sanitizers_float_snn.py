"""FP16/FP32 and spiking generated C under AddressSanitizer + UBSan and cppcheck.

tests/test_sanitizers.py covers the INT8 models; this file covers the other two code generators
with the same harness (bench/fuzz_readers.py SANITIZER_MAIN, every buffer in its own heap
block) and the same flags (-std=c99 -Wall -Wextra -Werror -pedantic, -fsanitize=address,undefined
-fno-sanitize-recover=all):

- float: the ONNX seed models of the fuzz corpus (conv, dense, residual, folded constants) at
  --precision fp16 and fp32; outputs equal the cffi host build byte for byte.
- spiking: NIR chains (LIF, IF, LI readouts, delays before and after the weights) with each of
  the dense, gather and scatter synapse kernels. A run is several 64-step samples in a row with
  the state carried between them and a reset in the middle, compared with the host build
  (SnnHostModel) driven the same way, so state handling is under the sanitizers too.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from edgekit.pipeline import compile_graph
from edgekit.runners.host import HostModel
from tests.conftest import load_module

pytest.importorskip("onnx")


FUZZ = load_module("fuzz_readers", "bench/fuzz_readers.py")
SAN = load_module("test_sanitizers", "tests/test_sanitizers.py")
ONNX_SEEDS = dict(FUZZ.onnx_seed_models())


def _cppcheck(files: dict[str, str], name: str, folder: Path) -> subprocess.Popen[str] | None:
    if not shutil.which("cppcheck"):
        return None
    folder.mkdir(parents=True)
    for fname, text in files.items():
        (folder / fname).write_text(text)
    return subprocess.Popen(
        [*SAN.CPPCHECK, *SAN.CPPCHECK_KNOWN, "-I", str(folder), str(folder / f"{name}.c")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def _cppcheck_clean(proc: subprocess.Popen[str] | None) -> None:
    if proc is not None:
        report = proc.communicate(timeout=600)[0]
        assert proc.returncode == 0, report


@pytest.mark.parametrize("precision", ["fp16", "fp32"])
@pytest.mark.parametrize("model", sorted(ONNX_SEEDS))
def test_float_models_sanitized_equal_host(model: str, precision: str, tmp_path: Path) -> None:
    from edgekit.frontends.onnx import read_onnx

    compiled = compile_graph(read_onnx(ONNX_SEEDS[model], model, model), precision=precision)
    gen = compiled.generated
    check = _cppcheck(gen.files, gen.name, tmp_path / "cppcheck")
    samples = FUZZ.random_samples(compiled.graph, 4, 11)
    # random bit patterns include NaN and inf halves; finite inputs exercise the arithmetic
    samples = [[np.nan_to_num(a, nan=0.5, posinf=1.0, neginf=-1.0) for a in s] for s in samples]
    try:
        exe = FUZZ.build_sanitized(gen.files, gen.name, tmp_path / "asan")
        got = FUZZ.run_sanitized(exe, compiled.graph, samples)
        host = HostModel(compiled)
        want = [host.run(s) for s in samples]
    finally:
        _cppcheck_clean(check)
    for k, (g, w) in enumerate(zip(got, want, strict=True)):
        for a, b in zip(g, w, strict=True):
            assert a.tobytes() == b.tobytes(), f"{model} {precision}: sample {k} differs"
    assert len({s[0].tobytes() for s in samples}) == len(samples)


# --- spiking ------------------------------------------------------------------------------------


def _snn(seed: int, kernel: str) -> object:
    nir = pytest.importorskip("nir")
    assert nir
    import io

    from fuzz_nir import NIR_SECONDS, nir_seed  # bench/ is on sys.path via fuzz_readers

    from edgekit.snn.compile import compile_snn
    from edgekit.snn.importers import from_nir
    from edgekit.snn.quantize import quantize

    graph = nir.read(io.BytesIO(nir_seed(seed)))
    net = from_nir(graph, NIR_SECONDS, f"seed{seed}")
    return compile_snn(quantize(net, f"snn{seed}"), "host", kernel)


@pytest.mark.parametrize("kernel", ["dense", "gather", "scatter"])
@pytest.mark.parametrize("seed", [2, 3, 6, 8])  # seeds whose outputs are active
def test_spiking_models_sanitized_equal_host_across_samples(
    seed: int, kernel: str, tmp_path: Path
) -> None:
    from edgekit.snn import ops
    from edgekit.snn.host import SnnHostModel

    compiled = _snn(seed, kernel)
    gen = compiled.generated  # type: ignore[attr-defined]
    check = _cppcheck(gen.files, gen.name, tmp_path / "cppcheck")
    try:
        exe = FUZZ.build_sanitized(gen.files, gen.name, tmp_path / "asan")
    finally:
        _cppcheck_clean(check)
    host = SnnHostModel(compiled)  # type: ignore[arg-type]
    steps = compiled.harness_steps  # type: ignore[attr-defined]
    rng = np.random.default_rng(seed)
    controls = [1, 0, 0, 1, 0]  # reset, carry state twice, reset mid-run, carry
    trains = [rng.random((steps, host.n_in)) < 0.3 for _ in controls]
    raw_in = b"".join(
        np.uint32(c).tobytes() + ops.pack_spikes(t).tobytes()
        for c, t in zip(controls, trains, strict=True)
    )
    want = b""
    for c, t in zip(controls, trains, strict=True):
        if c & 1:
            host.reset()
        out = host.run(t)
        want += ops.pack_spikes(out).tobytes() if host.spiking_out else out.astype("<i4").tobytes()
    src, dst = tmp_path / "in.bin", tmp_path / "out.bin"
    src.write_bytes(raw_in)
    proc = subprocess.run(
        [str(exe), str(src), str(dst), str(len(controls))],
        capture_output=True, text=True, env={**os.environ, **FUZZ.SANITIZER_ENV}, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0 and "runtime error" not in proc.stderr, proc.stderr[-3000:]
    assert dst.read_bytes() == want
    # not vacuous: the network does something on these inputs
    assert any(want), "no output activity"
