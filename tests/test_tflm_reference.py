"""The TFLM oracle: batched runs, every-tensor dumps and arena measurement."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as schema

from edgekit.errors import EdgekitError
from edgekit.models.dscnn import build_dscnn_kws, build_tiny_mlp
from edgekit.reference.tflm import run_tflm, tflm_all_tensors, tflm_arena_bytes

MLPERF = Path(__file__).resolve().parents[1].parent / "shared" / "models" / "mlperf-tiny"


@pytest.fixture(scope="module")
def dscnn() -> bytes:
    return build_dscnn_kws(0)


@pytest.fixture(scope="module")
def mlp() -> bytes:
    return build_tiny_mlp(0)


def _samples(shape: tuple[int, ...], n: int, seed: int = 0) -> list[list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [[rng.integers(-128, 128, shape).astype(np.int8)] for _ in range(n)]


def _subgraph(model: bytes) -> schema.SubGraphT:
    return schema.ModelT.InitFromPackedBuf(bytearray(model), 0).subgraphs[0]


def test_run_tflm_shapes_and_independence(mlp: bytes) -> None:
    samples = _samples((1, 32), 6)
    batch = run_tflm(mlp, samples)
    assert len(batch) == 6
    assert all(len(outs) == 1 and outs[0].shape == (1, 4) for outs in batch)
    assert all(outs[0].dtype == np.int8 for outs in batch)
    # One shared interpreter must give what a fresh interpreter per sample gives.
    for sample, outs in zip(samples, batch, strict=True):
        np.testing.assert_array_equal(run_tflm(mlp, [sample])[0][0], outs[0])
    assert len({o[0].tobytes() for o in batch}) > 1


def test_run_tflm_returns_copies(mlp: bytes) -> None:
    samples = _samples((1, 32), 2)
    first, second = run_tflm(mlp, samples)
    assert not np.shares_memory(first[0], second[0])


def test_all_tensors_agree_with_outputs(dscnn: bytes) -> None:
    sg = _subgraph(dscnn)
    (sample,) = _samples((1, 49, 10, 1), 1, seed=7)
    values = tflm_all_tensors(dscnn, sample)
    (outs,) = run_tflm(dscnn, [sample])
    np.testing.assert_array_equal(values[sg.outputs[0]], outs[0])
    produced = {t for op in sg.operators for t in op.outputs}
    assert set(values) == produced | {sg.inputs[0]}
    np.testing.assert_array_equal(values[sg.inputs[0]], sample[0])
    for t, v in values.items():
        assert v.shape == tuple(sg.tensors[t].shape)


def test_all_tensors_are_the_real_intermediates(dscnn: bytes) -> None:
    """Intermediates must be live values, not memory the planner already reused."""
    sg = _subgraph(dscnn)
    (sample,) = _samples((1, 49, 10, 1), 1, seed=8)
    values = tflm_all_tensors(dscnn, sample)
    kinds = {oc: code.builtinCode for oc, code in enumerate(_codes(dscnn))}
    ops = {kinds[op.opcodeIndex]: op for op in sg.operators}
    reshape = ops[schema.BuiltinOperator.RESHAPE]
    np.testing.assert_array_equal(
        values[reshape.outputs[0]].reshape(-1), values[reshape.inputs[0]].reshape(-1)
    )
    # Feeding a dumped intermediate into the tail of the network must reproduce the output.
    pool = ops[schema.BuiltinOperator.AVERAGE_POOL_2D]
    pooled = values[pool.inputs[0]].astype(np.int64)
    assert np.abs(np.round(pooled.mean(axis=(1, 2))) - values[pool.outputs[0]][:, 0, 0]).max() <= 1


def _codes(model: bytes) -> list[schema.OperatorCodeT]:
    return schema.ModelT.InitFromPackedBuf(bytearray(model), 0).operatorCodes


def test_arena_bytes_for_dscnn(dscnn: bytes) -> None:
    arena = tflm_arena_bytes(dscnn)
    # Two live [1,25,5,32] int8 maps (4000 bytes each) at least, and well under 64 KiB.
    assert 8000 <= arena < 64 * 1024
    assert tflm_arena_bytes(dscnn) == arena  # no dependence on where the arena landed


@pytest.mark.mlperf
def test_arena_bytes_for_mlperf_kws() -> None:
    path = MLPERF / "kws_ref_model.tflite"
    if not path.exists():
        pytest.skip(f"MLPerf Tiny KWS reference model not found at {path}")
    arena = tflm_arena_bytes(path.read_bytes())
    # The reference DS-CNN keeps two [1,25,5,64] int8 maps alive: 16000 bytes of activations.
    assert 16000 <= arena < 64 * 1024


@pytest.mark.mlperf
def test_all_tensors_on_a_converter_made_model() -> None:
    path = MLPERF / "kws_ref_model.tflite"
    if not path.exists():
        pytest.skip(f"MLPerf Tiny KWS reference model not found at {path}")
    model = path.read_bytes()
    sg = _subgraph(model)
    (sample,) = _samples((1, 49, 10, 1), 1, seed=9)
    values = tflm_all_tensors(model, sample)
    np.testing.assert_array_equal(values[sg.outputs[0]], run_tflm(model, [sample])[0][0])
    assert set(values) == {t for op in sg.operators for t in op.outputs} | {sg.inputs[0]}


def test_garbage_model_is_a_readable_error() -> None:
    with pytest.raises(EdgekitError, match="not a TFLite flatbuffer"):
        run_tflm(b"\x00" * 64, [[np.zeros(1, np.int8)]])


def test_wrong_input_is_a_readable_error(mlp: bytes) -> None:
    with pytest.raises(EdgekitError, match="sample 0: input 0") as info:
        run_tflm(mlp, [[np.zeros((1, 32), np.float32)]])
    assert "expected int8 of shape [1, 32]" in str(info.value)
    with pytest.raises(EdgekitError, match="1 inputs"):
        run_tflm(mlp, [[np.zeros((1, 32), np.int8)] * 2])


def test_unsupported_op_is_a_readable_error() -> None:
    from edgekit.frontends.tflite_writer import TFLiteBuilder

    b = TFLiteBuilder()
    x = b.tensor("x", (1, 4), np.float32)
    y = b.tensor("y", (1, 4), np.float32)
    b.op("GELU", [x], [y])  # a valid builtin TFLM has no kernel for
    b.inputs([x])
    b.outputs([y])
    with pytest.raises(EdgekitError, match="TFLM"):
        run_tflm(b.finish(), [[np.zeros((1, 4), np.float32)]])
