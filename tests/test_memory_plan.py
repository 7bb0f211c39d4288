"""The planner never lets two tensors that are alive together share bytes."""

from __future__ import annotations

import pytest

from edgekit.frontends.tflite import read_tflite
from edgekit.models.dscnn import build_dscnn_kws, build_tiny_mlp
from edgekit.passes.lower import lower
from edgekit.passes.memory import plan_memory
from tests.conftest import MLPERF_INT8, mlperf_model


def _graphs():
    yield "dscnn", lower(read_tflite(build_dscnn_kws(3), "dscnn", "dscnn"))
    yield "mlp", lower(read_tflite(build_tiny_mlp(1), "mlp", "mlp"))
    for key in MLPERF_INT8:
        try:
            path = mlperf_model(key)
        except pytest.skip.Exception:
            continue
        yield key, lower(read_tflite(path.read_bytes(), str(path), key))


@pytest.mark.parametrize("name, graph", list(_graphs()))
def test_live_buffers_never_overlap(name, graph) -> None:
    plan = plan_memory(graph)
    bufs = plan.buffers
    for i, a in enumerate(bufs):
        assert a.offset >= 0 and a.offset % 16 == 0
        assert a.offset + a.size <= plan.arena_bytes
        for b in bufs[i + 1 :]:
            if a.start <= b.end and b.start <= a.end:
                disjoint = a.offset + a.size <= b.offset or b.offset + b.size <= a.offset
                assert disjoint, f"{name}: {a.name} and {b.name} overlap"
    assert plan.lower_bound_bytes <= plan.arena_bytes
    for t in graph.activations():
        if any(t.name in op.inputs + op.outputs for op in graph.ops):
            assert t.name in plan.offsets
