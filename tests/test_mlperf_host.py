"""The four MLPerf Tiny int8 models: generated C equals TFLite Micro byte for byte."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.pipeline import compile_file
from edgekit.reference.tflm import run_tflm, tflm_all_tensors
from edgekit.runners.host import HostModel
from edgekit.verify import compare, random_inputs
from tests.conftest import mlperf_model

pytestmark = pytest.mark.mlperf

SAMPLES = 200


@pytest.fixture(scope="module", params=["ad", "kws", "ic", "vww"])
def built(request: pytest.FixtureRequest):
    path = mlperf_model(request.param)
    compiled = compile_file(path)
    return path, compiled, HostModel(compiled)


def test_outputs_bit_exact_on_200_random_inputs(built) -> None:
    path, compiled, model = built
    inputs = random_inputs(compiled.graph, SAMPLES, seed=1234)
    ours = [model.run(s) for s in inputs]
    reference = run_tflm(path.read_bytes(), inputs)
    result = compare(compiled, ours, reference)
    assert result.samples == SAMPLES
    for out in result.outputs:
        assert out.mismatched_elements == 0, f"{path.name}: {out}"
    # the comparison is not vacuous: outputs vary across inputs
    assert len({o[0].tobytes() for o in ours}) > 1


def test_every_intermediate_tensor_matches(built) -> None:
    path, compiled, model = built
    names = compiled.graph.meta["tflite_tensor_names"]
    for sample in random_inputs(compiled.graph, 3, seed=99):
        ours = model.run_traced(sample)
        ref = tflm_all_tensors(path.read_bytes(), sample)
        checked = 0
        for index, value in ref.items():
            name = names[index]
            if name in ours:
                np.testing.assert_array_equal(
                    ours[name].reshape(-1), np.asarray(value).reshape(-1), err_msg=name
                )
                checked += 1
        producing = {t for op in compiled.graph.ops for t in op.outputs}
        assert checked >= len(producing)


def test_arena_at_liveness_bound(built) -> None:
    _, compiled, _ = built
    plan = compiled.plan
    assert plan.arena_bytes <= plan.lower_bound_bytes * 1.05
