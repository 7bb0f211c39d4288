"""Single-op int8 models: generated C equals TFLite Micro byte for byte.

Every test draws an op configuration with hypothesis (shapes, strides, padding, quantization,
activations...), writes a one-op .tflite with TFLiteBuilder, compiles it to C, runs both on random
inputs and compares the raw output bytes. Draws are derandomized so CI runs the same examples
every time; each example compiles C (about half a second), so example counts are kept small.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as schema
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgekit.errors import EdgekitError
from edgekit.frontends.tflite import read_tflite
from edgekit.frontends.tflite_writer import TFLiteBuilder, pack_model
from edgekit.passes.lower import strided_slice_indices
from edgekit.pipeline import compile_graph
from edgekit.reference.tflm import run_tflm
from edgekit.runners.host import HostModel

SAMPLES = 6  # random inputs per compiled example; running is cheap next to compiling
ACTIVATIONS = ["NONE", "RELU", "RELU6", "RELU_N1_TO_1"]
Draw = Callable[[st.SearchStrategy[Any]], Any]


def _examples(n: int) -> settings:
    return settings(
        max_examples=n,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


# --- harness ---------------------------------------------------------------------------------


def _random_input(rng: np.random.Generator, shape: Sequence[int], dtype: Any) -> np.ndarray:
    if np.dtype(dtype) == np.float32:
        return rng.normal(0.0, 4.0, shape).astype(np.float32)
    return rng.integers(-128, 128, shape).astype(np.int8)


def _assert_bit_exact(
    b: TFLiteBuilder, seed: int, inputs: list[list[np.ndarray]] | None = None
) -> list[list[np.ndarray]]:
    """Compile the builder's model, run it and TFLM on the same inputs, compare every byte."""
    model = b.finish()
    graph = read_tflite(model, "<hypothesis>", "op")
    if inputs is None:
        rng = np.random.default_rng(seed)
        inputs = [
            [_random_input(rng, graph.tensor(t).shape, graph.tensor(t).dtype) for t in graph.inputs]
            for _ in range(SAMPLES)
        ]
    host = HostModel(compile_graph(graph))
    ours = [host.run(sample) for sample in inputs]
    reference = run_tflm(model, inputs)
    for n, (got, want) in enumerate(zip(ours, reference, strict=True)):
        for k, (a, r) in enumerate(zip(got, want, strict=True)):
            a_bytes = np.ascontiguousarray(a).reshape(-1)
            r_bytes = np.ascontiguousarray(np.asarray(r, dtype=a.dtype)).reshape(-1)
            assert a_bytes.size == r_bytes.size, f"output {k}: {a.shape} vs {np.shape(r)}"
            bad = np.nonzero(a_bytes.view(np.uint8) != r_bytes.view(np.uint8))[0]
            if bad.size:
                idx = sorted({int(i) // a.itemsize for i in bad})[:8]
                pytest.fail(
                    f"sample {n} output {k}: {len(idx)}+ elements differ at {idx}: "
                    f"edgekit {a_bytes[idx].tolist()} vs TFLM {r_bytes[idx].tolist()}"
                )
    return ours


def _f32(x: float) -> float:
    return float(np.float32(x))


def _log_scale(draw: Draw, lo: float, hi: float) -> float:
    """A scale 10^e with e uniform in [lo, hi], rounded to float32 as the file stores it."""
    return _f32(10.0 ** draw(st.floats(lo, hi, allow_nan=False, allow_infinity=False)))


def _zero_point(draw: Draw) -> int:
    return draw(st.one_of(st.just(0), st.just(-128), st.integers(-128, 127)))


def _seed(draw: Draw) -> int:
    return draw(st.integers(0, 2**32 - 1))


def _acc_scale(fan_in: int) -> float:
    """Rough std of an int8 dot product of `fan_in` uniform values, in input*weight units."""
    return float(np.sqrt(max(fan_in, 1))) * 74.0 * 60.0


# --- convolutions ----------------------------------------------------------------------------


@st.composite
def _conv_cases(draw: Draw, depthwise: bool) -> dict[str, Any]:
    padding = draw(st.sampled_from(["SAME", "VALID"]))
    h, w = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    dh, dw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    if padding == "VALID":
        # keep at least one output pixel: shrink the dilation, then the kernel
        if (kh - 1) * dh + 1 > h:
            dh = 1
            kh = min(kh, h)
        if (kw - 1) * dw + 1 > w:
            dw = 1
            kw = min(kw, w)
    cin = draw(st.integers(1, 5))
    mult = draw(st.integers(1, 3)) if depthwise else 1
    cout = cin * mult if depthwise else draw(st.integers(1, 7))
    return {
        "batch": draw(st.integers(1, 2)),
        "hw": (h, w),
        "kernel": (kh, kw),
        "stride": (draw(st.integers(1, 3)), draw(st.integers(1, 3))),
        "dilation": (dh, dw),
        "padding": padding,
        "cin": cin,
        "cout": cout,
        "activation": draw(st.sampled_from(ACTIVATIONS)),
        "per_channel": draw(st.booleans()),
        "in_scale": _log_scale(draw, -3.0, 0.0),
        "in_zp": _zero_point(draw),
        "out_zp": _zero_point(draw),
        "out_gain": _log_scale(draw, -0.7, 0.7),
        # TFLM's DEPTHWISE_CONV_2D crashes in Prepare without a bias tensor (converters always
        # write one), so only CONV_2D is tried without
        "bias": depthwise or draw(st.booleans()),
        "seed": _seed(draw),
    }


def _out_size(size: int, k: int, s: int, d: int, padding: str) -> int:
    if padding == "SAME":
        return (size + s - 1) // s
    return (size - ((k - 1) * d + 1) + s) // s


def _conv_model(case: dict[str, Any], depthwise: bool) -> TFLiteBuilder:
    rng = np.random.default_rng(case["seed"])
    (h, w), (kh, kw) = case["hw"], case["kernel"]
    (sh, sw), (dh, dw) = case["stride"], case["dilation"]
    cin, cout = case["cin"], case["cout"]
    oh = _out_size(h, kh, sh, dh, case["padding"])
    ow = _out_size(w, kw, sw, dw, case["padding"])
    if case["per_channel"]:
        # per-channel scales across three orders of magnitude
        w_scales = (10.0 ** rng.uniform(-4.0, -1.0, cout)).astype(np.float32)
    else:
        w_scales = np.full(1, 10.0 ** rng.uniform(-3.5, -1.5), dtype=np.float32)
    fan_in = kh * kw * (1 if depthwise else cin)
    out_scale = _f32(
        case["in_scale"] * float(np.median(w_scales)) * _acc_scale(fan_in) / 60 * case["out_gain"]
    )
    b = TFLiteBuilder()
    x = b.tensor("x", [case["batch"], h, w, cin], np.int8, case["in_scale"], case["in_zp"])
    shape = (1, kh, kw, cout) if depthwise else (cout, kh, kw, cin)
    wt = b.const(
        "w",
        rng.integers(-127, 128, shape).astype(np.int8),
        w_scales,
        0,
        quantized_dimension=3 if depthwise else 0,
    )
    ins = [x, wt]
    if case["bias"]:
        bias_scale = (case["in_scale"] * w_scales.astype(np.float64)).astype(np.float32)
        bias = rng.normal(0.0, 3000.0, cout).astype(np.int32)
        ins.append(b.const("b", bias, bias_scale, 0))
    else:
        ins.append(-1)
    y = b.tensor("y", [case["batch"], oh, ow, cout], np.int8, out_scale, case["out_zp"])
    b.op(
        "DEPTHWISE_CONV_2D" if depthwise else "CONV_2D",
        ins,
        [y],
        stride=case["stride"],
        dilation=case["dilation"],
        padding=case["padding"],
        activation=case["activation"],
    )
    b.inputs([x])
    b.outputs([y])
    return b


@_examples(18)
@given(_conv_cases(depthwise=False))
def test_conv2d(case: dict[str, Any]) -> None:
    _assert_bit_exact(_conv_model(case, depthwise=False), case["seed"])


@_examples(18)
@given(_conv_cases(depthwise=True))
def test_depthwise_conv2d(case: dict[str, Any]) -> None:
    _assert_bit_exact(_conv_model(case, depthwise=True), case["seed"])


# --- fully connected -------------------------------------------------------------------------


@_examples(14)
@given(st.data())
def test_fully_connected(data: st.DataObject) -> None:
    draw = data.draw
    seed = _seed(draw)
    rng = np.random.default_rng(seed)
    depth, units = draw(st.integers(1, 24)), draw(st.integers(1, 9))
    lead = draw(st.sampled_from([[1], [3], [2, 3], [1, 2, 2]]))
    keep = draw(st.booleans())
    flatten_input = not keep and draw(st.booleans())
    if flatten_input:
        # a [1, h, w, c] input read as one row of depth h*w*c
        in_shape = [1, 2, 2, depth]
        depth *= 4
        out_shape = [1, units]
    else:
        in_shape = [*lead, depth]
        out_shape = [*lead, units] if keep else [int(np.prod(lead)), units]
    per_channel = draw(st.booleans())
    in_scale, in_zp = _log_scale(draw, -3.0, 0.0), _zero_point(draw)
    if per_channel:
        w_scales = (10.0 ** rng.uniform(-4.0, -1.0, units)).astype(np.float32)
        w_zp: Any = 0
    else:
        w_scales = np.full(1, 10.0 ** rng.uniform(-3.5, -1.5), dtype=np.float32)
        # TFLM's FULLY_CONNECTED, unlike its convolutions, accepts asymmetric weights
        w_zp = draw(st.sampled_from([0, 0, 5, -128, 127]))
    out_scale = _f32(
        in_scale * float(np.median(w_scales)) * _acc_scale(depth) / 60 * _log_scale(draw, -0.7, 0.7)
    )
    b = TFLiteBuilder()
    x = b.tensor("x", in_shape, np.int8, in_scale, in_zp)
    wt = b.const("w", rng.integers(-127, 128, (units, depth)).astype(np.int8), w_scales, w_zp)
    bias = -1
    if draw(st.booleans()):
        bias = b.const(
            "b",
            rng.normal(0.0, 3000.0, units).astype(np.int32),
            (in_scale * w_scales.astype(np.float64)).astype(np.float32),
            0,
        )
    y = b.tensor("y", out_shape, np.int8, out_scale, _zero_point(draw))
    b.op(
        "FULLY_CONNECTED",
        [x, wt, bias],
        [y],
        activation=draw(st.sampled_from(ACTIVATIONS)),
        keep_num_dims=keep,
    )
    b.inputs([x])
    b.outputs([y])
    _assert_bit_exact(b, seed)


def test_fully_connected_multiplier_is_a_double_product() -> None:
    """Pins the per-tensor FC multiplier to s_in * s_w in double (the older TFLite helper rounds
    that product to float32 first, which here turns an accumulator of -93614 into -75, not -74)."""
    s_in, s_w = 0.0452277697622776, 0.006582612171769142
    b = TFLiteBuilder()
    x = b.tensor("x", [1, 1], np.int8, s_in, 0)
    wt = b.const("w", np.array([[1]], np.int8), s_w, 0)
    bias = b.const("b", np.array([-93614], np.int32), _f32(s_in * s_w), 0)
    y = b.tensor("y", [1, 1], np.int8, 0.3741026818752289, 0)
    b.op("FULLY_CONNECTED", [x, wt, bias], [y])
    b.inputs([x])
    b.outputs([y])
    (out,) = _assert_bit_exact(b, 0, [[np.zeros((1, 1), np.int8)]])
    assert out[0][0, 0] == -74


# --- pooling ---------------------------------------------------------------------------------


@st.composite
def _pool_cases(draw: Draw) -> dict[str, Any]:
    padding = draw(st.sampled_from(["SAME", "VALID"]))
    h, w = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    fh, fw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    if padding == "VALID":
        fh, fw = min(fh, h), min(fw, w)
    return {
        "shape": [draw(st.integers(1, 2)), h, w, draw(st.integers(1, 5))],
        "filter": (fh, fw),
        "stride": (draw(st.integers(1, 3)), draw(st.integers(1, 3))),
        "padding": padding,
        "activation": draw(st.sampled_from(ACTIVATIONS)),
        "scale": _log_scale(draw, -3.0, -0.5),
        "zp": _zero_point(draw),
        "seed": _seed(draw),
    }


def _pool(case: dict[str, Any], opname: str) -> None:
    n, h, w, c = case["shape"]
    (fh, fw), (sh, sw) = case["filter"], case["stride"]
    oh = _out_size(h, fh, sh, 1, case["padding"])
    ow = _out_size(w, fw, sw, 1, case["padding"])
    b = TFLiteBuilder()
    x = b.tensor("x", case["shape"], np.int8, case["scale"], case["zp"])
    y = b.tensor("y", [n, oh, ow, c], np.int8, case["scale"], case["zp"])
    b.op(
        opname,
        [x],
        [y],
        filter=case["filter"],
        stride=case["stride"],
        padding=case["padding"],
        activation=case["activation"],
    )
    b.inputs([x])
    b.outputs([y])
    _assert_bit_exact(b, case["seed"])


@_examples(12)
@given(_pool_cases())
def test_average_pool2d(case: dict[str, Any]) -> None:
    _pool(case, "AVERAGE_POOL_2D")


@_examples(8)
@given(_pool_cases())
def test_max_pool2d(case: dict[str, Any]) -> None:
    _pool(case, "MAX_POOL_2D")


# --- elementwise binary ----------------------------------------------------------------------


@st.composite
def _broadcast_shapes(draw: Draw) -> tuple[list[int], list[int], list[int]]:
    rank = draw(st.integers(1, 4))
    full = [draw(st.integers(1, 5)) for _ in range(rank)]
    if draw(st.booleans()):
        return full, list(full), full

    def operand() -> list[int]:
        dims = [d if draw(st.booleans()) else 1 for d in full]
        drop = draw(st.integers(0, rank - 1))
        return dims[drop:] if all(d == 1 for d in dims[:drop]) else dims

    a, b = operand(), operand()
    out = [
        max(x, y) for x, y in zip([1] * (rank - len(a)) + a, [1] * (rank - len(b)) + b, strict=True)
    ]
    return a, b, out


def _binary(data: st.DataObject, opname: str) -> None:
    draw = data.draw
    a_shape, b_shape, y_shape = draw(_broadcast_shapes())
    s1, s2 = _log_scale(draw, -3.0, 0.0), _log_scale(draw, -3.0, 0.0)
    gain = _log_scale(draw, -0.7, 0.7)
    # an output range that neither saturates every result nor rounds them all to zero
    so = _f32(s1 * s2 * 128.0 * gain) if opname == "MUL" else _f32((s1 + s2) * gain)
    b = TFLiteBuilder()
    seed = _seed(draw)
    x1 = b.tensor("a", a_shape, np.int8, s1, _zero_point(draw))
    if draw(st.integers(0, 4)) == 0:
        # a constant operand, as a folded scale or offset would be
        rng = np.random.default_rng(seed + 1)
        x2 = b.const("b", rng.integers(-128, 128, b_shape).astype(np.int8), s2, _zero_point(draw))
        inputs = [x1]
    else:
        x2 = b.tensor("b", b_shape, np.int8, s2, _zero_point(draw))
        inputs = [x1, x2]
    if draw(st.booleans()):
        x1, x2 = x2, x1
    y = b.tensor("y", y_shape, np.int8, so, _zero_point(draw))
    b.op(opname, [x1, x2], [y], activation=draw(st.sampled_from(ACTIVATIONS)))
    b.inputs(inputs)
    b.outputs([y])
    _assert_bit_exact(b, seed)


@_examples(14)
@given(st.data())
def test_add(data: st.DataObject) -> None:
    _binary(data, "ADD")


@_examples(12)
@given(st.data())
def test_sub(data: st.DataObject) -> None:
    _binary(data, "SUB")


@_examples(12)
@given(st.data())
def test_mul(data: st.DataObject) -> None:
    _binary(data, "MUL")


def test_mul_multiplier_is_a_double_product() -> None:
    """Pins the MUL scale product to double: with these scales a float32 product of s1 * s2
    gives a multiplier 51 units larger, and (206 * 228) then requantizes to 111 instead of 110."""
    b = TFLiteBuilder()
    x1 = b.tensor("a", [1, 2], np.int8, 0.3317757844924927, -128)
    x2 = b.tensor("b", [1, 2], np.int8, 0.014561287127435207, -128)
    y = b.tensor("y", [1, 2], np.int8, 2.0534868240356445, 0)
    b.op("MUL", [x1, x2], [y])
    b.inputs([x1, x2])
    b.outputs([y])
    sample = [np.array([[206 - 128, 0]], np.int8), np.array([[228 - 128, 0]], np.int8)]
    (out,) = _assert_bit_exact(b, 0, [sample])
    assert out[0][0, 0] == 110


# --- reshapes --------------------------------------------------------------------------------


def _factorizations(n: int) -> st.SearchStrategy[list[int]]:
    divisors = [d for d in range(1, n + 1) if n % d == 0]

    @st.composite
    def split(draw: Draw) -> list[int]:
        dims, rest = [], n
        for _ in range(draw(st.integers(0, 3))):
            d = draw(st.sampled_from([k for k in divisors if rest % k == 0]))
            dims.append(d)
            rest //= d
        return [*dims, rest]

    return split()


def _storage_only(
    b: TFLiteBuilder,
    opname: str,
    in_shape: list[int],
    out_shape: list[int],
    scale: float,
    zp: int,
    **options: Any,
) -> None:
    x = b.tensor("x", in_shape, np.int8, scale, zp)
    # a RELU first, so the reshape reads a computed tensor rather than renaming the graph input
    r = b.tensor("r", in_shape, np.int8, scale, zp)
    y = b.tensor("y", out_shape, np.int8, scale, zp)
    b.op("RELU", [x], [r])
    b.op(opname, [r], [y], **options)
    b.inputs([x])
    b.outputs([y])


@_examples(4)
@given(st.data())
def test_reshape(data: st.DataObject) -> None:
    draw = data.draw
    size = draw(st.sampled_from([1, 6, 12, 30, 36]))
    in_shape, out_shape = draw(_factorizations(size)), draw(_factorizations(size))
    b = TFLiteBuilder()
    scale, zp = _log_scale(draw, -3.0, 0.0), _zero_point(draw)
    _storage_only(b, "RESHAPE", in_shape, out_shape, scale, zp, new_shape=out_shape)
    _assert_bit_exact(b, _seed(draw))


@_examples(4)
@given(st.data())
def test_squeeze(data: st.DataObject) -> None:
    draw = data.draw
    in_shape = [draw(st.sampled_from([1, 1, 2, 3])) for _ in range(draw(st.integers(1, 4)))]
    ones = [i for i, d in enumerate(in_shape) if d == 1]
    dims = draw(st.lists(st.sampled_from(ones), unique=True)) if ones else []
    squeezed = dims or ones
    out_shape = [d for i, d in enumerate(in_shape) if i not in squeezed]
    b = TFLiteBuilder()
    scale, zp = _log_scale(draw, -3.0, 0.0), _zero_point(draw)
    _storage_only(b, "SQUEEZE", in_shape, out_shape, scale, zp, squeeze_dims=dims)
    _assert_bit_exact(b, _seed(draw))


# --- softmax, logistic, tanh -----------------------------------------------------------------


@_examples(14)
@given(st.data())
def test_softmax(data: st.DataObject) -> None:
    draw = data.draw
    shape = draw(st.sampled_from([[1, 10], [3, 7], [1, 1], [2, 1, 3, 5], [1, 40]]))
    beta = draw(st.sampled_from([1.0, 0.5, 2.0, 0.1, 3.7]))
    # up to 50: the scaled input multiplier then hits its 2^31 - 1 cap
    scale = _log_scale(draw, -3.0, 1.7)
    b = TFLiteBuilder()
    x = b.tensor("x", shape, np.int8, scale, _zero_point(draw))
    y = b.tensor("y", shape, np.int8, 1.0 / 256, -128)
    b.op("SOFTMAX", [x], [y], beta=beta)
    b.inputs([x])
    b.outputs([y])
    _assert_bit_exact(b, _seed(draw))


def _sigmoid_tanh(data: st.DataObject, opname: str) -> None:
    draw = data.draw
    shape = draw(st.sampled_from([[1, 256], [4, 64], [2, 3, 5, 7]]))
    scale, zp = _log_scale(draw, -3.0, 0.5), _zero_point(draw)
    b = TFLiteBuilder()
    x = b.tensor("x", shape, np.int8, scale, zp)
    if opname == "LOGISTIC":
        y = b.tensor("y", shape, np.int8, 1.0 / 256, -128)
    else:
        y = b.tensor("y", shape, np.int8, 1.0 / 128, 0)
    b.op(opname, [x], [y])
    b.inputs([x])
    b.outputs([y])
    # every int8 value at least once, so the whole curve is compared
    size = int(np.prod(shape))
    rng = np.random.default_rng(_seed(draw))
    samples = []
    for _ in range(3):
        v = np.resize(np.arange(-128, 128, dtype=np.int8), size)
        samples.append([rng.permutation(v).reshape(shape)])
    _assert_bit_exact(b, 0, samples)


@_examples(10)
@given(st.data())
def test_logistic(data: st.DataObject) -> None:
    _sigmoid_tanh(data, "LOGISTIC")


@_examples(10)
@given(st.data())
def test_tanh(data: st.DataObject) -> None:
    _sigmoid_tanh(data, "TANH")


# --- relu, relu6, quantize, dequantize -------------------------------------------------------


def _unary(
    data: st.DataObject,
    opname: str,
    in_dtype: Any,
    out_dtype: Any,
    same_quant: bool = False,
    inputs: Callable[[np.random.Generator, list[int], float], np.ndarray] | None = None,
) -> None:
    draw = data.draw
    shape = draw(st.sampled_from([[1, 256], [2, 5, 7], [3, 1, 1, 4]]))
    s_in, z_in = _log_scale(draw, -3.0, 0.0), _zero_point(draw)
    if same_quant:
        s_out, z_out = s_in, z_in
    else:
        s_out, z_out = _f32(s_in * _log_scale(draw, -1.0, 1.0)), _zero_point(draw)
    b = TFLiteBuilder()
    float_in = np.dtype(in_dtype) == np.float32
    float_out = np.dtype(out_dtype) == np.float32
    x = b.tensor("x", shape, in_dtype, None if float_in else s_in, None if float_in else z_in)
    y = b.tensor("y", shape, out_dtype, None if float_out else s_out, None if float_out else z_out)
    b.op(opname, [x], [y])
    b.inputs([x])
    b.outputs([y])
    seed = _seed(draw)
    samples = None
    if inputs is not None:
        rng = np.random.default_rng(seed)
        samples = [[inputs(rng, shape, s_out)] for _ in range(SAMPLES)]
    _assert_bit_exact(b, seed, samples)


@_examples(8)
@given(st.data())
def test_relu(data: st.DataObject) -> None:
    _unary(data, "RELU", np.int8, np.int8, same_quant=data.draw(st.booleans()))


@_examples(8)
@given(st.data())
def test_relu6(data: st.DataObject) -> None:
    _unary(data, "RELU6", np.int8, np.int8, same_quant=data.draw(st.booleans()))


def _float_inputs(rng: np.random.Generator, shape: list[int], scale: float) -> np.ndarray:
    """Floats around the quantized range, a quarter of them exactly on a rounding tie."""
    steps = rng.uniform(-300.0, 300.0, shape)
    ties = np.round(steps) + 0.5
    steps = np.where(rng.random(shape) < 0.25, ties, steps)
    return (steps * scale).astype(np.float32)


@_examples(6)
@given(st.data())
def test_quantize_from_float(data: st.DataObject) -> None:
    _unary(data, "QUANTIZE", np.float32, np.int8, inputs=_float_inputs)


@_examples(6)
@given(st.data())
def test_requantize_int8(data: st.DataObject) -> None:
    _unary(data, "QUANTIZE", np.int8, np.int8)


@_examples(6)
@given(st.data())
def test_dequantize(data: st.DataObject) -> None:
    _unary(data, "DEQUANTIZE", np.int8, np.float32)


# --- data movement ---------------------------------------------------------------------------


@_examples(8)
@given(st.data())
def test_pad(data: st.DataObject) -> None:
    draw = data.draw
    shape = [draw(st.integers(1, 4)) for _ in range(draw(st.integers(1, 4)))]
    pads = [[draw(st.integers(0, 3)), draw(st.integers(0, 3))] for _ in shape]
    scale, zp = _log_scale(draw, -3.0, 0.0), _zero_point(draw)
    b = TFLiteBuilder()
    x = b.tensor("x", shape, np.int8, scale, zp)
    y = b.tensor(
        "y", [d + p + q for d, (p, q) in zip(shape, pads, strict=True)], np.int8, scale, zp
    )
    b.op("PAD", [x], [y], paddings=np.array(pads, np.int32))
    b.inputs([x])
    b.outputs([y])
    _assert_bit_exact(b, _seed(draw))


@_examples(8)
@given(st.data())
def test_concatenation(data: st.DataObject) -> None:
    draw = data.draw
    rank = draw(st.integers(1, 4))
    base = [draw(st.integers(1, 4)) for _ in range(rank)]
    axis = draw(st.integers(-rank, rank - 1))
    scale, zp = _log_scale(draw, -3.0, 0.0), _zero_point(draw)
    seed = _seed(draw)
    rng = np.random.default_rng(seed)
    b = TFLiteBuilder()
    ins, graph_inputs, total = [], [], 0
    n_inputs = draw(st.integers(1, 4))
    const_at = draw(st.integers(0, 3 * n_inputs))  # now and then one input is a constant
    for i in range(n_inputs):
        shape = list(base)
        shape[axis] = draw(st.integers(1, 4))
        total += shape[axis]
        if i == const_at and n_inputs > 1:
            data_i = rng.integers(-128, 128, shape).astype(np.int8)
            ins.append(b.const(f"c{i}", data_i, scale, zp))
        else:
            t = b.tensor(f"x{i}", shape, np.int8, scale, zp)
            ins.append(t)
            graph_inputs.append(t)
    out_shape = list(base)
    out_shape[axis] = total
    y = b.tensor("y", out_shape, np.int8, scale, zp)
    b.op("CONCATENATION", ins, [y], axis=axis)
    b.inputs(graph_inputs)
    b.outputs([y])
    _assert_bit_exact(b, seed)


@_examples(14)
@given(st.data())
def test_mean(data: st.DataObject) -> None:
    draw = data.draw
    shape = [draw(st.integers(1, 5)) for _ in range(draw(st.integers(1, 4)))]
    rank = len(shape)
    if rank == 4 and draw(st.booleans()):
        axes = [1, 2]  # the global average pool of a CNN head
    else:
        axes = draw(st.lists(st.integers(0, rank - 1), min_size=1, max_size=rank, unique=True))
    keep = draw(st.booleans())
    written = [a - rank if draw(st.booleans()) else a for a in axes]  # negative axes too
    s_in, z_in = _log_scale(draw, -3.0, 0.0), _zero_point(draw)
    if draw(st.booleans()):
        s_out, z_out = s_in, z_in
    else:
        s_out, z_out = _f32(s_in * _log_scale(draw, -1.0, 1.0)), _zero_point(draw)
    if keep:
        out_shape = [1 if i in axes else d for i, d in enumerate(shape)]
    else:
        out_shape = [d for i, d in enumerate(shape) if i not in axes]
    b = TFLiteBuilder()
    x = b.tensor("x", shape, np.int8, s_in, z_in)
    y = b.tensor("y", out_shape, np.int8, s_out, z_out)
    b.op("MEAN", [x], [y], axis=np.array(written, np.int32), keep_dims=keep)
    b.inputs([x])
    b.outputs([y])
    _assert_bit_exact(b, _seed(draw))


@_examples(14)
@given(st.data())
def test_strided_slice(data: st.DataObject) -> None:
    draw = data.draw
    shape = [draw(st.integers(1, 6)) for _ in range(draw(st.integers(1, 4)))]
    rank = len(shape)
    attrs: dict[str, Any] = {
        "begin": [draw(st.integers(-d - 1, d + 1)) for d in shape],
        "end": [draw(st.integers(-d - 1, d + 1)) for d in shape],
        "strides": [draw(st.sampled_from([1, 1, 2, 3, -1, -2])) for _ in shape],
        "begin_mask": draw(st.integers(0, 2**rank - 1)),
        "end_mask": draw(st.integers(0, 2**rank - 1)),
        "shrink_axis_mask": draw(st.integers(0, 2**rank - 1)) if draw(st.booleans()) else 0,
    }
    # shrunk axes take exactly the element at `begin`, which must then be in range
    for d in range(rank):
        if attrs["shrink_axis_mask"] >> d & 1:
            attrs["begin"][d] = draw(st.integers(-shape[d], shape[d] - 1))
            attrs["end"][d] = attrs["begin"][d] + 1
            attrs["strides"][d] = 1
            attrs["begin_mask"] &= ~(1 << d)
    _, out_shape = strided_slice_indices(shape, attrs)
    if 0 in out_shape:
        # an empty slice: nothing to compare, so slice everything instead
        attrs["begin_mask"] = attrs["end_mask"] = 2**rank - 1
        attrs["strides"] = [abs(s) for s in attrs["strides"]]
        _, out_shape = strided_slice_indices(shape, attrs)
    scale, zp = _log_scale(draw, -3.0, 0.0), _zero_point(draw)
    b = TFLiteBuilder()
    x = b.tensor("x", shape, np.int8, scale, zp)
    y = b.tensor("y", out_shape, np.int8, scale, zp)
    b.op(
        "STRIDED_SLICE",
        [x],
        [y],
        begin=np.array(attrs["begin"], np.int32),
        end=np.array(attrs["end"], np.int32),
        strides=np.array(attrs["strides"], np.int32),
        begin_mask=attrs["begin_mask"],
        end_mask=attrs["end_mask"],
        shrink_axis_mask=attrs["shrink_axis_mask"],
    )
    b.inputs([x])
    b.outputs([y])
    _assert_bit_exact(b, _seed(draw))


# --- unsupported operators -------------------------------------------------------------------


def test_unsupported_ops_are_all_listed() -> None:
    b = TFLiteBuilder()
    x = b.tensor("x", [1, 8], np.int8, 0.1, 0)
    h = b.tensor("h", [1, 8], np.int8, 0.1, 0)
    i = b.tensor("i", [1], np.int32)
    c = b.tensor("c", [1], np.int32)
    b.op("RELU", [x], [h])
    b.op("ARG_MAX", [h, b.const("axis", np.array([1], np.int32))], [i])
    b.op("ADD", [i, i], [c])  # stands in for the custom op below
    b.inputs([x])
    b.outputs([c])
    model = schema.ModelT.InitFromPackedBuf(bytearray(b.finish()), 0)
    custom = schema.OperatorCodeT()
    custom.builtinCode = custom.deprecatedBuiltinCode = schema.BuiltinOperator.CUSTOM
    custom.customCode = "MyPostProcess"
    custom.version = 1
    model.operatorCodes.append(custom)
    model.subgraphs[0].operators[2].opcodeIndex = len(model.operatorCodes) - 1
    model.subgraphs[0].operators[2].builtinOptionsType = schema.BuiltinOptions.NONE
    model.subgraphs[0].operators[2].builtinOptions = None
    data = pack_model(model)
    with pytest.raises(EdgekitError) as info:
        read_tflite(data, "custom.tflite")
    message = str(info.value)
    assert "2 unsupported operator(s)" in message
    assert "#1 ARG_MAX" in message
    assert "#2 CUSTOM" in message and "MyPostProcess" in message
    assert "#0" not in message  # RELU is supported
    assert message.startswith("custom.tflite: ")


def test_unsupported_type_combinations_are_all_listed() -> None:
    b = TFLiteBuilder()
    x = b.tensor("x", [1, 8], np.int8, 0.1, 0)
    s = b.tensor("s", [1, 8], np.int8, 0.05, 0)  # LOGISTIC output must be 1/256, -128
    c = b.tensor("c", [1, 16], np.int8, 0.2, 0)  # CONCATENATION would not rescale x
    b.op("LOGISTIC", [x], [s])
    b.op("CONCATENATION", [x, s], [c], axis=1)
    b.inputs([x])
    b.outputs([c])
    with pytest.raises(EdgekitError) as info:
        compile_graph(read_tflite(b.finish(), "mixed.tflite"))
    message = str(info.value)
    assert "2 operator(s) cannot be compiled" in message
    assert "#0 op0_logistic" in message and "1/256" in message
    assert "#1 op1_concat" in message and "same quantization" in message
