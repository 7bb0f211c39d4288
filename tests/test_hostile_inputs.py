"""Hostile model files end in one EdgekitError that names the file, quickly and in bounded memory.

Named cases build each kind of damage on purpose (through the TFLite object API, the raw bytes or
the .ekir JSON header); a short deterministic run of the structure-aware mutator of
bench/fuzz_readers.py covers the combinations; and the CLI is checked as a user meets it: exit
code 2, one message naming the file, no traceback and no output folder.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import importlib.util
import json
import math
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as schema

from edgekit.errors import EdgekitError
from edgekit.frontends.flatbuffer_check import table_layout
from edgekit.frontends.tflite import read_tflite
from edgekit.frontends.tflite_writer import TFLiteBuilder, pack_model
from edgekit.ir import serialize
from edgekit.models.dscnn import build_tiny_mlp
from edgekit.pipeline import compile_graph, load_model

REPO = Path(__file__).resolve().parents[1]
FAST = 2.0  # seconds: every hostile file here is refused well within this


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
MLP = build_tiny_mlp(0)


def _compile(path: Path) -> Any:
    graph, _ = load_model(path)
    return compile_graph(graph, "host", str(path))


def _assert_refused(path: Path) -> EdgekitError:
    t0 = time.perf_counter()
    with pytest.raises(EdgekitError) as info:
        _compile(path)
    assert time.perf_counter() - t0 < FAST
    assert info.value.where == str(path)
    return info.value


def _model() -> Any:
    return schema.ModelT.InitFromObj(schema.Model.GetRootAs(MLP, 0))


def _sg(m: Any) -> Any:
    return m.subgraphs[0]


def _set(obj: Any, **fields: Any) -> None:
    for k, v in fields.items():
        setattr(obj, k, v)


def _quant(m: Any, tensor: int, **fields: Any) -> None:
    _set(_sg(m).tensors[tensor].quantization, **fields)


# Tensors of the tiny MLP: 0 input, 1 hidden, 2/3 first weights/bias, 4 output, 5/6 second layer.
TFLITE_EDITS: dict[str, Callable[[Any], None]] = {
    "huge_declared_shape": lambda m: _set(_sg(m).tensors[1], shape=[2**31 - 1, 2**31 - 1]),
    "overflowing_shape_product": lambda m: _set(_sg(m).tensors[1], shape=[65536] * 4),
    "negative_dimension": lambda m: _set(_sg(m).tensors[1], shape=[1, -16]),
    "rank_nine": lambda m: _set(_sg(m).tensors[0], shape=[1] * 9),
    "nan_scale": lambda m: _quant(m, 1, scale=[math.nan]),
    "inf_scale": lambda m: _quant(m, 1, scale=[math.inf]),
    "zero_scale": lambda m: _quant(m, 0, scale=[0.0]),
    "negative_scale": lambda m: _quant(m, 4, scale=[-0.5]),
    "denormal_scale": lambda m: _quant(m, 4, scale=[1e-45]),
    "more_scales_than_zero_points": lambda m: _quant(m, 1, scale=[0.1, 0.2, 0.3], zeroPoint=[0, 0]),
    "per_channel_axis_out_of_range": lambda m: _quant(
        m, 2, scale=[0.01] * 16, zeroPoint=[0] * 16, quantizedDimension=5
    ),
    "zero_point_outside_int8": lambda m: _quant(m, 0, zeroPoint=[1000]),
    "buffer_too_short": lambda m: _set(m.buffers[1], data=m.buffers[1].data[:-3]),
    "buffer_too_long": lambda m: _set(m.buffers[1], data=np.concatenate([m.buffers[1].data] * 2)),
    "buffer_outside_the_flatbuffer": lambda m: _set(m.buffers[1], data=None, offset=1 << 20,
                                                    size=512),  # fmt: skip
    "missing_buffer": lambda m: _set(_sg(m).tensors[2], buffer=4000),
    "tensor_index_out_of_range": lambda m: _set(_sg(m).operators[0], inputs=[0, 99, 3]),
    "negative_tensor_index": lambda m: _set(_sg(m).operators[0], inputs=[-7, 2, 3]),
    "opcode_index_out_of_range": lambda m: _set(_sg(m).operators[1], opcodeIndex=9),
    "cyclic_graph": lambda m: _set(_sg(m).operators[0], inputs=[4, 2, 3]),
    "dangling_graph": lambda m: _sg(m).operators.pop(1),
    "two_producers": lambda m: _set(_sg(m).operators[1], outputs=[1]),
    "graph_input_is_constant": lambda m: _set(_sg(m), inputs=[2]),
    "graph_input_out_of_range": lambda m: _set(_sg(m), inputs=[70]),
    "no_outputs": lambda m: _set(_sg(m), outputs=[]),
    "options_of_another_op": lambda m: _set(
        _sg(m).operators[0],
        builtinOptionsType=schema.BuiltinOptions.Pool2DOptions,
        builtinOptions=schema.Pool2DOptionsT(),
    ),
    "unknown_tensor_type": lambda m: _set(_sg(m).tensors[1], type=99),
    "weights_wider_than_the_input": lambda m: _set(_sg(m).tensors[0], shape=[1, 8]),
    "output_smaller_than_the_layer": lambda m: _set(_sg(m).tensors[4], shape=[1, 2]),
    "bias_shorter_than_the_units": lambda m: (
        _set(_sg(m).tensors[3], shape=[8]),
        _set(m.buffers[2], data=m.buffers[2].data[:32]),
    ),
    "two_subgraphs": lambda m: m.subgraphs.append(copy.deepcopy(_sg(m))),
    "no_subgraph": lambda m: m.subgraphs.clear(),
}


@pytest.mark.parametrize("case", sorted(TFLITE_EDITS))
def test_hostile_tflite_structures_are_refused(case: str, tmp_path: Path) -> None:
    m = _model()
    TFLITE_EDITS[case](m)
    path = tmp_path / f"{case}.tflite"
    path.write_bytes(pack_model(m))
    _assert_refused(path)


def test_elementwise_output_larger_than_its_input_is_refused(tmp_path: Path) -> None:
    """Would read past the input in C: the kernel loops over the output's elements."""
    b = TFLiteBuilder()
    x = b.tensor("x", [1, 4], np.int8, 0.1, 0)
    y = b.tensor("y", [1, 400], np.int8, 0.1, 0)
    b.op("RELU", [x], [y])
    b.inputs([x])
    b.outputs([y])
    path = tmp_path / "relu.tflite"
    path.write_bytes(b.finish())
    _assert_refused(path)


