"""ONNX float models -> float IR: every supported op, run by the float reference, equals
onnxruntime.

Models are built with onnx.helper. onnxruntime runs the ONNX file (NCHW); edgekit's float
reference runs the imported IR (NHWC), with inputs and outputs transposed by the permutations the
frontend records in graph.meta["layout"]. Tolerance: float32 results agree within
1e-5 * max(1, max|reference|) absolute plus 1e-5 relative, accumulation order being the only
difference.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from edgekit.errors import EdgekitError  # noqa: E402
from edgekit.frontends.onnx import read_onnx  # noqa: E402
from edgekit.ir.graph import Graph  # noqa: E402
from edgekit.reference.float_ref import FloatModel  # noqa: E402

X = "x"


class OnnxBuilder:
    """A tiny graph writer: constants, nodes with generated names, a model at the end."""

    def __init__(self, seed: int = 0) -> None:
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self.k = 0
        self.rng = np.random.default_rng(seed)

    def const(self, arr: Any) -> str:
        self.k += 1
        name = f"c{self.k}"
        self.inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    def w(self, *shape: int) -> str:
        fan = int(np.prod(shape[1:])) if len(shape) > 1 else 1
        return self.const((self.rng.normal(size=shape) / np.sqrt(fan)).astype(np.float32))

    def ints(self, *values: int) -> str:
        return self.const(np.array(values, dtype=np.int64))

    def f32(self, value: float) -> str:
        return self.const(np.float32(value))

    def node(self, op: str, inputs: list[str], **attrs: Any) -> str:
        self.k += 1
        out = f"v{self.k}"
        self.nodes.append(helper.make_node(op, inputs, [out], name=f"{op}_{self.k}", **attrs))
        return out

    def bn(self, x: str, c: int) -> str:
        r = self.rng
        stats = [r.uniform(0.5, 1.5, c), r.normal(0, 0.2, c), r.normal(0, 0.2, c),
                 r.uniform(0.5, 1.5, c)]
        return self.node("BatchNormalization", [x, *(self.const(s.astype(np.float32))
                                                      for s in stats)])

    def model(self, inputs: dict[str, list[Any]], outputs: list[str], opset: int = 17) -> Any:
        g = helper.make_graph(
            self.nodes, "test",
            [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs.items()],
            [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs],
            self.inits,
        )
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
        m.ir_version = 8  # what the installed onnxruntime reads
        return m


def run_both(model: Any, samples: int = 3, seed: int = 1) -> tuple[Graph, list, list]:
    """Import the model, run it in onnxruntime and in the float reference; return both."""
    data = model.SerializeToString()
    graph = read_onnx(data, "<test>", "t")
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(seed)
    feeds = {}
    for i in sess.get_inputs():
        shape = [d if isinstance(d, int) else 1 for d in i.shape]
        feeds[i.name] = rng.normal(size=(samples, *shape[1:])).astype(np.float32)
    ref = [np.concatenate(o) for o in zip(
        *[sess.run(None, {k: v[s : s + 1] for k, v in feeds.items()}) for s in range(samples)],
        strict=True)]
    layout = graph.meta["layout"]
    # each sample goes in as the IR shape (batch 1, NHWC), stacked along the executor's batch
    ins = [np.stack([feeds[n][s : s + 1].transpose(layout["inputs"][n]) for s in range(samples)])
           for n in graph.inputs]
    outs = FloatModel(graph).run(ins)
    ours = []
    for name, y in zip(graph.outputs, outs, strict=True):
        inv = np.argsort(layout["outputs"][name])
        ours.append(np.concatenate([y[s].transpose(inv) for s in range(samples)]))
    return graph, ours, ref


def assert_close(ours: list[np.ndarray], ref: list[np.ndarray]) -> None:
    assert len(ours) == len(ref)
    for a, r in zip(ours, ref, strict=True):
        assert a.shape == r.shape
        tol = 1e-5 * max(1.0, float(np.abs(r).max()))
        np.testing.assert_allclose(a, r, rtol=1e-5, atol=tol)


def kinds(graph: Graph) -> list[str]:
    return [op.kind for op in graph.ops]


# --- one model per op and configuration ---------------------------------------------------------

Case = Callable[[OnnxBuilder], tuple[dict[str, list[Any]], list[str]]]
IMG = {X: [1, 3, 12, 12]}


def conv(**attrs: Any) -> Case:
    def build(b: OnnxBuilder) -> tuple[dict, list[str]]:
        k = attrs.pop("k", 3)
        return IMG, [b.node("Conv", [X, b.w(8, 3, k, k), b.w(8)], **attrs)]

    return build


CASES: dict[str, Case] = {
    "conv_same_pads": conv(pads=[1, 1, 1, 1]),
    "conv_stride2_odd_pads": conv(strides=[2, 2], pads=[0, 1, 1, 0]),
    "conv_resnet_stem": conv(k=7, strides=[2, 2], pads=[3, 3, 3, 3]),
    "conv_auto_same_upper": conv(strides=[2, 2], auto_pad="SAME_UPPER"),
    "conv_auto_same_lower": conv(strides=[2, 2], auto_pad="SAME_LOWER"),
    "conv_valid_dilated": conv(dilations=[2, 2]),
    "conv_no_bias": lambda b: (IMG, [b.node("Conv", [X, b.w(4, 3, 1, 1)])]),
    "depthwise": lambda b: (IMG, [b.node("Conv", [X, b.w(3, 1, 3, 3), b.w(3)], group=3,
                                         pads=[1, 1, 1, 1])]),
    "depthwise_multiplier": lambda b: (IMG, [b.node("Conv", [X, b.w(6, 1, 3, 3), b.w(6)],
                                                    group=3, strides=[2, 2])]),
    "gemm_transb": lambda b: ({X: [1, 16]}, [b.node("Gemm", [X, b.w(8, 16), b.w(8)], transB=1,
                                                    alpha=0.5, beta=2.0)]),
    "gemm_c_row": lambda b: ({X: [1, 16]}, [b.node(
        "Gemm", [X, b.w(16, 8), b.const(np.ones((1, 8), np.float32))])]),
    "matmul_add": lambda b: ({X: [1, 16]}, [b.node("Add", [b.node("MatMul", [X, b.w(16, 8)]),
                                                           b.w(8)])]),
    "matmul_3d": lambda b: ({X: [1, 5, 16]}, [b.node("MatMul", [X, b.w(16, 8)])]),
    "relu_standalone": lambda b: (IMG, [b.node("Relu", [X])]),
    "relu_fused": lambda b: (IMG, [b.node("Relu", [b.node("Conv", [X, b.w(4, 3, 3, 3)])])]),
    "clip_relu6_fused": lambda b: (IMG, [b.node("Clip", [b.node("Conv", [X, b.w(4, 3, 3, 3)]),
                                                         b.f32(0), b.f32(6)])]),
    "clip_relu6_standalone": lambda b: (IMG, [b.node("Clip", [X, b.f32(0), b.f32(6)])]),
    "clip_n1_to_1_fused": lambda b: (IMG, [b.node("Clip", [b.node("Conv", [X, b.w(4, 3, 3, 3)]),
                                                           b.f32(-1), b.f32(1)])]),
    "clip_min_only": lambda b: (IMG, [b.node("Clip", [X, b.f32(0)])]),
    "add_two_branches": lambda b: (IMG, [b.node("Add", [b.node("Conv", [X, b.w(4, 3, 3, 3)]),
                                                        b.node("Conv", [X, b.w(4, 3, 3, 3)])])]),
    "add_per_channel_const": lambda b: (IMG, [b.node("Add", [X, b.const(
        np.arange(3, dtype=np.float32).reshape(3, 1, 1))])]),
    "add_bias_after_conv": lambda b: (IMG, [b.node("Add", [b.node("Conv", [X, b.w(4, 3, 1, 1)]),
                                                           b.const(np.arange(4, dtype=np.float32)
                                                                   .reshape(1, 4, 1, 1))])]),
    "sub_const_minus_x": lambda b: (IMG, [b.node("Sub", [b.f32(1.5), X])]),
    "mul_scalar": lambda b: (IMG, [b.node("Mul", [X, b.f32(0.25)])]),
    "mul_row_broadcast": lambda b: (IMG, [b.node("Mul", [X, b.const(
        np.linspace(-1, 1, 12, dtype=np.float32))])]),
    "div_const": lambda b: (IMG, [b.node("Div", [X, b.f32(4.0)])]),
    "maxpool_same": lambda b: (IMG, [b.node("MaxPool", [X], kernel_shape=[2, 2],
                                            strides=[2, 2])]),
    "maxpool_after_relu_resnet_pads": lambda b: (IMG, [b.node("MaxPool", [b.node("Relu", [X])],
                                                              kernel_shape=[3, 3], strides=[2, 2],
                                                              pads=[1, 1, 1, 1])]),
    "maxpool_ceil": lambda b: ({X: [1, 3, 11, 11]}, [b.node("MaxPool", [X], kernel_shape=[2, 2],
                                                           strides=[2, 2], ceil_mode=1)]),
    "avgpool_exclude_pad": lambda b: (IMG, [b.node("AveragePool", [X], kernel_shape=[3, 3],
                                                   pads=[1, 1, 1, 1])]),
    "avgpool_include_pad": lambda b: (IMG, [b.node("AveragePool", [X], kernel_shape=[3, 3],
                                                   strides=[2, 2], pads=[1, 1, 1, 1],
                                                   count_include_pad=1)]),
    "global_avg": lambda b: (IMG, [b.node("GlobalAveragePool", [X])]),
    "global_max": lambda b: (IMG, [b.node("GlobalMaxPool", [X])]),
    "batchnorm_folded": lambda b: (IMG, [b.node("Relu", [b.bn(b.node("Conv", [X, b.w(4, 3, 3, 3),
                                                                             b.w(4)]), 4)])]),
    "batchnorm_standalone": lambda b: (IMG, [b.bn(X, 3)]),
    "gap_flatten_gemm": lambda b: (IMG, [b.node("Gemm", [b.node("Flatten", [b.node(
        "GlobalAveragePool", [X])]), b.w(5, 3), b.w(5)], transB=1)]),
    "flatten_conv_map_gemm": lambda b: (IMG, [b.node("Gemm", [b.node("Flatten", [b.node(
        "Conv", [X, b.w(4, 3, 3, 3)], strides=[2, 2])]), b.w(100, 7)])]),
    "reshape_conv_map_matmul": lambda b: (IMG, [b.node("MatMul", [b.node("Reshape", [b.node(
        "Conv", [X, b.w(4, 3, 3, 3)], strides=[2, 2]), b.ints(1, -1)]), b.w(100, 7)])]),
    "reshape_shape_chain": lambda b: (IMG, [b.node("Reshape", [X, b.node("Concat", [b.node(
        "Unsqueeze", [b.node("Gather", [b.node("Shape", [X]), b.const(np.int64(0))]),
                      b.ints(0)]), b.ints(-1)], axis=0)])]),
    "transpose_nhwc_boundary": lambda b: ({X: [1, 12, 12, 3]}, [b.node("Transpose", [b.node(
        "Conv", [b.node("Transpose", [X], perm=[0, 3, 1, 2]), b.w(4, 3, 3, 3)]
    )], perm=[0, 2, 3, 1])]),
    "conv_transpose_bias_add": lambda b: (IMG, [b.node("Add", [b.node("Transpose", [b.node(
        "Conv", [X, b.w(4, 3, 3, 3)])], perm=[0, 2, 3, 1]), b.const(
        np.arange(4, dtype=np.float32))])]),
    "transpose_then_flatten": lambda b: (IMG, [b.node("Flatten", [b.node(
        "Transpose", [X], perm=[0, 2, 3, 1])])]),
    "concat_channels": lambda b: (IMG, [b.node("Concat", [b.node("Conv", [X, b.w(4, 3, 1, 1)]),
                                                          X], axis=1)]),
    "concat_const_block": lambda b: ({X: [1, 6]}, [b.node("Concat", [X, b.const(
        np.ones((1, 2), np.float32))], axis=1)]),
    "pad_then_conv": lambda b: (IMG, [b.node("Conv", [b.node("Pad", [X, b.ints(
        0, 0, 1, 2, 0, 0, 1, 0)]), b.w(4, 3, 3, 3)])]),
    "pad_standalone": lambda b: (IMG, [b.node("Pad", [X, b.ints(0, 1, 2, 0, 0, 0, 1, 3)])]),
    "pad_axes_opset18": lambda b: (IMG, [b.node("Pad", [X, b.ints(1, 2, 0, 1), "",
                                                        b.ints(2, 3)])]),
    "softmax_2d": lambda b: ({X: [1, 10]}, [b.node("Softmax", [X])]),
    "softmax_channels": lambda b: (IMG, [b.node("Softmax", [b.node("Conv", [X, b.w(4, 3, 1, 1)])],
                                                axis=1)]),
    "sigmoid": lambda b: (IMG, [b.node("Sigmoid", [X])]),
    "tanh": lambda b: (IMG, [b.node("Tanh", [X])]),
    "squeeze_gemm": lambda b: (IMG, [b.node("Gemm", [b.node("Squeeze", [b.node(
        "GlobalAveragePool", [X]), b.ints(2, 3)]), b.w(3, 4)])]),
    "unsqueeze_conv": lambda b: ({X: [1, 6]}, [b.node("Conv", [b.node("Unsqueeze", [
        X, b.ints(2, 3)]), b.w(4, 6, 1, 1)])]),
    "slice_channels": lambda b: (IMG, [b.node("Slice", [X, b.ints(1), b.ints(3), b.ints(1)])]),
    "slice_spatial_steps": lambda b: (IMG, [b.node("Slice", [X, b.ints(1, 0), b.ints(100, 9),
                                                             b.ints(2, 3), b.ints(2, 3)])]),
    "slice_negative_step": lambda b: (IMG, [b.node("Slice", [X, b.ints(-1), b.ints(-100),
                                                             b.ints(3), b.ints(-2)])]),
    "reduce_mean_keepdims": lambda b: (IMG, [b.node("ReduceMean", [X], axes=[2, 3])]),
    "reduce_mean_drop": lambda b: (IMG, [b.node("ReduceMean", [X], axes=[2, 3], keepdims=0)]),
    "identity_dropout": lambda b: (IMG, [b.node("Dropout", [b.node("Identity", [X])])]),
    "leaky_relu": lambda b: (IMG, [b.node("LeakyRelu", [X], alpha=0.2)]),
    "leaky_relu_default_alpha": lambda b: (IMG, [b.node("LeakyRelu", [b.node("Mul", [
        X, b.f32(30.0)])])]),
    "hard_swish": lambda b: (IMG, [b.node("HardSwish", [b.node("Mul", [X, b.f32(4.0)])])]),
    "conv_transpose_stride2": lambda b: (IMG, [b.node("ConvTranspose", [X, b.w(3, 5, 3, 3),
                                                                        b.w(5)], strides=[2, 2])]),
    "conv_transpose_pads_output_padding": lambda b: (IMG, [b.node(
        "ConvTranspose", [X, b.w(3, 4, 4, 4)], strides=[2, 2], pads=[1, 2, 1, 0],
        output_padding=[1, 0])]),
    "conv_transpose_auto_same_upper": lambda b: (IMG, [b.node(
        "ConvTranspose", [X, b.w(3, 6, 3, 2), b.w(6)], strides=[2, 3], auto_pad="SAME_UPPER")]),
    "conv_transpose_then_relu": lambda b: (IMG, [b.node("Relu", [b.node(
        "ConvTranspose", [X, b.w(3, 4, 2, 2), b.w(4)], strides=[2, 2])])]),
}

OPSET = {"pad_axes_opset18": 18, "reduce_mean_keepdims": 17, "reduce_mean_drop": 17}


@pytest.mark.parametrize("case", sorted(CASES))
def test_op_matches_onnxruntime(case: str) -> None:
    b = OnnxBuilder(seed=len(case))
    inputs, outputs = CASES[case](b)
    graph, ours, ref = run_both(b.model(inputs, outputs, OPSET.get(case, 17)))
    assert graph.meta["source_format"] == "onnx"
    assert all(t.dtype == "float32" for t in graph.activations())
    assert_close(ours, ref)


def test_every_output_differs_from_the_input() -> None:
    """The comparison is not vacuous: the models above change their input."""
    b = OnnxBuilder()
    _, outs = CASES["conv_same_pads"](b)
    _, ours, ref = run_both(b.model(IMG, outs))
    assert np.abs(ref[0]).max() > 0.1 and ours[0].shape == (3, 8, 12, 12)


# --- how ops map to the IR --------------------------------------------------------------------


def _graph(case: str) -> Graph:
    b = OnnxBuilder()
    inputs, outputs = CASES[case](b)
    return read_onnx(b.model(inputs, outputs, OPSET.get(case, 17)).SerializeToString())


def test_layout_is_changed_once_at_the_boundary() -> None:
    g = _graph("conv_same_pads")
    assert g.meta["layout"]["inputs"] == {X: [0, 2, 3, 1]}
    assert g.tensor(X).shape == (1, 12, 12, 3)
    op = g.ops[0]
    assert op.kind == "conv2d" and g.tensor(op.inputs[1]).shape == (8, 3, 3, 3)  # OHWI
    assert op.attrs == {"stride": [1, 1], "dilation": [1, 1], "pad": [1, 1],
                        "activation": "none"}
    # an NHWC model that transposes to NCHW itself needs no boundary transpose
    t = _graph("transpose_nhwc_boundary")
    assert t.meta["layout"]["inputs"] == {X: [0, 1, 2, 3]}
    assert kinds(t) == ["conv2d"]
    assert list(t.meta["layout"]["outputs"].values()) == [[0, 1, 2, 3]]


def test_depthwise_filter_layout() -> None:
    g = _graph("depthwise_multiplier")
    op = g.ops[0]
    assert op.kind == "depthwise_conv2d" and op.attrs["depth_multiplier"] == 2
    assert g.tensor(op.inputs[1]).shape == (1, 3, 3, 6)


def test_batchnorm_and_relu_fold_into_the_convolution() -> None:
    g = _graph("batchnorm_folded")
    assert kinds(g) == ["conv2d"]
    assert g.ops[0].attrs["activation"] == "relu"
    stats = g.meta["bn_stats"][g.ops[0].name]
    assert len(stats["mean"]) == len(stats["std"]) == 4
    assert kinds(_graph("batchnorm_standalone")) == ["mul", "add"]


def test_activations_fuse_like_tflite() -> None:
    assert [op.attrs["activation"] for op in _graph("clip_relu6_fused").ops] == ["relu6"]
    assert [op.attrs["activation"] for op in _graph("clip_n1_to_1_fused").ops] == ["relu_n1_to_1"]
    assert kinds(_graph("clip_relu6_standalone")) == ["relu6"]
    assert kinds(_graph("relu_standalone")) == ["relu"]


def test_bias_adds_fold_into_dense_and_conv_layers() -> None:
    assert kinds(_graph("matmul_add")) == ["fully_connected"]
    assert kinds(_graph("add_bias_after_conv")) == ["conv2d"]
    assert kinds(_graph("conv_transpose_bias_add")) == ["conv2d"]  # channel axis via the layout
    fc = _graph("matmul_3d").ops[0]
    assert fc.attrs["keep_num_dims"] is True


def test_flatten_of_a_feature_map_permutes_dense_weights_not_data() -> None:
    g = _graph("flatten_conv_map_gemm")
    assert kinds(g) == ["conv2d", "reshape", "fully_connected"]


def test_non_tflite_padding_becomes_an_explicit_pad() -> None:
    g = _graph("conv_resnet_stem")
    assert kinds(g) == ["pad", "conv2d"]
    assert g.ops[1].attrs["pad"] == [0, 0]
    # a zero Pad in front of a convolution is folded when SAME can express the sum
    same = _graph("pad_then_conv")
    assert kinds(same) in (["conv2d"], ["pad", "conv2d"])
    assert kinds(_graph("avgpool_include_pad")) == ["pad", "avg_pool2d"]
    assert kinds(_graph("maxpool_after_relu_resnet_pads")) == ["relu", "pad", "max_pool2d"]


def test_constant_subgraphs_are_folded() -> None:
    g = _graph("reshape_shape_chain")
    assert kinds(g) == ["reshape"]
    assert g.ops[0].attrs["shape"] == [1, 432]


def test_symbolic_batch_dimension_is_fixed_to_one() -> None:
    b = OnnxBuilder()
    out = b.node("Conv", [X, b.w(2, 3, 1, 1)])
    g = read_onnx(b.model({X: ["batch", 3, 4, 4]}, [out]).SerializeToString())
    assert g.tensor(X).shape == (1, 4, 4, 3)


def test_older_opsets_are_converted() -> None:
    b = OnnxBuilder()
    out = b.node("Relu", [b.node("Conv", [X, b.w(4, 3, 3, 3)])])
    g = read_onnx(b.model(IMG, [out], opset=11).SerializeToString())
    assert kinds(g) == ["conv2d"]


# --- errors -----------------------------------------------------------------------------------


def test_every_unsupported_op_is_listed_in_one_error() -> None:
    b = OnnxBuilder()
    y = b.node("Relu", [b.node("Floor", [b.node("Erf", [X])])])
    with pytest.raises(EdgekitError) as exc:
        read_onnx(b.model(IMG, [y]).SerializeToString(), "m.onnx")
    msg = str(exc.value)
    assert "2 unsupported operator(s)" in msg
    assert "#0 Erf 'Erf_1'" in msg and "#1 Floor 'Floor_2'" in msg
    assert "Relu" not in msg.split("hint")[0]
    assert msg.startswith("m.onnx: ")


@pytest.mark.parametrize(
    ("shape", "build", "text"),
    [
        ([1, 6, 8, 8], lambda b: [b.node("Conv", [X, b.w(6, 2, 3, 3)], group=3)], "group=3"),
        ([1, 3, 8, 8], lambda b: [b.node("Clip", [X, b.f32(-2), b.f32(2)])], "Clip(-2.0, 2.0)"),
        ([1, 4, 4], lambda b: [b.node("MatMul", [X, X])], "constant"),
        ([1, 3, 8, 8], lambda b: [b.node("MaxPool", [X], kernel_shape=[3, 3], strides=[2, 2],
                                         pads=[1, 1, 1, 1])], "zero padding would change"),
        ([1, 3, 8, 8], lambda b: [b.node("Pad", [X, b.ints(0, 0, 1, 1, 0, 0, 1, 1)],
                                         mode="reflect")], "reflect"),
    ],
)
def test_unsupported_uses_name_the_node(shape: list[int],
                                        build: Callable[[OnnxBuilder], list[str]],
                                        text: str) -> None:
    b = OnnxBuilder()
    outs = build(b)
    with pytest.raises(EdgekitError) as exc:
        read_onnx(b.model({X: shape}, outs).SerializeToString(), "m.onnx")
    assert text in str(exc.value)
    assert f"node #0 {b.nodes[0].op_type}" in str(exc.value)


def test_garbage_is_a_clean_error() -> None:
    with pytest.raises(EdgekitError, match="not a readable ONNX model"):
        read_onnx(b"\x08\x07garbage-not-protobuf" * 3, "bad.onnx")


def test_load_model_reads_onnx_files(tmp_path: Path) -> None:
    from edgekit.pipeline import load_model

    b = OnnxBuilder()
    inputs, outs = CASES["gap_flatten_gemm"](b)
    path = tmp_path / "tiny-net.onnx"
    onnx.save(b.model(inputs, outs), str(path))
    graph, digest = load_model(path)
    assert graph.name == "tiny_net" and graph.meta["source_format"] == "onnx"
    assert len(digest) == 64


def test_external_weight_data_is_read_from_the_model_folder(tmp_path: Path) -> None:
    from edgekit.pipeline import load_model

    b = OnnxBuilder()
    inputs, outs = CASES["conv_same_pads"](b)
    model = b.model(inputs, outs)
    expect = read_onnx(model.SerializeToString())  # before saving rewrites model's initializers
    path = tmp_path / "ext.onnx"
    onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="ext.bin", size_threshold=0)
    assert (tmp_path / "ext.bin").is_file()
    graph, _ = load_model(path)
    w = graph.ops[0].inputs[1]
    np.testing.assert_array_equal(graph.tensor(w).data, expect.tensor(w).data)
