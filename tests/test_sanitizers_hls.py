"""The generated HLS C++ under AddressSanitizer and UndefinedBehaviorSanitizer.

Each project's own C-simulation testbench (the model's .cpp and <name>_tb.cpp, with edgekit's
ap_int.h / hls_stream.h) is built by the host g++ with the csim flags plus
-fsanitize=address,undefined -fno-sanitize-recover=all and run on its golden vectors: the int8
MLPs and the op zoo (every HLS op kind) with parallel and streamed I/O and several reuse
factors, and spiking networks with the shift-register and RAM-ring delay lines, resets in the
middle of the trains. A run passes only if every sample is bit-exact and the sanitizers report
nothing. A control plants a signed overflow in a testbench, which the same build must catch.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from codegen.hls.snn import SnnVectors, build_snn_design, render_snn_project
from edgekit.hls.models import build_ids_mlp
from edgekit.hls.parts import get_part
from edgekit.hls.project import HlsOptions, build_project
from edgekit.hls.snn import estimate_snn
from edgekit.models.dscnn import build_tiny_mlp
from edgekit.runners.hls_csim import CXX_FLAGS, cxx_compiler
from tests.test_hls import ZU7EV, build_batched, build_zoo
from tests.test_hls_snn import golden, random_snn, trains

SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all",
            "-fno-omit-frame-pointer", "-g"]  # fmt: skip
# leak checking stays on; the stack-use-after-return check catches escaped locals too
ENV = {
    "ASAN_OPTIONS": "detect_leaks=1:detect_stack_use_after_return=1:abort_on_error=0",
    "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1",
}

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++")


def _sanitized_testbench(files: dict[str, str], name: str, root: Path, plant: str = "") -> str:
    """Build the project's testbench with the sanitizers, run it, return its output."""
    for fname, text in files.items():
        dest = root / fname
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(text + (plant if fname == f"{name}_tb.cpp" else ""))
    cxx, extra = cxx_compiler()
    exe = root / f"{name}_tb_san"
    subprocess.run(
        [cxx, *CXX_FLAGS, *extra, *SANITIZE, f"-I{root}", f"-I{root / 'csim' / 'include'}",
         str(root / f"{name}.cpp"), str(root / f"{name}_tb.cpp"), "-o", str(exe)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    proc = subprocess.run(
        [str(exe)], capture_output=True, text=True, timeout=600, cwd=root,
        env={**os.environ, **ENV},
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    if proc.returncode != 0 or "runtime error" in out or "Sanitizer" in out:
        raise RuntimeError(f"sanitized testbench failed ({proc.returncode}):\n{out[-4000:]}")
    return out


INT8 = [
    ("tiny_mlp", "parallel", 1),
    ("tiny_mlp", "stream", 100),
    ("ids_mlp", "stream", 7),
    ("zoo", "parallel", 1),
    ("zoo", "stream", 2),
    ("batched", "stream", 3),
]
_BUILD = {
    "tiny_mlp": lambda: build_tiny_mlp(seed=3),
    "ids_mlp": lambda: build_ids_mlp(seed=0),
    "zoo": lambda: build_zoo(seed=0),
    "batched": lambda: build_batched(seed=0),
}


@pytest.mark.parametrize(("model", "io", "reuse"), INT8, ids=[f"{m}-{i}-{r}" for m, i, r in INT8])
def test_int8_hls_testbench_is_sanitizer_clean(
    model: str, io: str, reuse: int, tmp_path: Path
) -> None:
    path = tmp_path / f"{model}.tflite"
    path.write_bytes(_BUILD[model]())
    options = HlsOptions(io=io, reuse=reuse, tb_samples=8)
    project = build_project(path, options)
    out = _sanitized_testbench(project.files, project.name, tmp_path / "san")
    assert f"{options.tb_samples} of {options.tb_samples} samples bit-exact" in out


# (seed, sizes, max delays, neurons, reuse per layer): the shift register (reuse 1) and the RAM
# ring with one and several lane rounds, as in test_hls_snn
SNN = [
    (1, (9, 13, 4), (4, 3), ("lif", "li"), [1, 1]),
    (3, (7, 11, 6, 3), (5, 1, 7), ("if", "lif", "lif"), [10, 3, 1]),
    (4, (16, 20, 5), (9, 2), ("lif", "li"), [63, 2]),
]


@pytest.mark.parametrize(("seed", "sizes", "delays", "neurons", "reuses"), SNN)
@pytest.mark.parametrize("io", ["parallel", "stream"])
def test_spiking_hls_testbench_is_sanitizer_clean(
    seed: int, sizes: tuple[int, ...], delays: tuple[int, ...], neurons: tuple[str, ...],
    reuses: list[int], io: str, tmp_path: Path,
) -> None:  # fmt: skip
    graph = random_snn(seed, sizes, delays, neurons)
    x, resets = trains(sizes[0], 72, seed)
    design = build_snn_design(graph, graph.name, io)
    for layer, r in zip(design.layers, reuses, strict=True):
        layer.set_reuse(r)
    want, counts = golden(graph, x, resets)
    assert counts[0] > 0, "the first layer never spikes: the run would check little"
    est = estimate_snn(design, get_part(ZU7EV), 200.0)
    files = render_snn_project(design, ZU7EV, 200.0, SnnVectors(x, resets, want, 0), "",
                               est.interval)  # fmt: skip
    out = _sanitized_testbench(files, graph.name, tmp_path / "san")
    assert f"{x.shape[0]} of {x.shape[0]} steps bit-exact" in out


def test_the_sanitized_build_catches_a_planted_overflow(tmp_path: Path) -> None:
    path = tmp_path / "tiny.tflite"
    path.write_bytes(build_tiny_mlp(seed=3))
    project = build_project(path, HlsOptions(io="parallel", reuse=1, tb_samples=2))
    plant = (
        "\n#include <climits>\n"
        "volatile int ek_planted_max = INT_MAX;\n"
        "int ek_planted = ek_planted_max + int(ek_planted_max > 0);  // runs before main\n"
    )
    with pytest.raises(RuntimeError, match="signed integer overflow"):
        _sanitized_testbench(project.files, project.name, tmp_path / "san", plant)
