"""A lowered .ekir written for one target compiles for another: its layer parameters are kept
(and checked, as for any lowered file) and kernels are chosen anew for the target it runs on."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from codegen.kernels import kernels_fit
from edgekit.frontends.tflite import read_tflite
from edgekit.ir import serialize
from edgekit.models.dscnn import build_dscnn_kws
from edgekit.pipeline import compile_graph, load_model
from edgekit.runners.host import HostModel
from edgekit.targets import load_target
from edgekit.verify import random_inputs


def _host_kernels() -> tuple[list[str], set[str]]:
    t = load_target("host")
    return list(t.kernels), set(t.capabilities)


def _written_for(graph, target: str, path: Path, precision: str = "int8") -> Path:
    compiled = compile_graph(graph, target, precision=precision)
    path.write_bytes(serialize.dumps(compiled.graph))
    return path


def test_an_int8_file_lowered_for_helium_runs_on_the_host(tmp_path: Path) -> None:
    """Helium kernels on the host would not even compile (no arm_mve.h); they are replaced by
    host kernels, and the outputs equal the host build of the source model byte for byte."""
    source = read_tflite(build_dscnn_kws(seed=0), "<dscnn>", "dscnn")
    path = _written_for(source, "cortex-m55", tmp_path / "m55.ekir")
    graph, _ = load_model(path)
    assert not kernels_fit(graph, *_host_kernels())
    retargeted = compile_graph(graph, "host", str(path))
    assert not any("mve" in layer.variant.template for layer in retargeted.generated.layers)
    ours, direct = HostModel(retargeted), HostModel(compile_graph(source, "host"))
    for sample in random_inputs(retargeted.graph, 5, seed=3):
        for a, b in zip(ours.run(sample), direct.run(sample), strict=True):
            assert np.array_equal(a, b)


def test_a_file_for_its_own_target_keeps_its_kernels(tmp_path: Path) -> None:
    source = read_tflite(build_dscnn_kws(seed=0), "<dscnn>", "dscnn")
    path = _written_for(source, "cortex-m55", tmp_path / "m55.ekir")
    graph, _ = load_model(path)
    t = load_target("cortex-m55")
    assert kernels_fit(graph, list(t.kernels), set(t.capabilities))
    again = compile_graph(graph, "cortex-m55", str(path))
    assert any("mve" in layer.variant.template for layer in again.generated.layers)


def test_an_fp16_file_lowered_for_helium_runs_on_the_host(tmp_path: Path) -> None:
    from edgekit.frontends.onnx import read_onnx
    from tests.test_onnx_ops import _onnx_model_fp16

    source = read_onnx(_onnx_model_fp16().SerializeToString(), "<onnx>", "up")
    from edgekit.passes.fp16 import float_families

    path = _written_for(source, "cortex-m55", tmp_path / "m55.ekir", precision="fp16")
    graph, _ = load_model(path)
    families, caps = _host_kernels()
    # the float family is the host's too; the Helium variant's capability is what it lacks
    assert not kernels_fit(graph, float_families(families), caps)
    retargeted = compile_graph(graph, "host", str(path))
    ours = HostModel(retargeted)
    direct = HostModel(compile_graph(source, "host", precision="fp16"))
    for sample in random_inputs(retargeted.graph, 3, seed=4):
        for a, b in zip(ours.run(sample), direct.run(sample), strict=True):
            assert np.array_equal(a.view(np.uint16), b.view(np.uint16))


def test_host_bench_of_an_ekir_skips_tflite_micro(tmp_path: Path) -> None:
    """TFLite Micro reads .tflite files only: an .ekir is benchmarked without its columns,
    where it used to stop with a flatbuffer error."""
    source = read_tflite(build_dscnn_kws(seed=0), "<dscnn>", "dscnn")
    path = _written_for(source, "cortex-m55", tmp_path / "m55.ekir")
    cli = [sys.executable, "-m", "edgekit.cli", "bench", str(path), "--samples", "2"]
    proc = subprocess.run([*cli, "--json"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["tflm_arena_bytes"] is None and out["arena_bytes"] > 0
    text = subprocess.run(cli, capture_output=True, text=True, timeout=300)
    assert text.returncode == 0 and "TFLite Micro          not run" in text.stdout, text.stderr


FP16_TARGETS = ["host", "cortex-m55", "aarch64-neon-fp16", "rv32-zfh-v", "rv32imafc-zfh"]


@pytest.mark.parametrize("target", FP16_TARGETS)
def test_a_genuine_fp16_file_from_every_target_is_accepted_unchanged(target: str) -> None:
    """Every FP16 variant's file re-derives to the same graph and C. The Arm variants share one
    template and differ only in q["arm_isa"]; before the variants carried that tag, NEON and
    generic-vector files were refused as tampered."""
    from edgekit.passes.rederive import rederive_lowered
    from tests.test_fp16 import _zoo_fixed

    written = serialize.dumps(compile_graph(_zoo_fixed().graph(), target, precision="fp16").graph)
    ours = rederive_lowered(serialize.loads(written), target)
    from edgekit.passes.fp16 import float_families

    t = load_target(target)
    assert kernels_fit(ours, float_families(list(t.kernels)), set(t.capabilities))
    want = compile_graph(serialize.loads(written), target).generated.files
    assert compile_graph(ours, target).generated.files == want
