"""Softmax, mul and add at the edges of their int32 arithmetic: split, widened or proven safe.

Every expectation comes from first principles or from TFLite Micro on inputs where TFLM is
defined, never from edgekit's own Python: products and sums are exact Python integers, the
multipliers are exact powers of two (times 1.5) so the real rescale is the exact one, and the
thresholds are derived here (65025 << 15 fits int32, << 16 does not; 511 exp terms of 2^19 stay
below 2^28, 512 reach it). The C runs under ASan and UBSan (-fno-sanitize-recover), so any
undefined shift or overflow fails the test.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from edgekit.frontends.tflite import read_tflite
from edgekit.frontends.tflite_writer import TFLiteBuilder
from edgekit.passes import overflow
from edgekit.pipeline import compile_graph
from edgekit.reference.tflm import run_tflm

REPO = Path(__file__).resolve().parents[1]
INT32_MAX = 2**31 - 1


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


def _sanitized(model: bytes, workdir: Path, samples: list[list[np.ndarray]]) -> list[np.ndarray]:
    compiled = compile_graph(read_tflite(model, "m", "m"))
    exe = FUZZ.build_sanitized(compiled.generated.files, compiled.generated.name, workdir)
    return [s[0] for s in FUZZ.run_sanitized(exe, compiled.graph, samples)]


# ---------------------------------------------------------------- softmax


def _softmax_model(rows: int, depth: int) -> bytes:
    b = TFLiteBuilder()
    x = b.tensor("x", [rows, depth], np.int8, 0.1, 0)
    y = b.tensor("y", [rows, depth], np.int8, 1.0 / 256, -128)
    b.op("SOFTMAX", [x], [y], beta=1.0)
    b.inputs([x])
    b.outputs([y])
    return b.finish()


def _spread_row(rng: np.random.Generator, depth: int) -> np.ndarray:
    """A random row whose real exp sum is far below 512, so TFLM's arithmetic is defined."""
    row = rng.integers(-128, 128, depth).astype(np.int8)
    assert np.exp(0.1 * (row.astype(np.float64) - row.max())).sum() < 400
    return row


