"""Built-in demo models, quantised the way a post-training quantiser would do it.

The weights are random but not arbitrary: every layer gets a data-dependent normalisation
(what a folded batch-norm does in a trained network), so activations keep a healthy range and
the class scores actually depend on the input. Without it the global average pool washes out
the input and the classifier answers the same class for everything.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgekit.frontends.tflite_writer import TFLiteBuilder

_CALIBRATION_SAMPLES = 64
_INPUT_LIMIT = 8.0  # feature range the int8 input covers, in float units


@dataclass
class _Layer:
    kind: str  # conv | dwconv | fc | avgpool | reshape | softmax
    weight: np.ndarray | None = None  # TFLite layout: conv OHWI, depthwise 1HWC, fc OI
    bias: np.ndarray | None = None
    stride: tuple[int, int] = (1, 1)
    padding: str = "VALID"
    relu: bool = False
    gain: float = 1.0  # std of the normalised pre-activations
    shift: np.ndarray | None = None  # mean of the normalised pre-activations, per channel


def build_dscnn_kws(seed: int = 0) -> bytes:
    """A small DS-CNN keyword spotter: int8 [1,49,10,1] features to 12 int8 class scores."""
    rng = np.random.default_rng(seed)
    channels = 32
    layers = [_Layer("conv", _he(rng, (channels, 10, 4, 1)), stride=(2, 2), padding="SAME")]
    for _ in range(2):
        layers.append(_Layer("dwconv", _he(rng, (1, 3, 3, channels), fan_in=9), padding="SAME"))
        layers.append(_Layer("conv", _he(rng, (channels, 1, 1, channels))))
    for layer in layers:
        layer.relu = True
        layer.bias = rng.normal(0.0, 0.1, channels)
        layer.shift = rng.normal(0.3, 0.3, channels)  # keeps ReLUs mostly, not all, active
    layers += [
        _Layer("avgpool"),
        _Layer("reshape"),
        _Layer("fc", _he(rng, (12, channels)), rng.normal(0.0, 0.1, 12), gain=3.0),
        _Layer("softmax"),
    ]
    return _quantise(layers, _speech_like_features(rng, _CALIBRATION_SAMPLES), "edgekit DS-CNN KWS")


def build_tiny_mlp(seed: int = 0) -> bytes:
    """FULLY_CONNECTED+RELU then FULLY_CONNECTED: int8 [1,32] to int8 [1,4]."""
    rng = np.random.default_rng(seed)
    hidden = _Layer("fc", _he(rng, (16, 32)), rng.normal(0.0, 0.1, 16), relu=True)
    hidden.shift = rng.normal(0.3, 0.3, 16)
    head = _Layer("fc", _he(rng, (4, 16)), rng.normal(0.0, 0.1, 4), gain=2.0)
    gains = rng.uniform(0.5, 2.0, (_CALIBRATION_SAMPLES, 1))
    calib = rng.normal(0.0, 1.0, (_CALIBRATION_SAMPLES, 32)) * gains
    return _quantise([hidden, head], calib, "edgekit tiny MLP")


def _he(rng: np.random.Generator, shape: tuple[int, ...], fan_in: int | None = None) -> np.ndarray:
    fan_in = fan_in or int(np.prod(shape[1:]))
    return rng.normal(0.0, np.sqrt(2.0 / fan_in), shape)


def _speech_like_features(rng: np.random.Generator, n: int) -> np.ndarray:
    """Float [n,49,10,1] calibration inputs on [-8, 8]: half noise, half smooth blobs.

    The noise half (uniform, over random sub-ranges or the whole range) is what random int8
    test vectors look like after dequantisation, so they stay inside the calibrated ranges
    instead of saturating every layer. The smooth half gives samples whose pooled features
    really differ, which is what spreads the classifier's answers over the classes.
    """
    shape = (n, 1, 1)
    full = rng.random(shape) < 0.3
    lo = np.where(full, -_INPUT_LIMIT, rng.uniform(-_INPUT_LIMIT, 0.0, shape))
    hi = np.where(full, _INPUT_LIMIT, rng.uniform(0.0, _INPUT_LIMIT, shape))
    noise = lo + (hi - lo) * rng.random((n, 49, 10))
    coarse = rng.normal(0.0, 1.0, (n, 7, 5))
    smooth = np.repeat(np.repeat(coarse, 7, axis=1), 2, axis=2)
    blobs = np.clip(
        rng.uniform(0.0, 4.0, shape) * smooth + 0.3 * noise, -_INPUT_LIMIT, _INPUT_LIMIT
    )
    return np.where(rng.random(shape) < 0.5, noise, blobs)[..., None]


# -- float reference --------------------------------------------------------------------------


def _same_pads(size: int, k: int, s: int) -> tuple[int, int]:
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    return total // 2, total - total // 2  # TFLite puts the odd pixel after, not before


def _windows(x: np.ndarray, kh: int, kw: int, stride: tuple[int, int], padding: str) -> np.ndarray:
    """[N,OH,OW,C,kh,kw] patches of an NHWC batch, as TFLite's SAME/VALID padding defines."""
    if padding == "SAME":
        ph, pw = _same_pads(x.shape[1], kh, stride[0]), _same_pads(x.shape[2], kw, stride[1])
        x = np.pad(x, ((0, 0), ph, pw, (0, 0)))
    win = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(1, 2))
    return win[:, :: stride[0], :: stride[1]]