def test_a_constant_wired_into_a_data_input_is_refused(tmp_path: Path) -> None:
    """tflite:222160 rewired a TRANSPOSE_CONV's data input to its filter: the code generator
    then looked the constant up in the arena plan and crashed with a KeyError."""
    b = TFLiteBuilder()
    x = b.tensor("x", [1, 8], np.int8, 0.1, 0)
    c = b.const("c", np.arange(8, dtype=np.int8).reshape(1, 8), 0.1, 0)
    y = b.tensor("y", [1, 8], np.int8, 0.1, 0)
    z = b.tensor("z", [1, 8], np.int8, 0.1, 0)
    b.op("RELU", [c], [y])
    b.op("ADD", [x, y], [z])
    b.inputs([x])
    b.outputs([z])
    path = tmp_path / "relu_of_a_constant.tflite"
    path.write_bytes(b.finish())
    assert "reads the constant 'c' as an activation" in _assert_refused(path).what


def test_the_unedited_model_compiles(tmp_path: Path) -> None:
    """The edits above, not the base model or the repacking, are what gets refused."""
    path = tmp_path / "mlp.tflite"
    path.write_bytes(pack_model(_model()))
    assert _compile(path).graph.ops


@pytest.mark.parametrize("fraction", [0.0, 0.01, 0.1, 0.3, 0.5, 0.7, 0.9, 0.999])
def test_truncated_tflite_is_refused(fraction: float, tmp_path: Path) -> None:
    path = tmp_path / "cut.tflite"
    path.write_bytes(MLP[: int(len(MLP) * fraction)])
    _assert_refused(path)


