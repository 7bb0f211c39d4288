"""Every INT8 kernel family's generated C under cppcheck, and under ASan/UBSan where it is C.

tests/test_sanitizers.py checks the portable kernels (target `host`). The target kernel families
are checked here on the same models:

- portable C on the host, with the sanitizers (-fsanitize=address,undefined, every buffer in its
  own heap block) and compared byte for byte with the host build: `cortex-m0plus` (portable),
  `cortex-m4` (Cortex-M DSP kernels; off the target they take their C fallback of each SIMD
  instruction) and `rv32imc` (register-blocked RV32 kernels, plain C).
- cppcheck over the sources of all five families, including the Helium (`cortex-m55`) and RVV
  (`rv32imc-zve32x`) kernels, whose intrinsics only build for their targets (they are run
  bit-exactly under QEMU by the emulated tests).

Known cppcheck reports of these families, each explained in docs/reliability.md, are suppressed
per family so that anything new fails.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from edgekit.frontends.tflite import read_tflite
from edgekit.models.dscnn import build_dscnn_kws, build_tiny_mlp
from edgekit.pipeline import compile_graph
from edgekit.runners.host import HostModel
from tests.conftest import load_module

FUZZ = load_module("fuzz_readers", "bench/fuzz_readers.py")
SAN = load_module("test_sanitizers", "tests/test_sanitizers.py")

MODELS = {
    "dscnn": lambda: build_dscnn_kws(0),
    "tiny_mlp": lambda: build_tiny_mlp(0),
    # odd channel counts and sizes: the register blocks' and SIMD pairs' tails
    **{f"op_{op.lower()}_{s}": (lambda op=op, s=s: FUZZ.single_op_model(op, s))
       for op in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "AVERAGE_POOL_2D")
       for s in (2, 3)},
}  # fmt: skip
RUN_ON_HOST = ["cortex-m0plus", "cortex-m4", "rv32imc"]
CPPCHECK_ONLY = ["cortex-m55", "rv32imc-zve32x"]
# acc >> 31 of a negative int32 is implementation-defined in C99; GCC and clang define it as an
# arithmetic shift, which the DSP requantisation relies on (as CMSIS-NN does). Every family that
# uses a DSP helper includes the header.
DSP_SHIFT = "--suppress=shiftTooManyBitsSigned:*edgekit_dsp.h"
KNOWN = {
    # the RV32 unit loops step by the register block (4 or 8) over constants padded to a
    # multiple of it; cppcheck's value flow ignores the step and the loop start and reports
    # indices past the padding or below 0. The same loops run clean under ASan (test below).
    "rv32imc": ["--suppress=arrayIndexOutOfBoundsCond", "--suppress=negativeIndex"],
}


def _cppcheck(compiled: object, target: str, tmp: Path) -> subprocess.Popen[str] | None:
    if not shutil.which("cppcheck"):
        return None
    c_file = SAN._cppcheck_sources(compiled, tmp / "cppcheck")
    known = [*SAN.CPPCHECK_KNOWN, DSP_SHIFT, *KNOWN.get(target, [])]
    return subprocess.Popen(
        [*SAN.CPPCHECK, *known, "-I", str(c_file.parent), str(c_file)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def _clean(proc: subprocess.Popen[str] | None) -> None:
    if proc is not None:
        report = proc.communicate(timeout=600)[0]
        assert proc.returncode == 0, report


@pytest.mark.parametrize("model", sorted(MODELS))
@pytest.mark.parametrize("target", RUN_ON_HOST)
def test_target_kernels_sanitized_equal_host(target: str, model: str, tmp_path: Path) -> None:
    graph = read_tflite(MODELS[model](), model, model)
    compiled = compile_graph(graph, target)
    gen = compiled.generated
    check = _cppcheck(compiled, target, tmp_path)
    samples = FUZZ.random_samples(compiled.graph, 4, 3)
    exe = FUZZ.build_sanitized(gen.files, gen.name, tmp_path / "asan")
    got = FUZZ.run_sanitized(exe, compiled.graph, samples)
    host = HostModel(compile_graph(graph, "host"))
    want = [host.run(s) for s in samples]
    _clean(check)
    for k, (g, w) in enumerate(zip(got, want, strict=True)):
        for a, b in zip(g, w, strict=True):
            assert a.tobytes() == b.tobytes(), f"{target} {model}: sample {k} differs from host"


@pytest.mark.parametrize("model", sorted(MODELS))
@pytest.mark.parametrize("target", CPPCHECK_ONLY)
def test_intrinsic_kernels_are_cppcheck_clean(target: str, model: str, tmp_path: Path) -> None:
    if not shutil.which("cppcheck"):
        pytest.skip("cppcheck is not installed (scripts/test.sh installs it)")
    compiled = compile_graph(read_tflite(MODELS[model](), model, model), target)
    _clean(_cppcheck(compiled, target, tmp_path))


def test_the_families_really_differ() -> None:
    """Not vacuous: each target compiles the DS-CNN with its own kernels."""
    graph = read_tflite(build_dscnn_kws(0), "dscnn", "dscnn")
    sources = {t: compile_graph(graph, t).generated.files["dscnn.c"]
               for t in ["host", *RUN_ON_HOST, *CPPCHECK_ONLY]}  # fmt: skip
    assert len(set(sources.values())) >= 5
