"""Generated C under AddressSanitizer + UBSan and cppcheck, for every model kind the suite uses.

Each model (the demo DS-CNN, the tiny MLP, the four MLPerf Tiny models when present, and one
random single-op model per TFLite operator edgekit compiles) is generated, linked with a small
standalone C program (bench/fuzz_readers.py SANITIZER_MAIN: inputs from a file, outputs to a
file) under -fsanitize=address,undefined -fno-sanitize-recover=all, and run on random inputs. Its
outputs must equal the normal host build (HostModel) byte for byte, with no sanitizer report.
cppcheck --enable=warning,portability must find nothing in the generated sources.
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from edgekit.frontends.tflite import SUPPORTED, read_tflite
from edgekit.frontends.tflite_writer import TFLiteBuilder
from edgekit.models.dscnn import build_dscnn_kws, build_tiny_mlp
from edgekit.pipeline import Compiled, compile_graph
from edgekit.runners.host import HostModel

REPO = Path(__file__).resolve().parents[1]
SAMPLES = 6
CPPCHECK = ["cppcheck", "--enable=warning,portability", "--error-exitcode=1", "--std=c99", "-q",
            "--template={file}:{line}: {id}: {message}",
            # one configuration (the compilers we build with): each extra #ifdef combination
            # multiplies cppcheck's time without reaching other generated code
            "-D__GNUC__", "-U__cplusplus"]  # fmt: skip
# Findings in the hand-written runtime headers, each reported and explained in
# docs/reliability.md, are suppressed here so that anything new fails the test.
CPPCHECK_KNOWN = [
    "--suppress=invalidPointerCast",  # float tensors read through casts of the uint8_t arena
]
# cppcheck spends minutes of value flow on megabytes of integer literals and has nothing to
# check in them: larger weight headers are checked with their initialisers elided.
CPPCHECK_MAX_WEIGHTS = 64 << 10


def _fuzz_module() -> ModuleType:
    if "fuzz_readers" in sys.modules:
        return sys.modules["fuzz_readers"]
    spec = importlib.util.spec_from_file_location("fuzz_readers", REPO / "bench/fuzz_readers.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


FUZZ = _fuzz_module()


def _mlperf(file: str) -> Callable[[], bytes]:
    def load() -> bytes:
        path = FUZZ.MLPERF_DIR / file
        if not path.is_file():
            pytest.skip(f"MLPerf Tiny model {path} is absent")
        return path.read_bytes()

    return load


def _empty_tensors(op: str) -> Callable[[], bytes]:
    """A model where `op` reads or writes a zero-element tensor (legal in TFLite)."""

    def build() -> bytes:
        b = TFLiteBuilder()
        x = b.tensor("x", [1, 0] if op != "STRIDED_SLICE" else [1, 4], np.int8, 0.1, 0)
        y = b.tensor("y", [1, 2] if op == "PAD" else [1, 0], np.int8, 0.1, 0)
        options = {
            "PAD": {"paddings": np.array([[0, 0], [1, 1]], np.int32)},
            "STRIDED_SLICE": {"begin": np.array([0, 2], np.int32),
                              "end": np.array([1, 2], np.int32),
                              "strides": np.array([1, 1], np.int32)},
        }.get(op, {})  # fmt: skip
        b.op(op, [x], [y], **options)
        b.inputs([x])
        b.outputs([y])
        return b.finish()

    return build


MODELS: dict[str, Callable[[], bytes]] = {
    "dscnn": lambda: build_dscnn_kws(0),
    "tiny_mlp": lambda: build_tiny_mlp(0),
    **{f.split(".")[0]: _mlperf(f) for f in FUZZ.MLPERF},
    # seed 1: the fuzz campaign's corpus uses seed 0, so these are other random shapes
    **{f"op_{op.lower()}": (lambda op=op: FUZZ.single_op_model(op, 1)) for op in SUPPORTED},
    **{f"empty_{op.lower()}": _empty_tensors(op) for op in ("PAD", "RELU", "STRIDED_SLICE")},
}


def test_single_op_models_cover_every_supported_operator() -> None:
    assert set(FUZZ.SINGLE_OP_BUILDERS) == set(SUPPORTED)
    for op in SUPPORTED:
        graph = read_tflite(FUZZ.single_op_model(op, 1), op, "m")
        assert [o.kind for o in graph.ops] == [SUPPORTED[op]]


def _cppcheck_sources(compiled: Compiled, folder: Path) -> Path:
    """The generated files, weight initialisers elided when the header is large."""
    folder.mkdir(parents=True)
    for fname, text in compiled.generated.files.items():
        if fname.endswith("_weights.h") and len(text) > CPPCHECK_MAX_WEIGHTS:
            text = re.sub(r"= \{\n.*?\n\};", "= { 0 };", text, flags=re.S)
        (folder / fname).write_text(text)
    return folder / f"{compiled.generated.name}.c"


@pytest.mark.parametrize("model", sorted(MODELS))
def test_sanitized_build_matches_host_and_cppcheck_is_clean(model: str, tmp_path: Path) -> None:
    if not shutil.which("cppcheck"):
        pytest.skip("cppcheck is not installed (scripts/test.sh installs it)")
    data = MODELS[model]()
    compiled = compile_graph(read_tflite(data, model, model))
    gen = compiled.generated
    # the sanitizer build and cppcheck run in the background while the host build compiles
    c_file = _cppcheck_sources(compiled, tmp_path / "cppcheck")
    known = list(CPPCHECK_KNOWN)
    if not any(not layer.noop for layer in gen.layers):
        # run_layer(index) checks 0 <= index < 0 when every op only renames storage
        known.append("--suppress=incorrectLogicOperator")
    cppcheck = subprocess.Popen(
        [*CPPCHECK, *known, "-I", str(c_file.parent), str(c_file)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    seed = int(hashlib.sha256(data).hexdigest(), 16)
    samples = FUZZ.random_samples(compiled.graph, SAMPLES, seed)
    try:
        exe = FUZZ.build_sanitized(gen.files, gen.name, tmp_path / "asan")
        sanitized = FUZZ.run_sanitized(exe, compiled.graph, samples)
        host = HostModel(compiled)
        expected = [host.run(s) for s in samples]
    finally:
        report = cppcheck.communicate(timeout=600)[0]
    assert cppcheck.returncode == 0, report
    for k, (got, want) in enumerate(zip(sanitized, expected, strict=True)):
        for a, b in zip(got, want, strict=True):
            assert a.dtype == b.dtype and a.shape == b.shape
            assert a.tobytes() == b.tobytes(), f"{model}: sample {k} differs from the host build"
    # not vacuous: the samples differ (unless the model's input is empty)
    assert len({s[0].tobytes() for s in samples}) == (SAMPLES if samples[0][0].size else 1)


def test_sanitizers_catch_an_out_of_bounds_write(tmp_path: Path) -> None:
    """The harness really runs with the sanitizers: a layer writing one byte too far is caught."""
    compiled = compile_graph(read_tflite(build_tiny_mlp(0), "mlp", "mlp"))
    files = dict(compiled.generated.files)
    name = compiled.generated.name
    broken = files[f"{name}.c"].replace(
        "static void layer_0_fully_connected(void)\n{",
        "static void layer_0_fully_connected(void)\n{\n"
        "    { volatile size_t k = sizeof(ek_arena); ek_arena[k] = 1; }",
    )
    assert broken != files[f"{name}.c"]
    files[f"{name}.c"] = broken
    exe = FUZZ.build_sanitized(files, name, tmp_path)
    with pytest.raises(RuntimeError, match="global-buffer-overflow|out of bounds"):
        FUZZ.run_sanitized(exe, compiled.graph, FUZZ.random_samples(compiled.graph, 1, 0))


def test_cppcheck_reports_a_planted_fault(tmp_path: Path) -> None:
    """The cppcheck flags find what they should: a planted out-of-bounds index fails the run."""
    if not shutil.which("cppcheck"):
        pytest.skip("cppcheck is not installed (scripts/test.sh installs it)")
    src = tmp_path / "planted.c"
    src.write_text("int f(void)\n{\n    int a[4] = {0, 1, 2, 3};\n    return a[4];\n}\n")
    proc = subprocess.run([*CPPCHECK, str(src)], capture_output=True, text=True)
    assert proc.returncode == 1 and "arrayIndexOutOfBounds" in proc.stdout + proc.stderr


def test_random_samples_are_reproducible() -> None:
    graph = read_tflite(build_tiny_mlp(0), "mlp", "mlp")
    a = FUZZ.random_samples(graph, 3, 5)
    b = FUZZ.random_samples(graph, 3, 5)
    assert all(np.array_equal(x[0], y[0]) for x, y in zip(a, b, strict=True))