def _amplifying_model(tmp_path: Path) -> tuple[Path, int]:
    """Many tensors, one with a 256 KB name, and every tensor entry pointing at that one.

    Unpacked naively the file asks for n * 256 KB of name copies; returns the path and that sum.
    """
    b = TFLiteBuilder()
    x = b.tensor("x" * (256 << 10), [1, 4], np.int8, 0.1, 0)
    y = b.tensor("y", [1, 4], np.int8, 0.1, 0)
    for i in range(3000):
        b.tensor(f"t{i}", [1], np.int8, 0.1, 0)
    b.op("RELU", [x], [y])
    b.inputs([x])
    b.outputs([y])
    data = bytearray(b.finish())
    sg = schema.Model.GetRootAs(bytes(data), 0).Subgraphs(0)
    off = sg._tab.Offset(4)
    start, n = sg._tab.Vector(off), sg._tab.VectorLen(off)
    target = start + struct.unpack_from("<I", data, start)[0]  # tensor 0, the long name
    for i in range(n):
        struct.pack_into("<I", data, start + 4 * i, target - (start + 4 * i))
    path = tmp_path / "amplify.tflite"
    path.write_bytes(bytes(data))
    return path, n * (256 << 10)


def test_flatbuffer_layout_covers_every_field_the_object_api_follows() -> None:
    """The pre-check reads its field layout from the generated accessors; it must list exactly the
    non-scalar fields (tables, vectors, strings, unions) that ModelT.InitFromObj unpacks."""
    checked = 0
    for name, cls in vars(schema).items():
        if not (isinstance(cls, type) and name.endswith("T") and hasattr(cls, "InitFromObj")):
            continue
        offset_fields = {k for k, v in vars(cls()).items() if v is None}  # scalars have defaults
        layout = table_layout(getattr(schema, name[:-1]))
        assert {f.name[0].lower() + f.name[1:] for f in layout} == offset_fields, name
        checked += 1
    assert checked > 100


def test_shared_tables_cannot_amplify_memory(tmp_path: Path) -> None:
    path, naive_bytes = _amplifying_model(tmp_path)
    assert naive_bytes > 700 << 20 and path.stat().st_size < 1 << 20
    _assert_refused(path)


# --- .ekir -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ekir_seeds() -> dict[str, bytes]:
    from edgekit.frontends.onnx import read_onnx
    from tests.test_onnx_ops import _onnx_model_fp16

    graph = read_tflite(MLP, "mlp", "mlp")
    lowered = compile_graph(graph).graph
    floats = read_onnx(_onnx_model_fp16().SerializeToString(), "float", "float")
    return {
        "semantic": serialize.dumps(graph),
        "lowered": serialize.dumps(lowered),
        # Conv, LeakyRelu, ConvTranspose, HardSwish converted to FP16 / FP32 (lowered)
        "fp16": serialize.dumps(compile_graph(floats, "cortex-m55", precision="fp16").graph),
        "fp32": serialize.dumps(compile_graph(floats, "host", precision="fp32").graph),
    }


def _split(data: bytes) -> tuple[dict[str, Any], bytes]:
    hlen = struct.unpack_from("<I", data, 8)[0]
    start = 12 + hlen
    return json.loads(data[12:start]), data[start + ((-start) % 16) :]


def _join(header: dict[str, Any], blob: bytes, major: int = 1, minor: int = 0) -> bytes:
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    pre = struct.pack("<4sHHI", b"EKIR", major, minor, len(text)) + text
    return pre + b"\0" * ((-len(pre)) % 16) + blob