def _pre_activation(layer: _Layer, x: np.ndarray) -> np.ndarray:
    w, b = layer.weight, layer.bias
    assert w is not None and b is not None
    if layer.kind == "conv":
        win = _windows(x, w.shape[1], w.shape[2], layer.stride, layer.padding)
        return np.einsum("nhwckl,oklc->nhwo", win, w) + b
    if layer.kind == "dwconv":
        win = _windows(x, w.shape[1], w.shape[2], layer.stride, layer.padding)
        return np.einsum("nhwckl,klc->nhwc", win, w[0]) + b
    return x @ w.T + b


def _forward(layer: _Layer, x: np.ndarray) -> np.ndarray:
    if layer.kind == "avgpool":
        return x.mean(axis=(1, 2), keepdims=True)
    if layer.kind == "reshape":
        return x.reshape(x.shape[0], -1)
    if layer.kind == "softmax":
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)
    z = _pre_activation(layer, x)
    return np.maximum(z, 0.0) if layer.relu else z


def _normalise(layer: _Layer, x: np.ndarray) -> None:
    """Rescale weights and bias so the pre-activations over `x` have the layer's gain and shift."""
    if layer.weight is None:
        return
    z = _pre_activation(layer, x)
    axes = tuple(range(z.ndim - 1))
    mean, std = z.mean(axis=axes), z.std(axis=axes) + 1e-6
    shift = layer.shift if layer.shift is not None else 0.0
    k = layer.gain / std
    out_axis = 3 if layer.kind == "dwconv" else 0
    shape = [1] * layer.weight.ndim
    shape[out_axis] = -1
    layer.weight = layer.weight * k.reshape(shape)
    layer.bias = (layer.bias - mean) * k + shift


# -- quantisation -----------------------------------------------------------------------------


def _activation_qparams(lo: float, hi: float) -> tuple[float, int]:
    """Asymmetric int8 parameters for [lo, hi], widened to hold 0 so zero padding is exact."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = float(np.float32(max(hi - lo, 1e-8) / 255.0))
    zero_point = int(np.clip(np.round(-128 - lo / scale), -128, 127))
    return scale, zero_point


def _symmetric(w: np.ndarray, axis: int | None) -> tuple[np.ndarray, np.ndarray]:
    """int8 weights in [-127, 127] with one scale per `axis` slice (or one for all)."""
    reduce = tuple(i for i in range(w.ndim) if i != axis) if axis is not None else None
    scale = (np.abs(w).max(axis=reduce) / 127.0).astype(np.float32)
    scale = np.maximum(scale, np.float32(1e-12))
    shape = [1] * w.ndim
    if axis is not None:
        shape[axis] = -1
    q = np.clip(np.round(w / scale.reshape(shape)), -127, 127).astype(np.int8)
    return q, np.atleast_1d(scale)


def _quantise(layers: list[_Layer], calib: np.ndarray, description: str) -> bytes:
    b = TFLiteBuilder(description)
    x = calib.astype(np.float64)
    scale, zp = _activation_qparams(float(x.min()), float(x.max()))
    cur = b.tensor("input", (1, *x.shape[1:]), np.int8, scale=scale, zero_point=zp)
    graph_input = cur
    for n, layer in enumerate(layers):
        _normalise(layer, x)
        x = _forward(layer, x)
        name = f"{n:02d}_{layer.kind}"
        shape = (1, *x.shape[1:])
        if layer.kind == "softmax":
            # TFLite's int8 softmax convention: [0, 1) over the whole int8 range.
            out = b.tensor(name, shape, np.int8, scale=1.0 / 256.0, zero_point=-128)
            b.op("SOFTMAX", [cur], [out], beta=1.0)
        elif layer.kind in ("avgpool", "reshape"):
            # Pooling and reshapes move values without rescaling, so they share their input's
            # quantisation; the runtime kernels assume it.
            s, z = float(b.scale(cur)[0]), int(b.zero_point(cur)[0])
            out = b.tensor(name, shape, np.int8, scale=s, zero_point=z)
            if layer.kind == "avgpool":
                h, w = b.shape(cur)[1:3]
                b.op("AVERAGE_POOL_2D", [cur], [out], filter=(h, w), stride=(1, 1))
            else:
                b.op("RESHAPE", [cur], [out], new_shape=shape)
        else:
            s, z = _activation_qparams(float(x.min()), float(x.max()))
            out = b.tensor(name, shape, np.int8, scale=s, zero_point=z)
            _emit_weighted(b, layer, name, cur, out)
        cur = out
    b.inputs([graph_input])
    b.outputs([cur])
    return b.finish()


def _emit_weighted(b: TFLiteBuilder, layer: _Layer, name: str, x: int, y: int) -> None:
    assert layer.weight is not None and layer.bias is not None
    axis = {"conv": 0, "dwconv": 3, "fc": None}[layer.kind]
    wq, w_scale = _symmetric(layer.weight, axis)
    in_scale = np.float32(b.scale(x)[0])
    bias_scale = (in_scale * w_scale).astype(np.float32)
    bq = np.round(layer.bias / bias_scale).astype(np.int32)
    w = b.const(f"{name}/weights", wq, scale=w_scale, zero_point=0, quantized_dimension=axis or 0)
    bias = b.const(f"{name}/bias", bq, scale=bias_scale, zero_point=0)
    act = "RELU" if layer.relu else "NONE"
    if layer.kind == "fc":
        b.op("FULLY_CONNECTED", [x, w, bias], [y], activation=act)
        return
    spatial = {"stride": layer.stride, "padding": layer.padding, "activation": act}
    if layer.kind == "dwconv":
        b.op("DEPTHWISE_CONV_2D", [x, w, bias], [y], depth_multiplier=1, **spatial)
    else:
        b.op("CONV_2D", [x, w, bias], [y], **spatial)
