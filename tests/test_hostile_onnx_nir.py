"""Hostile ONNX and NIR files: each ends in one EdgekitError naming the file, never a traceback,
an allocation sized by a declared shape, or a path taken from inside the file.

The regression lists are the fuzz cases (bench/fuzz_readers.py, --seed 0) that were findings
before the readers were hardened: tracebacks, multi-GB constant folding, terabyte HDF5
datasets. They run, with the short campaigns, in memory- and time-limited workers.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from edgekit.cli import main
from edgekit.errors import EdgekitError

onnx = pytest.importorskip("onnx")
nir = pytest.importorskip("nir")
h5py = pytest.importorskip("h5py")

REPO = Path(__file__).resolve().parents[1]


def _fuzz_module() -> ModuleType:
    if "fuzz_readers" in sys.modules:
        return sys.modules["fuzz_readers"]
    spec = importlib.util.spec_from_file_location("fuzz_readers", REPO / "bench/fuzz_readers.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["fuzz_readers"] = module
    spec.loader.exec_module(module)
    return module


FUZZ = _fuzz_module()

# fmt: off
ONNX_REGRESSIONS = [0, 4, 16, 20, 27, 29, 34, 43, 55, 60, 61, 132, 136, 184, 214, 218, 223, 224,
                    265, 311, 322, 333, 408, 438, 442, 460, 470, 509,  # 442: a Range of 10^8
                    13188,  # a constant Conv with pads of 2^24
                    43117,  # a Conv whose group attribute is a float infinity
                    74957,  # a constant AveragePool with a stride of -2^31: 384 GiB
                    83353]  # a constant Tile of an empty input: an object array of Nones
# 410 ... 10645: membrane scales outside [1e-30, 1e30] escaped the quantizer as ValueError
NIR_REGRESSIONS = [1, 75, 142, 149, 153, 224, 236, 242, 253, 259, 267, 296, 410, 510, 658, 980,
                   1204, 1572, 1578, 2719, 2878, 3071,
                   12211,  # a bit flip that makes libhdf5 loop: cut off in the reading child
                   15898, 16605]  # bit flips that make libhdf5 segfault: inside the child
# fmt: on


def _campaign(reader: str, **kw: object) -> dict:
    corpus = FUZZ.build_corpus(mlperf=False, onnx=reader == "onnx", nir=reader == "nir")
    args = argparse.Namespace(
        reader=reader, execs=0, start=0, seconds=0.0, seed=0, jobs=1, timeout=5.0,
        memory_mb=1024, check_c=0, progress=0, cases=None,
    )  # fmt: skip
    vars(args).update(kw)
    return FUZZ.campaign(args, corpus)["readers"][reader]


@pytest.mark.parametrize(
    "reader,cases", [("onnx", ONNX_REGRESSIONS), ("nir", NIR_REGRESSIONS)], ids=["onnx", "nir"]
)
def test_former_fuzz_findings_end_in_one_clean_error(reader: str, cases: list[int]) -> None:
    # check_c: an accepted case's C is built with ASan/UBSan and run (onnx:136 was a float conv
    # whose filter had 1 input channel for an 8-channel input: its C read past the weights)
    r = _campaign(reader, cases=cases, check_c=len(cases) if reader == "onnx" else 0)
    assert r["executions"] == len(cases)
    assert r["findings"] == 0, r["finding_cases"]


@pytest.mark.parametrize("reader", ["onnx", "nir"])
def test_short_mutation_campaign_has_no_findings(reader: str) -> None:
    r = _campaign(reader, execs=60, seed=5)
    assert r["executions"] == 60
    assert r["findings"] == 0, r["finding_cases"]
    assert r["outcomes"].get("ok", 0) > 0 and r["outcomes"].get("error", 0) > 0, r
    assert len(r["mutation_classes"]) >= 8, r["mutation_classes"]


# --- NIR: HDF5 hostility refused from metadata ----------------------------------------------------


def _nir_file(path: Path) -> Path:
    from fuzz_nir import nir_seed  # bench/ is on sys.path once fuzz_readers is loaded

    path.write_bytes(nir_seed(0))
    return path


def _replace(path: Path, plant: object) -> None:
    with h5py.File(path, "r+") as f:
        del f["node/nodes/input/shape"]
        plant(f, "node/nodes/input/shape")  # type: ignore[operator]


@pytest.mark.parametrize(
    "plant,message",
    [
        (lambda f, k: f.create_dataset(k, shape=(1 << 20, 1 << 20), dtype="f8", chunks=(64, 64),
                                       compression="gzip"), "declares"),  # fmt: skip
        (lambda f, k: f.__setitem__(k, h5py.ExternalLink("/etc/passwd", "/x")), "ExternalLink"),
        (lambda f, k: f.__setitem__(k, h5py.SoftLink("/node")), "SoftLink"),
        (lambda f, k: f.create_dataset(k, shape=(4,), dtype="f8",
                                       external=[("/dev/zero", 0, h5py.h5f.UNLIMITED)]),
         "another file"),  # fmt: skip
        (lambda f, k: f.create_group(k + "/g" * 40), "deeper"),
    ],
    ids=["terabytes-declared", "external-link", "soft-link", "external-storage", "nesting"],
)
def test_nir_hdf5_hostility_is_refused_before_reading(
    tmp_path: Path, plant: object, message: str
) -> None:
    from edgekit.snn.importers import read_nir

    path = _nir_file(tmp_path / "net.nir")
    read_nir(path, 1e-3)  # the seed itself is fine
    _replace(path, plant)
    assert path.stat().st_size < 1 << 20  # the hostility costs the file nothing
    with pytest.raises(EdgekitError) as info:
        read_nir(path, 1e-3)
    assert message in info.value.what and info.value.where == str(path)


@pytest.mark.parametrize("value", [np.nan, np.inf, "text"])
def test_nir_non_finite_or_non_numeric_parameters_are_refused(
    tmp_path: Path, value: object
) -> None:
    path = _nir_file(tmp_path / "net.nir")
    with h5py.File(path, "r+") as f:
        lif = next(k for k in f["node/nodes"] if "tau" in f["node/nodes"][k])
        key = f"node/nodes/{lif}/tau"
        n = f[key].shape
        del f[key]
        f[key] = np.full(n, value) if not isinstance(value, str) else value
    out = tmp_path / "out.ekir"
    assert main(["snn", "convert", str(path), "--dt", "0.001", "-o", str(out)]) == 2
    assert not out.exists()


def test_nir_cli_error_names_the_file_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _nir_file(tmp_path / "net.nir")
    _replace(path, lambda f, k: f.create_dataset(k, shape=(1 << 24, 1 << 24), dtype="f8",
                                                 chunks=(64, 64)))  # fmt: skip
    out = tmp_path / "out.ekir"
    assert main(["snn", "convert", str(path), "--dt", "0.001", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "Traceback" not in err and not out.exists()


# --- ONNX: tensors, folding and external data ---------------------------------------------------


def _onnx_model(extra_nodes: list, inits: list) -> bytes:
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    nodes = [*extra_nodes, helper.make_node("Relu", ["x"], ["y"])]
    graph = helper.make_graph(nodes, "g", [x], [y], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def _generate(tmp_path: Path, data: bytes) -> tuple[int, str, Path]:
    path = tmp_path / "m.onnx"
    path.write_bytes(data)
    out = tmp_path / "out"
    code = main(["generate", str(path), "--precision", "fp16", "-o", str(out)])
    return code, str(path), out


def test_onnx_folding_that_would_allocate_gigabytes_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from onnx import helper, numpy_helper

    # 64 MB of float32: below the tensor limit, so only the folding limit stops it
    shape = numpy_helper.from_array(np.array([1 << 12, 1 << 12], np.int64), "big_shape")
    node = helper.make_node("ConstantOfShape", ["big_shape"], ["big"])
    code, path, out = _generate(tmp_path, _onnx_model([node], [shape]))
    err = capsys.readouterr().err
    assert code == 2 and "folding it would make 16,777,216 elements" in err
    assert path in err and not out.exists()


def test_onnx_tensor_data_shorter_than_its_dims_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from onnx import TensorProto, helper

    w = helper.make_tensor("w", TensorProto.FLOAT, [4], b"\0" * 16, raw=True)
    w.ClearField("dims")
    w.dims.extend([1 << 20, 1 << 6])  # 256 MB declared, 16 bytes present
    code, path, out = _generate(tmp_path, _onnx_model([], [w]))
    err = capsys.readouterr().err
    assert code == 2 and "holds 16 bytes of data for 67108864 elements" in err
    assert path in err and "Traceback" not in err and not out.exists()


@pytest.mark.parametrize("location", ["../secret.bin", "/etc/passwd", "sub/../../x.bin"])
def test_onnx_external_data_cannot_name_a_file_outside_the_model_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], location: str
) -> None:
    from onnx import TensorProto, helper

    (tmp_path / "secret.bin").write_bytes(b"\0" * 16)
    w = helper.make_tensor("w", TensorProto.FLOAT, [4], b"\0" * 16, raw=True)
    w.ClearField("raw_data")
    w.data_location = TensorProto.EXTERNAL
    entry = w.external_data.add()
    entry.key, entry.value = "location", location
    (tmp_path / "m").mkdir()
    code, path, out = _generate(tmp_path / "m", _onnx_model([], [w]))
    err = capsys.readouterr().err
    assert code == 2 and "external data" in err and path in err and not out.exists()