def _one_hot_row(depth: int) -> np.ndarray:
    row = np.full(depth, -128, np.int8)
    row[depth // 3] = 127
    return row


@pytest.mark.parametrize("depth", [511, 512, 5000])
def test_softmax_sum_is_capped_exactly_where_the_output_shift_would_pass_31(
    depth: int, tmp_path: Path
) -> None:
    """Below 512 terms the TFLM path is untouched; from 512 on (and past 4096, where the sum
    would not fit int32) a row reaching 2^28 outputs -128, every other row equals TFLM."""
    model = _softmax_model(3, depth)
    graph = compile_graph(read_tflite(model, "m", "m")).graph
    op = graph.ops[0]
    capped = depth * (1 << 19) >= 1 << 28
    assert bool(op.attrs["q"].get("sum_cap")) == capped
    assert op.attrs["overflow"].get("widened") == ("capped_sum" if capped else None)
    source = compile_graph(read_tflite(model, "m", "m")).generated.files["m.c"]
    assert ("ek_wrap_add(sum" in source) == (not capped)  # TFLM's own code when it suffices

    rng = np.random.default_rng(depth)
    spread, one_hot = _spread_row(rng, depth), _one_hot_row(depth)
    equal = np.zeros(depth, np.int8)  # every term is exp(0): the sum is depth * 2^19 exactly
    defined = [np.stack([spread, one_hot, one_hot if capped else equal])]
    (tflm,) = run_tflm(model, [defined])[0]
    assert tflm[1, depth // 3] == 127 and (np.delete(tflm[1], depth // 3) == -128).all()

    out = _sanitized(model, tmp_path / "c", [[np.stack([spread, one_hot, equal])]])[0]
    np.testing.assert_array_equal(out[:2], tflm[:2])
    if capped:
        assert (out[2] == -128).all()
    else:  # 1/511 of 256 is 0.501: TFLM and the C round it up
        np.testing.assert_array_equal(out[2], tflm[2])
        assert (out[2] == -127).all()


def test_softmax_without_the_cap_shifts_by_32(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The control: the same 512-term row with the pass disabled is undefined behaviour."""
    monkeypatch.setattr("edgekit.pipeline.check_overflow", lambda g, where="": g)
    with pytest.raises(RuntimeError, match="shift exponent 32"):
        _sanitized(_softmax_model(1, 512), tmp_path / "c", [[np.zeros((1, 512), np.int8)]])


# ---------------------------------------------------------------- mul


def _mul_model(dtype: type, n: int, s1: float, s2: float, so: float, z1: int, z2: int) -> bytes:
    b = TFLiteBuilder()
    a = b.tensor("a", [1, n], dtype, s1, z1)
    c = b.tensor("c", [1, n], dtype, s2, z2)
    y = b.tensor("y", [1, n], dtype, so, 0)
    b.op("MUL", [a, c], [y])
    b.inputs([a, c])
    b.outputs([y])
    return b.finish()


def _all_int8_pairs() -> tuple[np.ndarray, np.ndarray]:
    v = np.arange(-128, 128, dtype=np.int8)
    return np.repeat(v, 256).reshape(1, -1), np.tile(v, 256).reshape(1, -1)


@pytest.mark.parametrize("shift", [15, 16, 17, 30])
def test_int8_mul_is_widened_exactly_when_its_shifted_product_leaves_int32(
    shift: int, tmp_path: Path
) -> None:
    """Zero points 127 and -128 give products in [-65025, 0]. Rescale 1.5 * 2^(shift-1) (the
    multiplier 0.75 * 2^31 with that left shift) is exact, so the output is the exact
    product times it, clamped: checked over all 65,536 input pairs."""
    real = 1.5 * 2.0 ** (shift - 1)
    model = _mul_model(np.int8, 65536, 1.5, 1.0, 2.0 ** (1 - shift), 127, -128)
    graph = compile_graph(read_tflite(model, "m", "m")).graph
    op = graph.ops[0]
    assert (op.attrs["q"]["output_multiplier"], op.attrs["q"]["output_shift"]) == (3 << 29, shift)
    widened = 65025 << shift > INT32_MAX
    assert bool(op.attrs["q"].get("acc64")) == widened == (shift >= 16)
    if widened:
        assert op.attrs["overflow"]["widened"] == "int64"
        cm4 = compile_graph(read_tflite(model, "m", "m"), target="cortex-m4")
        assert cm4.generated.layers[0].variant.family == "portable"

    a, c = _all_int8_pairs()
    out = _sanitized(model, tmp_path / "c", [[a, c]])[0].reshape(-1)
    prod = (a.astype(np.int64) - 127) * (c.astype(np.int64) + 128)
    expect = np.clip(np.array([int(p * real) for p in prod.reshape(-1)]), -128, 127)
    np.testing.assert_array_equal(out, expect)
    if not widened:  # the TFLM path, byte for byte
        np.testing.assert_array_equal(out, run_tflm(model, [[a, c]])[0][0].reshape(-1))


def test_int16_mul_product_of_two_minimums_is_widened(tmp_path: Path) -> None:
    """16x8 mul with rescale exactly 1: (-32768)^2 = 2^30, shifted left once, is 2^31, one past
    int32 (TFLM's int32 wraps it negative). Widened, it saturates to 32767 as the real product
    does; every other pair equals the exact product, clamped."""
    values = [-32768, -32767, -30000, -181, -2, -1, 0, 1, 2, 181, 182, 30000, 32767]
    n = len(values) ** 2
    model = _mul_model(np.int16, n, 2.0**-8, 2.0**-8, 2.0**-16, 0, 0)
    graph = compile_graph(read_tflite(model, "m", "m")).graph
    op = graph.ops[0]
    assert (op.attrs["q"]["output_multiplier"], op.attrs["q"]["output_shift"]) == (1 << 30, 1)
    assert op.attrs["q"].get("acc64") and op.attrs["overflow"]["widened"] == "int64"
    bound = overflow.layer_bounds(graph, op)[0]
    assert (bound.stage, bound.lo, bound.hi) == ("product", -32768 * 32767, 32768 * 32768)

    a = np.repeat(np.array(values, np.int16), len(values)).reshape(1, n)
    c = np.tile(np.array(values, np.int16), len(values)).reshape(1, n)
    out = _sanitized(model, tmp_path / "c", [[a, c]])[0].reshape(-1)
    expect = np.clip(a.astype(np.int64) * c, -32768, 32767).reshape(-1)
    np.testing.assert_array_equal(out, expect)
    assert out[0] == 32767
    safe = [[a[:, 1:], c[:, 1:]]]  # without the one pair TFLM cannot compute
    model_safe = _mul_model(np.int16, n - 1, 2.0**-8, 2.0**-8, 2.0**-16, 0, 0)
    np.testing.assert_array_equal(run_tflm(model_safe, safe)[0][0].reshape(-1), expect[1:])


# ---------------------------------------------------------------- add


@pytest.mark.parametrize("dtype, z, left", [(np.int8, 127, 20), (np.int16, 0, 15)])
def test_add_extremes_stay_in_int32_and_match_tflm(
    dtype: type, z: int, left: int, tmp_path: Path
) -> None:
    """Lowering accepts input rescales of at most 1/2 and an output rescale below one, so the
    largest |x - z| (255 for int8, 32768 for 16x8) shifted by 20 or 15 bits, halved and summed
    stays in int32; the pass proves it with the exact term range, and the C agrees with TFLM on
    the extreme inputs under the sanitizers."""
    info = np.iinfo(dtype)
    term = max(abs(int(info.min) - z), abs(int(info.max) - z))
    assert term << left <= INT32_MAX  # the shifted input fits; its rescale halves it
    b = TFLiteBuilder()
    x1 = b.tensor("x1", [1, 8], dtype, 1.0, z)
    x2 = b.tensor("x2", [1, 8], dtype, 1.0 / 3.0, z if dtype is np.int8 else 0)
    y = b.tensor("y", [1, 8], dtype, 2.0 / (1 << left) * 1.0001, 0)  # output rescale just below 1
    b.op("ADD", [x1, x2], [y])
    b.inputs([x1, x2])
    b.outputs([y])
    model = b.finish()
    graph = compile_graph(read_tflite(model, "m", "m")).graph
    op = graph.ops[0]
    assert "acc64" not in op.attrs["q"] and op.attrs["overflow"]["headroom_bits"] >= 0
    shifted = next(s for s in overflow.layer_bounds(graph, op) if s.stage == "input1_shifted")
    assert shifted.max_abs == term << left  # 32768 << 15 for 16x8, not 255 << 15
    lo, hi = int(info.min), int(info.max)
    a = np.array([[lo, hi, lo, hi, 0, z, -1, 1]], dtype)
    c = np.array([[lo, hi, hi, lo, 0, z, 1, -1]], dtype)
    out = _sanitized(model, tmp_path / "c", [[a, c]])[0]
    np.testing.assert_array_equal(out, run_tflm(model, [[a, c]])[0][0])


def test_mul_without_widening_wraps_to_the_wrong_sign(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The control: with the pass disabled, ek_mbqm's (unsigned) left shift wraps 2^31 to
    -2^31, so the product of two minimums comes out as -32768 instead of 32767."""
    monkeypatch.setattr("edgekit.pipeline.check_overflow", lambda g, where="": g)
    model = _mul_model(np.int16, 1, 2.0**-8, 2.0**-8, 2.0**-16, 0, 0)
    x = np.array([[-32768]], np.int16)
    assert _sanitized(model, tmp_path / "c", [[x, x]])[0].reshape(-1)[0] == -32768


def test_widened_and_split_layers_survive_a_lowered_ekir(tmp_path: Path) -> None:
    """A lowered .ekir is accepted only if re-deriving it gives the same q, acc64 and sum_cap
    included, and it generates the same C."""
    from edgekit.ir import serialize
    from edgekit.pipeline import load_model

    for i, model in enumerate(
        [_softmax_model(1, 600), _mul_model(np.int8, 4, 1.5, 1.0, 2.0**-16, 127, -128)]
    ):
        first = compile_graph(read_tflite(model, "m", "m"))
        path = tmp_path / f"m{i}.ekir"
        path.write_bytes(serialize.dumps(first.graph))
        graph, _ = load_model(path, "m")
        again = compile_graph(graph, where=str(path))
        assert again.generated.files == first.generated.files