def _op(h: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(o for o in h["graph"]["ops"] if o["kind"] == kind)


def _tensor(h: dict[str, Any], name: str) -> dict[str, Any]:
    return next(t for t in h["graph"]["tensors"] if t["name"] == name)


def _first_const(h: dict[str, Any]) -> dict[str, Any]:
    return next(t for t in h["graph"]["tensors"] if t.get("data"))


EKIR_EDITS: dict[str, tuple[str, Callable[[dict[str, Any]], None]]] = {
    "negative_dimension": ("semantic", lambda h: _tensor(h, "input").update(shape=[1, -32])),
    "huge_dimensions": ("semantic", lambda h: _tensor(h, "input").update(shape=[2**40, 2**40])),
    "dimension_as_string": ("semantic", lambda h: _tensor(h, "input").update(shape=[1, "32"])),
    "unknown_dtype": ("semantic", lambda h: _tensor(h, "input").update(dtype="int4")),
    "nan_scale": ("semantic", lambda h: _tensor(h, "input")["quant"].update(scale=[math.nan])),
    "scale_beyond_float32": ("semantic", lambda h: _tensor(h, "input")["quant"].update(
        scale=[1e300])),  # fmt: skip
    "data_past_the_blob": ("semantic", lambda h: _first_const(h)["data"].update(offset=1 << 30)),
    "data_size_mismatch": ("semantic", lambda h: _first_const(h)["data"].update(nbytes=3)),
    "overlapping_data": ("semantic", lambda h: [
        t["data"].update(offset=0) for t in h["graph"]["tensors"] if t.get("data")
    ]),  # fmt: skip
    "dangling_input": ("semantic", lambda h: h["graph"]["ops"][0]["inputs"].__setitem__(0, "nope")),
    "ops_out_of_order": ("semantic", lambda h: h["graph"]["ops"].reverse()),
    "op_name_closes_a_comment": ("semantic", lambda h: h["graph"]["ops"][0].update(name="a*/b")),
    "activation_as_list": ("semantic", lambda h: h["graph"]["ops"][0]["attrs"].update(
        activation=["relu"])),  # fmt: skip
    "graph_is_a_list": ("semantic", lambda h: h.update(graph=[])),
    "attrs_nested_deeply": ("semantic", lambda h: h["graph"]["ops"][0].update(
        attrs={"x": json.loads("[" * 40 + "]" * 40)})),  # fmt: skip
    "lowered_multiplier_tampered": ("lowered", lambda h: _op(h, "fully_connected")["attrs"]["q"]
                                    .update(multiplier=12345)),  # fmt: skip
    "lowered_units_tampered": ("lowered", lambda h: _op(h, "fully_connected")["attrs"]["q"]
                               .update(units=1000)),  # fmt: skip
    "lowered_kernel_unknown": ("lowered", lambda h: _op(h, "fully_connected")["attrs"].update(
        kernel={"family": "nope", "template": "nope.c.j2"})),  # fmt: skip
    "lowered_clamp_widened": ("lowered", lambda h: _op(h, "fully_connected")["attrs"].update(
        fused=["relu"], q={**_op(h, "fully_connected")["attrs"]["q"], "act_min": -1000}
    )),  # fmt: skip
    "lowered_bias_data_changed": ("lowered", lambda h: next(
        t for t in h["graph"]["tensors"] if t["name"].endswith("/bias") and t.get("data")
    ).update(shape=[1])),  # fmt: skip
    # float graphs were trusted as written before: each of these compiled
    "fp16_stride_zero": ("fp16", lambda h: _op(h, "transpose_conv")["attrs"].update(
        stride=[0, 2])),  # fmt: skip
    "fp16_output_grown": ("fp16", lambda h: _tensor(h, _op(h, "transpose_conv")["outputs"][0])
                          .update(shape=[1, 1000, 1000, 4])),  # fmt: skip
    "fp16_contract_clamp_changed": ("fp16", lambda h: _op(h, "transpose_conv")["attrs"]["fp16"]
                                    .update(clamp=[0.0, 1.0])),  # fmt: skip
    "fp16_alpha_tampered": ("fp16", lambda h: _op(h, "leaky_relu")["attrs"]["q"].update(
        alpha=1e30)),  # fmt: skip
    "fp16_kernel_swapped": ("fp16", lambda h: _op(h, "transpose_conv")["attrs"].update(
        kernel={"family": "fp16", "template": "fp16/conv2d.c.j2"})),  # fmt: skip
    "fp16_weights_renamed": ("fp16", lambda h: _op(h, "transpose_conv")["attrs"]["q"].update(
        weights=_op(h, "transpose_conv")["attrs"]["q"]["bias"])),  # fmt: skip
    "fp32_activation_unknown": ("fp32", lambda h: _op(h, "conv2d")["attrs"].update(
        activation="bogus")),  # fmt: skip
    "unknown_precision": ("fp16", lambda h: h["graph"]["meta"].update(precision="fp64")),
}


@pytest.mark.parametrize("case", sorted(EKIR_EDITS))
def test_hostile_ekir_headers_are_refused(case: str, ekir_seeds: dict[str, bytes],
                                          tmp_path: Path) -> None:  # fmt: skip
    seed, edit = EKIR_EDITS[case]
    header, blob = _split(ekir_seeds[seed])
    edit(header)
    path = tmp_path / f"{case}.ekir"
    path.write_bytes(_join(header, blob))
    _assert_refused(path)


def test_a_blob_rewritten_for_a_tampered_lowered_constant_is_refused(
    ekir_seeds: dict[str, bytes], tmp_path: Path
) -> None:
    """Consistent header, changed bytes: a folded bias edited in the data blob is caught too."""
    header, blob = _split(ekir_seeds["lowered"])
    bias = next(t for t in header["graph"]["tensors"] if t["name"] == "op0_fully_connected/bias")
    raw = bytearray(blob)
    raw[bias["data"]["offset"]] ^= 0x40
    path = tmp_path / "bias.ekir"
    path.write_bytes(_join(header, bytes(raw)))
    _assert_refused(path)


@pytest.mark.parametrize("seed", ["semantic", "lowered", "fp16", "fp32"])
def test_unedited_ekir_round_trips(seed: str, ekir_seeds: dict[str, bytes], tmp_path: Path) -> None:
    header, blob = _split(ekir_seeds[seed])
    path = tmp_path / "ok.ekir"
    path.write_bytes(_join(header, blob))
    assert _compile(path).graph.ops
    if seed.startswith("fp"):
        # re-derived, a genuine float file gives the C of the graph it was written from
        from edgekit.passes.rederive import rederive_lowered

        target = "cortex-m55" if seed == "fp16" else "host"
        ours = rederive_lowered(serialize.loads(ekir_seeds[seed]), str(path))
        written = serialize.loads(ekir_seeds[seed])
        again = compile_graph(ours, target).generated.files
        assert again == compile_graph(written, target).generated.files


def test_a_float_blob_with_a_tampered_bias_is_refused(
    ekir_seeds: dict[str, bytes], tmp_path: Path
) -> None:
    """A bias the M55 kernel prepared (a derived constant) edited in the data blob, header
    untouched: the re-derived graph differs. The model's own weights and biases are its
    semantics; editing those makes another valid model."""
    header, blob = _split(ekir_seeds["fp16"])
    bias = _tensor(header, _op(header, "conv2d")["attrs"]["q"]["arm_bias"])
    raw = bytearray(blob)
    raw[bias["data"]["offset"] + 1] ^= 0x04
    path = tmp_path / "bias16.ekir"
    path.write_bytes(_join(header, bytes(raw)))
    assert "fp16 parameters differ" in str(_assert_refused(path))


def test_unlowered_ekir_ignores_leftover_lowering(ekir_seeds: dict[str, bytes],
                                                  tmp_path: Path) -> None:  # fmt: skip
    """A lowered file with `lowered` removed is lowered afresh: stale or broken derived attributes
    (here a kernel choice without its template) are dropped, not used."""
    header, blob = _split(ekir_seeds["lowered"])
    del header["graph"]["meta"]["lowered"]
    _op(header, "fully_connected")["attrs"]["kernel"] = {"family": "portable"}
    path = tmp_path / "stale.ekir"
    path.write_bytes(_join(header, blob))
    assert _compile(path).graph.ops


@pytest.mark.parametrize(
    "damage",
    ["major_2", "major_0", "minor_99", "header_past_end", "json_cut", "json_not_utf8",
     "json_deep_5000", "empty", "magic_only"],
)  # fmt: skip
def test_damaged_ekir_files_are_refused(damage: str, ekir_seeds: dict[str, bytes],
                                        tmp_path: Path) -> None:  # fmt: skip
    data = ekir_seeds["lowered"]
    header, blob = _split(data)
    hlen = struct.unpack_from("<I", data, 8)[0]
    damaged = {
        "major_2": lambda: _join(header, blob, major=2),
        "major_0": lambda: _join(header, blob, major=0),
        "minor_99": lambda: _join({**header, "graph": []}, blob, minor=99),
        "header_past_end": lambda: data[:8] + struct.pack("<I", len(data)) + data[12:],
        "json_cut": lambda: data[: 12 + hlen // 2],
        "json_not_utf8": lambda: data[:20] + b"\xff\xfe" + data[22:],
        "json_deep_5000": lambda: b"EKIR" + struct.pack("<HHI", 1, 0, 10001)
        + b"[" * 5000 + b"0" + b"]" * 5000,
        "empty": lambda: b"",
        "magic_only": lambda: b"EKIR",
    }[damage]()
    path = tmp_path / "damaged.ekir"
    path.write_bytes(damaged)
    _assert_refused(path)


# --- the mutation campaign, short and deterministic --------------------------------------------


def test_short_mutation_campaign_has_no_findings() -> None:
    """A few hundred structure-aware mutants per reader, each in a memory- and time-limited
    worker: all end in success or EdgekitError (bench/fuzz_readers.py runs the long campaign)."""
    corpus = FUZZ.build_corpus(mlperf=False)
    args = argparse.Namespace(
        reader="both", execs=150, start=0, seconds=0.0, seed=7, jobs=1, timeout=5.0,
        memory_mb=1024, check_c=0, progress=0,
    )  # fmt: skip
    report = FUZZ.campaign(args, corpus)
    for reader, r in report["readers"].items():
        assert r["executions"] == 150, reader
        assert r["findings"] == 0, r["finding_cases"]
        # not vacuous: mutants are both accepted and refused, so they reach past the first check
        assert r["outcomes"].get("ok", 0) > 0 and r["outcomes"].get("error", 0) > 0, r


def test_the_oracle_reports_crashes_and_hangs(monkeypatch: pytest.MonkeyPatch,
                                              tmp_path: Path) -> None:  # fmt: skip
    path = tmp_path / "m.tflite"
    path.write_bytes(MLP)
    assert FUZZ.run_case(path, 5.0)[0].kind == "ok"

    def broken(p: Path) -> Any:
        raise KeyError("unclean")

    monkeypatch.setattr(FUZZ, "load_model", broken)
    assert FUZZ.run_case(path, 5.0)[0].kind == "crash"

    def slow(p: Path) -> Any:
        while True:
            with contextlib.suppress(Exception):  # swallowing everything must still time out
                time.sleep(0.05)

    monkeypatch.setattr(FUZZ, "load_model", slow)
    outcome, _ = FUZZ.run_case(path, 0.3)
    assert outcome.kind == "hang" and outcome.seconds < 2


def test_mutants_are_deterministic() -> None:
    corpus = FUZZ.build_corpus(mlperf=False)
    for reader in FUZZ.READERS:
        assert FUZZ.make_case(corpus, reader, 11, 3) == FUZZ.make_case(corpus, reader, 11, 3)
        assert FUZZ.make_case(corpus, reader, 11, 3) != FUZZ.make_case(corpus, reader, 12, 3)


def test_an_allocation_refused_by_the_memory_limit_is_a_finding(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """numpy's MemoryError wrapped in an EdgekitError means a declared size reached an allocation
    unchecked: without the worker's address-space limit it would have been made."""
    path = tmp_path / "m.tflite"
    path.write_bytes(MLP)

    def huge(p: Path) -> Any:
        raise EdgekitError(
            "constant folding failed: Unable to allocate 16.0 GiB for an array", str(p)
        )

    monkeypatch.setattr(FUZZ, "load_model", huge)
    assert FUZZ.run_case(path, 5.0)[0].kind == "memory"

    def refused(p: Path) -> Any:
        raise EdgekitError("tensor 'x' declares [1, 1073741824]: more than 268435456", str(p))

    monkeypatch.setattr(FUZZ, "load_model", refused)
    assert FUZZ.run_case(path, 5.0)[0].kind == "error"


def test_onnx_seeds_compile_and_mutants_are_deterministic(tmp_path: Path) -> None:
    """The ONNX seeds reach code generation (so mutants of them test more than the parser), and
    ONNX cases replay exactly without changing the cases of the other readers."""
    pytest.importorskip("onnx")
    corpus = FUZZ.build_corpus(mlperf=False, onnx=True)
    assert len(corpus.onnx) >= 4
    for name, data in corpus.onnx:
        path = tmp_path / f"{name}.onnx"
        path.write_bytes(data)
        outcome, compiled = FUZZ.run_case(path, 10.0)
        assert outcome.kind == "ok" and compiled is not None, (name, outcome)
    plain = FUZZ.build_corpus(mlperf=False)
    for reader in FUZZ.READERS:
        assert FUZZ.make_case(corpus, reader, 11, 3) == FUZZ.make_case(plain, reader, 11, 3)
    cases = [FUZZ.make_case(corpus, "onnx", i, 3) for i in range(40)]
    assert cases == [FUZZ.make_case(corpus, "onnx", i, 3) for i in range(40)]
    assert len({data for _, data in cases}) == len(cases)
    seeds = {data for _, data in corpus.onnx}
    assert not seeds & {data for _, data in cases}, "a mutant left its seed unchanged"


# --- the CLI -----------------------------------------------------------------------------------


def test_cli_refuses_hostile_files_cleanly(ekir_seeds: dict[str, bytes], tmp_path: Path) -> None:
    header, blob = _split(ekir_seeds["lowered"])
    _op(header, "fully_connected")["attrs"]["q"]["units"] = 1000
    amplify, _ = _amplifying_model(tmp_path)
    files = {
        "cut.tflite": MLP[: len(MLP) // 3],
        "cycle.tflite": pack_model(
            (lambda m: (TFLITE_EDITS["cyclic_graph"](m), m)[1])(_model())
        ),
        "amplify.tflite": amplify.read_bytes(),
        "tampered.ekir": _join(header, blob),
    }
    for name, data in files.items():
        bad = tmp_path / name
        bad.write_bytes(data)
        out = tmp_path / f"out-{name}"
        proc = subprocess.run(
            [sys.executable, "-m", "edgekit.cli", "generate", str(bad), "-o", str(out)],
            capture_output=True, text=True, cwd=tmp_path,
        )  # fmt: skip
        assert proc.returncode == 2, (name, proc.stderr)
        assert proc.stderr.startswith("edgekit: error:") and str(bad) in proc.stderr
        assert "Traceback" not in proc.stderr and not proc.stdout
        assert not out.exists()
        assert not list(tmp_path.glob(f".out-{name}*")), "a temporary folder was left behind"
