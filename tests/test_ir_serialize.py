"""The .ekir format round-trips exactly and rejects damaged files with a clear error."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.errors import EdgekitError
from edgekit.frontends.tflite import read_tflite
from edgekit.ir import serialize
from edgekit.models.dscnn import build_dscnn_kws
from edgekit.passes.lower import lower


@pytest.fixture(scope="module")
def lowered():
    return lower(read_tflite(build_dscnn_kws(0), "dscnn", "dscnn"))


def test_round_trip_is_byte_identical(lowered) -> None:
    data = serialize.dumps(lowered)
    again = serialize.loads(data)
    assert serialize.dumps(again) == data
    assert [o.attrs for o in again.ops] == [o.attrs for o in lowered.ops]
    for name, t in lowered.tensors.items():
        u = again.tensors[name]
        assert (u.shape, u.dtype, u.quant) == (t.shape, t.dtype, t.quant)
        if t.data is not None:
            assert u.data is not None and u.data.dtype == t.data.dtype
            np.testing.assert_array_equal(u.data, t.data)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d[:10], "too short|header length"),
        (lambda d: b"XXXX" + d[4:], "wrong magic"),
        (lambda d: d[:4] + b"\x09\x00" + d[6:], "version 9"),
        (lambda d: d[:12] + b"!" + d[13:], "malformed"),
    ],
)
def test_damaged_files_are_rejected(lowered, mutate, message) -> None:
    with pytest.raises(EdgekitError, match=message):
        serialize.loads(mutate(serialize.dumps(lowered)), "damaged.ekir")
