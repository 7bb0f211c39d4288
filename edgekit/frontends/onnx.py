"""ONNX (opset 13+) float model -> float32 IR graph, NHWC like the TFLite frontend produces.

ONNX images are NCHW; the IR's are NHWC with OHWI filters. Instead of a transpose per op, every
ONNX value is tracked with a permutation `perm` (IR array = ONNX array transposed by `perm`), so
layouts change only at the graph boundary (recorded in `graph.meta["layout"]`). ONNX Transpose
nodes just change a value's `perm`; a reshape whose input is not in ONNX order is either free
(only size-1 axes move), or a flatten into a dense layer, whose weight columns are permuted
instead, or an error.

Before conversion, constant subgraphs (Shape -> Gather -> Concat -> Reshape chains and the like)
are folded with onnx's reference evaluator and shapes are inferred with onnx's shape inference,
so every value has a static shape. Symbolic input dimensions are fixed to 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.frontends.onnx_check import (
    MAX_FOLD_ELEMENTS,
    check_external_locations,
    check_model,
    check_shape,
    fold_problem,
    fold_size,
)
from edgekit.ir.graph import Graph, Op, Tensor

MIN_OPSET = 13
NHWC = (0, 2, 3, 1)

# IR kinds that take a fused activation, as the TFLite converter fuses them.
_FUSABLE = {"conv2d", "depthwise_conv2d", "fully_connected", "add", "sub", "mul"}
# Folding these would change results from run to run.
_NONDETERMINISTIC = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike",
                     "Multinomial", "Bernoulli"}


class _Unsupported(ValueError):
    """A supported op type used in a way the IR cannot express (raised with the node named)."""


@dataclass
class _Val:
    """Where an ONNX value lives in the IR, and in which axis order."""

    ir: str
    perm: tuple[int, ...]
    # For a flattened NCHW map: IR column j holds ONNX column cols[j].
    cols: np.ndarray | None = None


def _inverse(perm: tuple[int, ...]) -> tuple[int, ...]:
    inv = [0] * len(perm)
    for i, p in enumerate(perm):
        inv[p] = i
    return tuple(inv)


def _order(shape: tuple[int, ...], perm: tuple[int, ...]) -> list[int]:
    """The ONNX axes of size > 1, in the order the IR stores them."""
    return [p for p in perm if shape[p] != 1]


def _identity(rank: int) -> tuple[int, ...]:
    return tuple(range(rank))


def _attrs(node: Any) -> dict[str, Any]:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _spatial_pads(
    auto_pad: str, pads: list[int] | None, in_hw: tuple[int, int], kernel: list[int],
    strides: list[int], dilations: list[int], out_hw: tuple[int, int],
) -> list[int]:
    """[top, left] padding before the image, resolved the way onnxruntime does."""
    if isinstance(auto_pad, bytes):
        auto_pad = auto_pad.decode()
    if auto_pad in ("", "NOTSET"):
        p = list(pads or [0, 0, 0, 0])
        return [int(p[0]), int(p[1])]
    if auto_pad == "VALID":
        return [0, 0]
    before = []
    for i in range(2):
        eff = (kernel[i] - 1) * dilations[i] + 1
        total = max(0, (out_hw[i] - 1) * strides[i] + eff - in_hw[i])
        before.append(total // 2 if auto_pad == "SAME_UPPER" else total - total // 2)
    return before


class _Converter:
    def __init__(self, model: Any, where: str, name: str) -> None:
        self.where = where
        self.name = name
        self.model = model
        self.opset = _default_opset(model)
        self.consts: dict[str, np.ndarray] = {}
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.nodes: list[tuple[int, Any]] = []
        self.vals: dict[str, _Val] = {}
        self.tensors: dict[str, Tensor] = {}
        self.ops: list[Op] = []
        self.producer: dict[str, Op] = {}
        self.uses: dict[str, int] = {}
        self.bn_stats: dict[str, dict[str, list[float]]] = {}
        self.graph_outputs: list[str] = []
        self._names: set[str] = set()
        self._op_names: set[str] = set()
        self._node: tuple[int, Any] | None = None

    def error(self, what: str, hint: str | None = None) -> EdgekitError:
        return EdgekitError(what, self.where, hint)

    # --- preparation: constants, folding, shapes -------------------------------------------------

    def prepare(self) -> None:
        from onnx import numpy_helper

        g = self.model.graph
        for init in g.initializer:
            self.consts[init.name] = numpy_helper.to_array(init)
        self.inputs = [i for i in g.input if i.name not in self.consts]
        self.graph_outputs = [o.name for o in g.output]
        for inp in self.inputs:
            for d in inp.type.tensor_type.shape.dim:
                # a symbolic or unknown dimension (usually the batch) is fixed to 1
                if not d.HasField("dim_value") or d.dim_value <= 0:
                    d.Clear()
                    d.dim_value = 1
        self.nodes = list(enumerate(g.node))
        # before shape inference: its data propagation evaluates some constant ops in C++,
        # where no timer can stop it (a fuzzed Range of 10^8 values ran for minutes)
        self._refuse_large_folds()
        for _ in range(8):
            self._infer_shapes()
            if not self._fold():
                break
        self._infer_shapes()

    def _refuse_large_folds(self) -> None:
        for idx, node in self.nodes:
            ins = [i for i in node.input if i]
            if node.domain not in ("", "ai.onnx") or not all(i in self.consts for i in ins):
                continue
            self._check_foldable(idx, node)
            size = fold_size(node, {i: self.consts[i] for i in ins}, _attrs(node))
            if size is not None and size > MAX_FOLD_ELEMENTS:
                raise self.error(
                    f"node #{idx} {node.op_type} '{node.name}': folding it would make "
                    f"{size:,} elements (limit {MAX_FOLD_ELEMENTS:,})"
                )

    def _check_foldable(self, idx: int, node: Any) -> None:
        problem = fold_problem(node, _attrs(node))
        if problem is not None:
            raise self.error(f"node #{idx} {node.op_type} '{node.name}': {problem}")

    def _infer_shapes(self) -> None:
        import onnx
        from onnx import helper, numpy_helper

        used = {i for _, n in self.nodes for i in n.input} | set(self.graph_outputs)
        inits, typed = [], []
        for k, v in self.consts.items():
            if k not in used:
                continue
            if v.size > 4096 and v.dtype.kind == "f":
                # weights: inference needs only their shape, not a copy of their values
                elem = helper.np_dtype_to_tensor_dtype(v.dtype)
                typed.append(helper.make_tensor_value_info(k, elem, list(v.shape)))
            else:
                inits.append(numpy_helper.from_array(v, k))
        g = helper.make_graph(
            [n for _, n in self.nodes],
            self.model.graph.name or "g",
            list(self.inputs) + typed,
            list(self.model.graph.output),
            inits,
        )
        m = helper.make_model(g, opset_imports=list(self.model.opset_import))
        m.ir_version = self.model.ir_version
        try:
            inferred = onnx.shape_inference.infer_shapes(m, data_prop=True)
        except Exception as exc:  # inference raises several onnx-internal types
            raise self.error(f"ONNX shape inference failed: {exc}") from None
        gi = inferred.graph
        for vi in list(gi.input) + list(gi.value_info) + list(gi.output):
            tt = vi.type.tensor_type
            if not tt.HasField("shape"):
                continue
            dims = tt.shape.dim
            if all(d.HasField("dim_value") for d in dims):
                self.shapes[vi.name] = tuple(int(d.dim_value) for d in dims)
        for k, v in self.consts.items():
            self.shapes[k] = tuple(v.shape)
        for k, shape in self.shapes.items():
            # inferred from the graph inputs' declared dims: checked before any handler
            # allocates by them
            check_shape(shape, self.where, f"value '{k}'")

    def _fold(self) -> bool:
        """Evaluate every node whose inputs are all known; True if anything was folded."""
        from onnx import numpy_helper
        from onnx.reference import ReferenceEvaluator

        kept: list[tuple[int, Any]] = []
        folded = False
        for idx, node in self.nodes:
            ins = [i for i in node.input if i]
            value: list[np.ndarray] | None = None
            if node.op_type == "Constant":
                a = _attrs(node)
                if "value" in a:
                    value = [numpy_helper.to_array(a["value"])]
                else:
                    value = ReferenceEvaluator(node, opsets={"": self.opset}).run(None, {})
            elif node.op_type in ("Shape", "Size") and ins[0] in self.shapes:
                shape = np.array(self.shapes[ins[0]], dtype=np.int64)
                if node.op_type == "Size":
                    value = [np.array(int(np.prod(shape)), dtype=np.int64)]
                else:
                    a = _attrs(node)
                    value = [shape[a.get("start", 0) : a.get("end", len(shape))]]
            elif (
                node.domain in ("", "ai.onnx")
                and node.op_type not in _NONDETERMINISTIC
                and all(i in self.consts for i in ins)
            ):
                feeds = {i: self.consts[i] for i in ins}
                self._check_foldable(idx, node)
                size = fold_size(node, feeds, _attrs(node))
                if size is not None and size > MAX_FOLD_ELEMENTS:
                    # the reference evaluator would allocate it before anything could refuse
                    raise self.error(
                        f"node #{idx} {node.op_type} '{node.name}': folding it would make "
                        f"{size:,} elements (limit {MAX_FOLD_ELEMENTS:,})"
                    )
                try:
                    value = ReferenceEvaluator(node, opsets={"": self.opset}).run(None, feeds)
                except Exception as exc:
                    raise self.error(
                        f"node #{idx} {node.op_type} '{node.name}': constant folding failed: {exc}"
                    ) from None
            if value is None:
                kept.append((idx, node))
                continue
            for out, v in zip(node.output, value, strict=False):
                if out:
                    arr = np.asarray(v)
                    if arr.dtype.kind not in "biuf":
                        raise self.error(
                            f"node #{idx} {node.op_type} '{node.name}': folding it gives "
                            f"{arr.dtype} values, not numbers"
                        )
                    self.consts[out] = arr
            folded = True
        self.nodes = kept
        return folded

    # --- IR construction helpers -----------------------------------------------------------------

    def unique(self, base: str) -> str:
        name, k = base, 1
        while name in self._names or name in self.tensors:
            k += 1
            name = f"{base}_{k}"
        self._names.add(name)
        return name

    def const(self, base: str, data: np.ndarray) -> str:
        name = self.unique(base)
        arr = np.ascontiguousarray(data, dtype=np.float32)
        self.tensors[name] = Tensor(name, tuple(arr.shape), "float32", None, arr)
        return name

    def activation(self, base: str, shape: tuple[int, ...]) -> str:
        name = base if base not in self.tensors else self.unique(base)
        self._names.add(name)
        self.tensors[name] = Tensor(name, tuple(int(d) for d in shape), "float32")
        return name

    def add_op(self, kind: str, inputs: list[str], outputs: list[str], attrs: dict) -> Op:
        assert self._node is not None
        idx = self._node[0]
        base = f"op{idx}_{kind}"
        name, k = base, 1
        while name in self._op_names:
            k += 1
            name = f"{base}_{k}"
        self._op_names.add(name)
        op = Op(kind, name, inputs, outputs, attrs)
        self.ops.append(op)
        for t in outputs:
            self.producer[t] = op
        return op

    def shape(self, name: str) -> tuple[int, ...]:
        if name not in self.shapes:
            raise _Unsupported(
                f"the shape of '{name}' could not be inferred; give the model static input shapes"
            )
        return self.shapes[name]

    def ir_shape(self, onnx_name: str, perm: tuple[int, ...]) -> tuple[int, ...]:
        s = self.shape(onnx_name)
        return tuple(s[p] for p in perm)

    def val(self, name: str) -> _Val:
        if name in self.consts:
            raise _Unsupported(f"'{name}' is a constant where an activation is expected")
        if name not in self.vals:
            raise _Unsupported(f"input '{name}' is not produced by any supported node")
        return self.vals[name]

    def const_in(self, node: Any, i: int, what: str) -> np.ndarray | None:
        if len(node.input) <= i or not node.input[i]:
            return None
        name = node.input[i]
        if name not in self.consts:
            raise _Unsupported(f"{what} ('{name}') must be a constant")
        return self.consts[name]

    def reshape_to(self, v: _Val, onnx_shape: tuple[int, ...], perm: tuple[int, ...],
                   base: str) -> _Val:
        """A free IR reshape giving `v`'s data a new IR shape (the stored order is unchanged)."""
        shape = tuple(onnx_shape[p] for p in perm)
        if self.tensors[v.ir].shape == shape:
            return _Val(v.ir, perm, v.cols)
        out = self.activation(self.unique(f"{base}/reshape"), shape)
        self.add_op("reshape", [v.ir], [out], {"shape": list(shape)})
        return _Val(out, perm, v.cols)

    def relayout(self, name: str, perm: tuple[int, ...]) -> _Val:
        """`name` in IR order `perm`, when that needs no data movement; otherwise an error."""
        v = self.val(name)
        if v.perm == perm and v.cols is None:
            return v
        shape = self.shape(name)
        if v.cols is None and _order(shape, v.perm) == _order(shape, perm):
            return self.reshape_to(v, shape, perm, name)
        raise _Unsupported(
            f"'{name}' would need a data transpose (it is stored in axis order {list(v.perm)} "
            f"of ONNX shape {list(shape)}, the op needs {list(perm)})"
        )

    def single_use(self, ir_name: str, onnx_name: str) -> Op | None:
        """The producer of an IR tensor that only this node reads, so it may be rewritten."""
        op = self.producer.get(ir_name)
        if op is None or self.uses.get(onnx_name, 0) != 1 or onnx_name in self.graph_outputs:
            return None
        return op

    def rename_output(self, op: Op, new: str) -> str:
        """Give `op`'s output tensor the name of the ONNX value it now produces."""
        old = op.outputs[0]
        t = self.tensors.pop(old)
        new_name = new if new not in self.tensors else self.unique(new)
        t.name = new_name
        self.tensors[new_name] = t
        self._names.add(new_name)
        op.outputs[0] = new_name
        del self.producer[old]
        self.producer[new_name] = op
        return new_name

    def bind(self, onnx_name: str, ir: str, perm: tuple[int, ...],
             cols: np.ndarray | None = None) -> None:
        self.vals[onnx_name] = _Val(ir, perm, cols)

    # --- conversion ------------------------------------------------------------------------------

    def convert(self) -> Graph:
        unsupported = [
            f"  #{idx} {n.op_type}" + (f" '{n.name}'" if n.name else "")
            for idx, n in self.nodes
            if n.op_type not in _HANDLERS or n.domain not in ("", "ai.onnx")
        ]
        if unsupported:
            raise self.error(
                f"{len(unsupported)} unsupported operator(s):\n" + "\n".join(unsupported),
                "supported: " + ", ".join(sorted(_HANDLERS)),
            )
        for _, n in self.nodes:
            for i in n.input:
                if i:
                    self.uses[i] = self.uses.get(i, 0) + 1
        in_layout: dict[str, list[int]] = {}
        for inp in self.inputs:
            elem = inp.type.tensor_type.elem_type
            if elem != 1:  # TensorProto.FLOAT
                raise self.error(f"input '{inp.name}' is not float32; only float models are read")
            shape = self.shape(inp.name)
            perm = self._input_perm(inp.name, len(shape))
            name = self.activation(inp.name, tuple(shape[p] for p in perm))
            self.bind(inp.name, name, perm)
            in_layout[name] = list(perm)
        for idx, node in self.nodes:
            self._node = (idx, node)
            try:
                _HANDLERS[node.op_type](self, node)
            except _Unsupported as exc:
                label = f"node #{idx} {node.op_type}" + (f" '{node.name}'" if node.name else "")
                raise self.error(f"{label}: {exc}") from None
        return self._finish(in_layout)

    def _finish(self, in_layout: dict[str, list[int]]) -> Graph:
        outputs: list[str] = []
        out_layout: dict[str, list[int]] = {}
        self._node = (len(self.model.graph.node), None)
        for name in self.graph_outputs:
            if name in self.consts or name not in self.vals:
                raise self.error(f"graph output '{name}' is a constant or is never computed")
            v = self.vals[name]
            if v.cols is not None:
                v = self.relayout(name, _identity(len(self.shape(name))))
            ir = v.ir
            if ir in self.tensors and (ir in in_layout or ir in outputs):
                # an output that is an input or another output needs its own buffer
                copy = self.activation(self.unique(f"{name}/copy"), self.tensors[ir].shape)
                self.add_op("reshape", [ir], [copy], {"shape": list(self.tensors[ir].shape)})
                ir = copy
            outputs.append(ir)
            out_layout[ir] = list(v.perm)
        inputs = list(in_layout)
        used = {t for op in self.ops for t in op.inputs} | set(outputs) | set(inputs)
        produced = {t for op in self.ops for t in op.outputs}
        tensors = {k: t for k, t in self.tensors.items() if k in used or k in produced}
        meta: dict[str, Any] = {
            "source_format": "onnx",
            "onnx_opset": self.opset,
            # IR array = ONNX array transposed by this permutation (numpy.transpose order)
            "layout": {"inputs": in_layout, "outputs": out_layout},
        }
        if self.bn_stats:
            meta["bn_stats"] = self.bn_stats
        graph = Graph(self.name, tensors, self.ops, inputs, outputs, meta)
        try:
            graph.validate()
        except ValueError as exc:
            raise self.error(f"the converted graph is invalid: {exc}") from None
        return graph

    def _input_perm(self, name: str, rank: int) -> tuple[int, ...]:
        """NHWC for a 4-D input that reaches a spatial op (through transposes and elementwise
        ops), so the spatial op needs no relayout; ONNX order otherwise."""
        if rank != 4:
            return _identity(rank)
        consumers: dict[str, list[Any]] = {}
        for _, n in self.nodes:
            for i in n.input:
                consumers.setdefault(i, []).append(n)
        cur, composed = name, _identity(4)
        for _ in range(16):
            nxt = consumers.get(cur, [])
            if not nxt:
                break
            n = nxt[0]
            if n.op_type in _SPATIAL:
                # the spatial op sees ONNX value = input.transpose(composed) and wants NHWC
                return tuple(composed[j] for j in NHWC)
            if n.op_type == "Transpose":
                p = _attrs(n).get("perm", list(reversed(range(4))))
                composed = tuple(composed[j] for j in p)
            elif n.op_type not in _ELEMENTWISE:
                # a layout-sensitive op (reshape, dense...): arrive in ONNX order
                return composed
            cur = n.output[0]
        return composed


def _default_opset(model: Any) -> int:
    for o in model.opset_import:
        if o.domain in ("", "ai.onnx"):
            return int(o.version)
    return 0


# --- handlers ------------------------------------------------------------------------------------


def _out(c: _Converter, node: Any, ir_in_shape_perm: tuple[int, ...], kind: str, ins: list[str],
         attrs: dict[str, Any]) -> Op:
    """Create the activation for node.output[0] in layout `perm`, one IR op, and bind it."""
    out = node.output[0]
    shape = c.ir_shape(out, ir_in_shape_perm)
    name = c.activation(out, shape)
    op = c.add_op(kind, ins, [name], attrs)
    c.bind(out, name, ir_in_shape_perm)
    return op


def _tflite_window(size: int, out: int, k: int, stride: int, dil: int, pad: int) -> bool:
    """True when TFLite's SAME or VALID padding gives this output size and leading pad (the only
    window geometries the int8 kernels and TFLM accept)."""
    eff = (k - 1) * dil + 1
    same = (size + stride - 1) // stride
    same_pad = max(0, (same - 1) * stride + eff - size) // 2
    valid = (size - eff + stride) // stride
    return (out, pad) in ((same, same_pad), (valid, 0))


def _window_input(c: _Converter, node: Any, x: _Val, out_hw: tuple[int, int], kernel: list[int],
                  strides: list[int], dil: list[int], before: list[int], zero_fill: bool,
                  force: bool = False) -> tuple[_Val, list[int]]:
    """The input and [top, left] pad of a window op. ONNX pads that SAME/VALID cannot express
    become an explicit zero PAD and a VALID window, when zeros are a correct fill."""
    shape = c.tensors[x.ir].shape
    dims = range(2)
    after = [(out_hw[i] - 1) * strides[i] + (kernel[i] - 1) * dil[i] + 1 - shape[1 + i]
             - before[i] for i in dims]
    if not any(before) and all(a <= 0 for a in after):
        force = False  # no padding is involved at all
    if not force and all(_tflite_window(shape[1 + i], out_hw[i], kernel[i], strides[i], dil[i],
                                        before[i]) for i in dims):
        return x, before
    if not zero_fill:
        raise _Unsupported(
            f"padding {before} (top, left) for output {list(out_hw)} is neither TFLite SAME nor "
            "VALID, and zero padding would change the result here"
        )
    if any(a < 0 for a in after):
        raise _Unsupported("the output has fewer windows than the padded input holds")
    if not any(before) and not any(after):
        return x, [0, 0]
    padded_shape = (shape[0], shape[1] + before[0] + after[0], shape[2] + before[1] + after[1],
                    shape[3])
    padded = c.activation(c.unique(f"{node.output[0]}/padded"), padded_shape)
    c.add_op("pad", [x.ir], [padded],
             {"paddings": [[0, 0], [before[0], after[0]], [before[1], after[1]], [0, 0]]})
    return _Val(padded, NHWC), [0, 0]


def _non_negative(c: _Converter, ir: str) -> bool:
    """Whether a tensor is known >= 0 (then padding with zeros cannot win a max)."""
    op = c.producer.get(ir)
    if op is None:
        return False
    if op.attrs.get("activation") in ("relu", "relu6") or op.kind in (
        "relu", "relu6", "logistic", "softmax"
    ):
        return True
    if op.kind in ("max_pool2d", "avg_pool2d", "reshape", "pad", "strided_slice"):
        return _non_negative(c, op.inputs[0])
    return False


def _conv(c: _Converter, node: Any) -> None:
    a = _attrs(node)
    w = c.const_in(node, 1, "the filter")
    if w is None or w.ndim != 4:
        raise _Unsupported("only 2-D convolutions (4-D filters) are supported")
    x = c.relayout(node.input[0], NHWC)
    xs = c.shape(node.input[0])
    ys = c.shape(node.output[0])
    group = int(a.get("group", 1))
    strides = [int(v) for v in a.get("strides", [1, 1])]
    dil = [int(v) for v in a.get("dilations", [1, 1])]
    kernel = [int(v) for v in w.shape[2:]]
    pad = _spatial_pads(a.get("auto_pad", "NOTSET"), a.get("pads"), (xs[2], xs[3]),
                        kernel, strides, dil, (ys[2], ys[3]))
    bias = c.const_in(node, 2, "the bias")
    cin, cout = xs[1], w.shape[0]
    if group == 1:
        kind, filt = "conv2d", w.transpose(0, 2, 3, 1)
    elif group == cin and w.shape[1] == 1 and cout % cin == 0:
        # depthwise: TFLite output channel o reads input channel o // M, as ONNX's groups do
        kind, filt = "depthwise_conv2d", w.transpose(1, 2, 3, 0)
    else:
        raise _Unsupported(f"grouped convolution with group={group} (not 1 or {cin}) is not "
                           "supported")
    # a zero Pad right before is part of the convolution's own padding (skipped taps and
    # zero taps contribute the same); one explicit pad is re-created below if still needed
    pad_op = c.single_use(x.ir, node.input[0])
    if pad_op is not None and pad_op.kind == "pad" and _zero_spatial_pad(c, pad_op):
        pads = pad_op.attrs["paddings"]
        pad = [pad[0] + pads[1][0], pad[1] + pads[2][0]]
        c.ops.remove(pad_op)
        del c.tensors[pad_op.outputs[0]]
        x = _Val(pad_op.inputs[0], NHWC)
    x, pad = _window_input(c, node, x, (ys[2], ys[3]), kernel, strides, dil, pad, True)
    b = np.zeros(cout, np.float32) if bias is None else bias.astype(np.float32).reshape(-1)
    attrs: dict[str, Any] = {"stride": strides, "dilation": dil, "pad": pad, "activation": "none"}
    if kind == "depthwise_conv2d":
        attrs["depth_multiplier"] = int(cout // cin)
    # not "<op name>/<role>": lower adds its own constants under those names
    base = node.output[0]
    ins = [x.ir, c.const(f"{base}/filter", filt), c.const(f"{base}/bias", b)]
    _out(c, node, NHWC, kind, ins, attrs)


def _zero_spatial_pad(c: _Converter, pad_op: Op) -> bool:
    p = pad_op.attrs["paddings"]
    return (
        len(pad_op.inputs) == 1
        and len(p) == 4
        and p[0] == [0, 0]
        and p[3] == [0, 0]
        and c.tensors[pad_op.inputs[0]].shape[0] == 1
    )


def _pool(c: _Converter, node: Any) -> None:
    a = _attrs(node)
    if len(node.output) > 1 and node.output[1]:
        raise _Unsupported("the Indices output of MaxPool is not supported")
    xs = c.shape(node.input[0])
    if len(xs) != 4:
        raise _Unsupported("only 2-D pooling is supported")
    ys = c.shape(node.output[0])
    x = c.relayout(node.input[0], NHWC)
    if node.op_type.startswith("Global"):
        kernel, strides, pad = [xs[2], xs[3]], [1, 1], [0, 0]
    else:
        kernel = [int(v) for v in a["kernel_shape"]]
        strides = [int(v) for v in a.get("strides", [1, 1])]
        if any(d != 1 for d in a.get("dilations", [1, 1])):
            raise _Unsupported("dilated pooling is not supported")
        pad = _spatial_pads(a.get("auto_pad", "NOTSET"), a.get("pads"), (xs[2], xs[3]), kernel,
                            strides, [1, 1], (ys[2], ys[3]))
    kind = "max_pool2d" if "Max" in node.op_type else "avg_pool2d"
    # padding zeros that count in the average are real zeros: an explicit pad then a VALID
    # pool; a max ignores zero padding when the input is never negative
    count_pad = kind == "avg_pool2d" and bool(a.get("count_include_pad", 0))
    zero_fill = count_pad or (kind == "max_pool2d" and _non_negative(c, x.ir))
    x, pad = _window_input(c, node, x, (ys[2], ys[3]), kernel, strides, [1, 1], pad, zero_fill,
                           force=count_pad)
    attrs = {"filter": kernel, "stride": strides, "pad": pad, "activation": "none"}
    _out(c, node, NHWC, kind, [x.ir], attrs)


def _batchnorm(c: _Converter, node: Any) -> None:
    scale, bias, mean, var = (c.const_in(node, i, "BatchNormalization statistics")
                              for i in range(1, 5))
    assert scale is not None and bias is not None and mean is not None and var is not None
    eps = float(_attrs(node).get("epsilon", 1e-5))
    mult = (scale / np.sqrt(var.astype(np.float64) + eps)).astype(np.float64)
    shift = bias - mean * mult
    v = c.val(node.input[0])
    stats = {"mean": [float(s) for s in bias], "std": [float(abs(s)) for s in scale]}
    prod = c.single_use(v.ir, node.input[0])
    if (
        prod is not None
        and prod.kind in ("conv2d", "depthwise_conv2d", "fully_connected")
        and prod.attrs.get("activation", "none") == "none"
        and v.cols is None
        and (prod.kind != "fully_connected" or len(c.shape(node.input[0])) == 2)
    ):
        w = c.tensors[prod.inputs[1]]
        b = c.tensors[prod.inputs[2]]
        assert w.data is not None and b.data is not None
        axis = 3 if prod.kind == "depthwise_conv2d" else 0
        shape = [1] * w.data.ndim
        shape[axis] = -1
        w.data = (w.data * mult.reshape(shape)).astype(np.float32)
        b.data = (b.data * mult + shift).astype(np.float32)
        c.bn_stats[prod.name] = stats
        new = c.rename_output(prod, node.output[0])
        c.bind(node.output[0], new, v.perm)
        return
    # a BatchNormalization that follows no foldable layer: y = x * mult + shift, per channel
    if v.cols is not None:
        mult, shift = mult[v.cols], shift[v.cols]
    rank = len(c.shape(node.input[0]))
    cshape = [1] * rank
    ir_axis = v.perm.index(1)
    cshape[ir_axis] = -1
    out = node.output[0]
    mid = c.activation(c.unique(f"{out}/scaled"), c.ir_shape(out, v.perm))
    c.add_op("mul", [v.ir, c.const(f"{out}/bn_mult", mult.reshape(cshape))], [mid],
             {"activation": "none"})
    op = _out(c, node, v.perm, "add", [mid, c.const(f"{out}/bn_shift", shift.reshape(cshape))],
              {"activation": "none"})
    c.vals[out].cols = v.cols
    if v.cols is None:
        c.bn_stats[op.name] = stats


def _gemm(c: _Converter, node: Any) -> None:
    a = _attrs(node)
    if a.get("transA", 0):
        raise _Unsupported("transA=1 is not supported")
    b = c.const_in(node, 1, "the weight matrix B")
    if b is None or b.ndim != 2:
        raise _Unsupported("B must be a constant 2-D matrix")
    w = (b if a.get("transB", 0) else b.T).astype(np.float64) * float(a.get("alpha", 1.0))
    units = w.shape[0]
    cc = c.const_in(node, 2, "C")
    if cc is not None and (cc.ndim > 2 or (cc.ndim == 2 and cc.shape[0] != 1)
                           or (cc.size not in (1, units))):
        raise _Unsupported(f"C of shape {list(cc.shape)} is not a per-unit bias")
    bias = np.zeros(units) if cc is None else np.broadcast_to(
        cc.astype(np.float64).reshape(-1) * float(a.get("beta", 1.0)), (units,)
    )
    _dense(c, node, w, bias, keep_num_dims=False)


def _dense(c: _Converter, node: Any, w: np.ndarray, bias: np.ndarray, keep_num_dims: bool) -> None:
    v = c.val(node.input[0])
    if v.cols is not None:
        w = w[:, v.cols]
    else:
        v = c.relayout(node.input[0], _identity(len(c.shape(node.input[0]))))
    base = node.output[0]
    ins = [v.ir, c.const(f"{base}/weights", w), c.const(f"{base}/bias", bias)]
    rank = len(c.shape(node.output[0]))
    _out(c, node, _identity(rank), "fully_connected", ins,
         {"activation": "none", "keep_num_dims": keep_num_dims})


def _matmul(c: _Converter, node: Any) -> None:
    b = c.const_in(node, 1, "the second MatMul operand")
    if b is None or b.ndim != 2:
        raise _Unsupported("the second operand must be a constant 2-D matrix (activation x "
                           "activation products are not supported)")
    rank = len(c.shape(node.input[0]))
    _dense(c, node, b.T.astype(np.float64), np.zeros(b.shape[1]), keep_num_dims=rank > 2)


def _activation_fn(c: _Converter, node: Any, act: str, kind: str | None) -> None:
    """Fuse into the producer when possible (as TFLite does); else a standalone op."""
    v = c.val(node.input[0])
    prod = c.single_use(v.ir, node.input[0])
    if prod is not None and prod.kind in _FUSABLE and prod.attrs.get("activation") == "none":
        prod.attrs["activation"] = act
        new = c.rename_output(prod, node.output[0])
        c.bind(node.output[0], new, v.perm, v.cols)
        return
    if kind is None:
        raise _Unsupported(f"a standalone {act} clamp is not an IR op; it must follow a "
                           "convolution, dense layer or elementwise op")
    _out(c, node, v.perm, kind, [v.ir], {})
    c.vals[node.output[0]].cols = v.cols


def _relu(c: _Converter, node: Any) -> None:
    _activation_fn(c, node, "relu", "relu")


def _clip(c: _Converter, node: Any) -> None:
    lo = c.const_in(node, 1, "min")
    hi = c.const_in(node, 2, "max")
    lo_v = -np.inf if lo is None else float(lo)
    hi_v = np.inf if hi is None else float(hi)
    table = {(0.0, np.inf): ("relu", "relu"), (0.0, 6.0): ("relu6", "relu6"),
             (-1.0, 1.0): ("relu_n1_to_1", None)}
    if (lo_v, hi_v) not in table:
        raise _Unsupported(f"Clip({lo_v}, {hi_v}) is not supported; only (0, inf), (0, 6) and "
                           "(-1, 1) have TFLite equivalents")
    act, kind = table[(lo_v, hi_v)]
    _activation_fn(c, node, act, kind)


def _leaky_relu(c: _Converter, node: Any) -> None:
    alpha = float(np.float32(_attrs(node).get("alpha", 0.01)))
    v = c.val(node.input[0])
    _out(c, node, v.perm, "leaky_relu", [v.ir], {"alpha": alpha})
    c.vals[node.output[0]].cols = v.cols


def _conv_transpose(c: _Converter, node: Any) -> None:
    """ConvTranspose (2-D, group 1, no dilation) as TFLite's TRANSPOSE_CONV: only the leading
    pad matters to the kernel, the output size (with output_padding) comes from ONNX's shape
    inference."""
    a = _attrs(node)
    w = c.const_in(node, 1, "the filter")
    if w is None or w.ndim != 4:
        raise _Unsupported("only 2-D transposed convolutions (4-D filters) are supported")
    if int(a.get("group", 1)) != 1:
        raise _Unsupported("grouped ConvTranspose is not supported")
    if any(int(d) != 1 for d in a.get("dilations", [1, 1])):
        raise _Unsupported("dilated ConvTranspose is not supported")
    x = c.relayout(node.input[0], NHWC)
    xs, ys = c.shape(node.input[0]), c.shape(node.output[0])
    kernel = [int(k) for k in w.shape[2:]]
    strides = [int(v) for v in a.get("strides", [1, 1])]
    auto_pad = a.get("auto_pad", "NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    out_pad = [int(v) for v in a.get("output_padding", [0, 0])]
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        # ONNX's definition: the total is split evenly, SAME_UPPER putting the odd one last
        total = [strides[i] * (xs[2 + i] - 1) + out_pad[i] + kernel[i] - ys[2 + i]
                 for i in range(2)]
        pad = [t // 2 if auto_pad == "SAME_UPPER" else t - t // 2 for t in total]
    elif auto_pad == "VALID":
        pad = [0, 0]
    else:
        pad = [int(p) for p in (a.get("pads") or [0, 0, 0, 0])[:2]]
    if min(pad) < 0:
        raise _Unsupported(f"negative padding {pad} is not supported")
    bias = c.const_in(node, 2, "the bias")
    cout = w.shape[1]
    b = np.zeros(cout, np.float32) if bias is None else bias.astype(np.float32).reshape(-1)
    base = node.output[0]
    # ONNX (C_in, C_out, kH, kW) -> TFLite's OHWI
    ins = [x.ir, c.const(f"{base}/filter", w.transpose(1, 2, 3, 0)), c.const(f"{base}/bias", b)]
    _out(c, node, NHWC, "transpose_conv", ins,
         {"stride": strides, "pad": pad, "activation": "none"})


def _unary(kind: str) -> Any:
    def handler(c: _Converter, node: Any) -> None:
        v = c.val(node.input[0])
        _out(c, node, v.perm, kind, [v.ir], {})
        c.vals[node.output[0]].cols = v.cols

    return handler


def _alias(c: _Converter, node: Any) -> None:
    if node.op_type == "Cast" and _attrs(node).get("to") != 1:
        raise _Unsupported("only casts to float32 are supported")
    c.vals[node.output[0]] = c.val(node.input[0])
    _merge_uses(c, node.input[0], node.output[0])


def _merge_uses(c: _Converter, src: str, dst: str) -> None:
    """`dst` is another name for `src`'s IR tensor: a producer may only be rewritten through it
    when nothing else reads `src` either."""
    extra = c.uses.get(src, 0) - 1 + (1 if src in c.graph_outputs else 0)
    c.uses[dst] = c.uses.get(dst, 0) + extra


def _binary(c: _Converter, node: Any) -> None:
    kind = {"Add": "add", "Sub": "sub", "Mul": "mul", "Div": "mul"}[node.op_type]
    a_name, b_name = node.input[0], node.input[1]
    out_shape = c.shape(node.output[0])
    rank = len(out_shape)
    consts = [n in c.consts for n in (a_name, b_name)]
    if node.op_type == "Div" and (consts[0] or not consts[1]):
        raise _Unsupported("only division by a constant is supported")
    if consts[0] and consts[1]:
        raise _Unsupported("internal: constant node was not folded")
    act_name = b_name if consts[0] else a_name
    if all(not k for k in consts):
        va, vb = c.val(a_name), c.val(b_name)
        if len(c.shape(a_name)) != rank or len(c.shape(b_name)) != rank:
            perm = _identity(rank)
        else:
            perm = va.perm if va.cols is None else vb.perm
        va, vb = c.relayout(a_name, perm), c.relayout(b_name, perm)
        _out(c, node, perm, kind, [va.ir, vb.ir], {"activation": "none"})
        return
    cname = a_name if consts[0] else b_name
    cval = c.consts[cname].astype(np.float64)
    if node.op_type == "Div":
        cval = 1.0 / cval
    v = c.val(act_name)
    if len(c.shape(act_name)) != rank:
        v = c.relayout(act_name, _identity(len(c.shape(act_name))))
    if kind in ("add", "sub") and not consts[0] and _fold_into_bias(c, node, v, cval, kind):
        return
    if kind == "add" and consts[0] and _fold_into_bias(c, node, v, cval, kind):
        return
    perm = v.perm if len(v.perm) == rank else _identity(rank)
    full = cval.reshape((1,) * (rank - cval.ndim) + cval.shape).transpose(perm)
    if v.cols is not None and full.shape[-1] != 1:
        full = full[..., v.cols]
    cir = c.const(f"{node.output[0]}/operand", full)
    ins = [cir, v.ir] if consts[0] else [v.ir, cir]
    _out(c, node, perm, kind, ins, {"activation": "none"})
    c.vals[node.output[0]].cols = v.cols


def _fold_into_bias(c: _Converter, node: Any, v: _Val, cval: np.ndarray, kind: str) -> bool:
    """x + c (or x - c) right after a conv or dense layer, c per output channel: into the bias."""
    prod = c.single_use(v.ir, node.input[0] if node.input[0] in c.vals else node.input[1])
    if (
        prod is None
        or prod.kind not in ("conv2d", "depthwise_conv2d", "fully_connected")
        or prod.attrs.get("activation") != "none"
        or v.cols is not None
    ):
        return False
    act_shape = c.shape(node.input[0] if node.input[0] in c.vals else node.input[1])
    out_shape = c.shape(node.output[0])
    if tuple(act_shape) != tuple(out_shape):
        return False
    full = np.broadcast_to(cval, out_shape)
    # the channel axis is innermost in the IR; in ONNX terms that is perm[-1] (1 for NCHW)
    axis = v.perm[-1]
    idx = tuple(slice(None) if d == axis else 0 for d in range(len(out_shape)))
    per_channel = full[idx]
    expand = [1] * len(out_shape)
    expand[axis] = -1
    if not np.array_equal(np.broadcast_to(per_channel.reshape(expand), out_shape), full):
        return False
    b = c.tensors[prod.inputs[2]]
    assert b.data is not None
    sign = -1.0 if kind == "sub" else 1.0
    b.data = (b.data + sign * per_channel).astype(np.float32)
    new = c.rename_output(prod, node.output[0])
    c.bind(node.output[0], new, v.perm)
    return True


def _reshape_like(c: _Converter, node: Any) -> None:
    x_name, out = node.input[0], node.output[0]
    xs, ys = c.shape(x_name), c.shape(out)
    v = c.val(x_name)
    if v.cols is not None:
        if tuple(ys) == tuple(xs):
            c.bind(out, v.ir, v.perm, v.cols)
            return
        raise _Unsupported("reshaping a flattened NCHW map again needs a data transpose")
    if _order(xs, v.perm) == _order(xs, _identity(len(xs))):
        # the stored order already is ONNX's: a plain reshape
        _out(c, node, _identity(len(ys)), "reshape", [v.ir], {"shape": list(ys)})
        return
    if node.op_type == "Squeeze":
        removed = sorted(set(_axes(c, node, len(xs)))) or [i for i, d in enumerate(xs) if d == 1]
        perm = tuple(p - sum(r < p for r in removed) for p in v.perm if p not in removed)
        _out(c, node, perm, "reshape", [v.ir], {"shape": [ys[p] for p in perm]})
        return
    if node.op_type == "Unsqueeze":
        added = sorted(a % len(ys) for a in _axes(c, node, len(ys)))
        kept = [i for i in range(len(ys)) if i not in added]
        perm = tuple(kept[p] for p in v.perm) + tuple(added)
        _out(c, node, perm, "reshape", [v.ir], {"shape": [ys[p] for p in perm]})
        return
    if len(ys) == 2 and v.perm[0] == 0 and ys[0] == xs[0]:
        # flatten of an NHWC-stored map: keep the IR order and remember which ONNX column
        # each IR column is; the dense layer that reads it permutes its weights instead
        inner = tuple(p - 1 for p in v.perm[1:])
        if int(np.prod(xs[1:], dtype=np.float64)) > MAX_FOLD_ELEMENTS:
            raise _Unsupported(f"flatten of '{x_name}' {list(xs)}: too many columns to permute")
        order = np.arange(int(np.prod(xs[1:]))).reshape(xs[1:]).transpose(inner).reshape(-1)
        _out(c, node, (0, 1), "reshape", [v.ir], {"shape": list(ys)})
        c.vals[out].cols = order
        return
    raise _Unsupported(f"reshape of '{x_name}' {list(xs)} -> {list(ys)} needs a data transpose "
                       "of a channels-last tensor")


def _axes(c: _Converter, node: Any, rank: int) -> list[int]:
    a = _attrs(node)
    if "axes" in a:
        return [int(x) % rank for x in a["axes"]]
    arr = c.const_in(node, 1, "axes")
    return [] if arr is None else [int(x) % rank for x in arr.reshape(-1)]


def _transpose(c: _Converter, node: Any) -> None:
    v = c.val(node.input[0])
    rank = len(c.shape(node.input[0]))
    p = tuple(int(x) for x in _attrs(node).get("perm", list(reversed(range(rank)))))
    if v.cols is not None:
        raise _Unsupported("transposing a flattened NCHW map is not supported")
    # y = x.transpose(p); IR stores x.transpose(perm_x); so IR = y.transpose(p^-1[perm_x])
    inv = _inverse(p)
    c.bind(node.output[0], v.ir, tuple(inv[q] for q in v.perm))
    _merge_uses(c, node.input[0], node.output[0])


def _concat(c: _Converter, node: Any) -> None:
    rank = len(c.shape(node.output[0]))
    axis = int(_attrs(node)["axis"]) % rank
    acts = [n for n in node.input if n not in c.consts]
    if not acts:
        raise _Unsupported("internal: constant node was not folded")
    first = c.val(acts[0])
    perm = first.perm if first.cols is None else _identity(rank)
    ins = []
    for n in node.input:
        if n in c.consts:
            ins.append(c.const(f"{node.output[0]}/block", c.consts[n].transpose(perm)))
        else:
            ins.append(c.relayout(n, perm).ir)
    _out(c, node, perm, "concat", ins, {"axis": perm.index(axis), "activation": "none"})


def _softmax(c: _Converter, node: Any) -> None:
    rank = len(c.shape(node.input[0]))
    axis = int(_attrs(node).get("axis", -1)) % rank
    v = c.val(node.input[0])
    if v.perm[-1] != axis:
        for perm in (_identity(rank), NHWC if rank == 4 else None):
            if perm is not None and perm[-1] == axis:
                v = c.relayout(node.input[0], perm)
                break
        else:
            raise _Unsupported(f"softmax over axis {axis} is not the innermost axis")
    _out(c, node, v.perm, "softmax", [v.ir], {"beta": 1.0})


def _pad(c: _Converter, node: Any) -> None:
    a = _attrs(node)
    mode = a.get("mode", b"constant")
    if (mode.decode() if isinstance(mode, bytes) else mode) != "constant":
        raise _Unsupported(f"pad mode {mode!r} is not supported (only constant)")
    pads = c.const_in(node, 1, "pads")
    value = c.const_in(node, 2, "constant_value")
    if value is not None and value.size and float(value.reshape(-1)[0]) != 0.0:
        raise _Unsupported("only zero padding is supported")
    rank = len(c.shape(node.input[0]))
    assert pads is not None
    axes = c.const_in(node, 3, "axes")
    full = np.zeros(2 * rank, dtype=np.int64)
    ax = list(range(rank)) if axes is None else [int(x) % rank for x in axes]
    for k, d in enumerate(ax):
        full[d], full[rank + d] = pads[k], pads[len(ax) + k]
    if np.any(full < 0):
        raise _Unsupported("negative pads are not supported")
    v = c.val(node.input[0])
    if v.cols is not None:
        v = c.relayout(node.input[0], _identity(rank))
    paddings = [[int(full[p]), int(full[rank + p])] for p in v.perm]
    _out(c, node, v.perm, "pad", [v.ir], {"paddings": paddings})


def _slice(c: _Converter, node: Any) -> None:
    xs = c.shape(node.input[0])
    rank = len(xs)
    starts, ends = c.const_in(node, 1, "starts"), c.const_in(node, 2, "ends")
    axes, steps = c.const_in(node, 3, "axes"), c.const_in(node, 4, "steps")
    assert starts is not None and ends is not None
    ax = list(range(len(starts))) if axes is None else [int(x) % rank for x in axes]
    st = [1] * len(ax) if steps is None else [int(s) for s in steps]
    ranges = {d: range(xs[d]) for d in range(rank)}
    for k, d in enumerate(ax):
        if st[k] == 0:
            raise _Unsupported("slice step 0")
        ranges[d] = range(xs[d])[slice(int(starts[k]), int(ends[k]), st[k])]
    v = c.val(node.input[0])
    if v.cols is not None:
        v = c.relayout(node.input[0], _identity(rank))
    begin, end, strides = [], [], []
    end_mask = 0
    for i, p in enumerate(v.perm):
        r = ranges[p]
        if len(r) == 0:
            raise _Unsupported("empty slices are not supported")
        begin.append(r.start)
        strides.append(r.step)
        if r.step < 0 and r.stop < 0:
            end.append(0)
            end_mask |= 1 << i
        else:
            end.append(r.stop)
    attrs = {"begin": begin, "end": end, "strides": strides, "begin_mask": 0,
             "end_mask": end_mask, "shrink_axis_mask": 0, "ellipsis_mask": 0,
             "new_axis_mask": 0, "offset": False}
    _out(c, node, v.perm, "strided_slice", [v.ir], attrs)


def _reduce_mean(c: _Converter, node: Any) -> None:
    rank = len(c.shape(node.input[0]))
    axes = _axes(c, node, rank) or list(range(rank))
    keep = bool(_attrs(node).get("keepdims", 1))
    v = c.val(node.input[0])
    if v.cols is not None:
        v = c.relayout(node.input[0], _identity(rank))
    ir_axes = sorted(v.perm.index(a) for a in axes)
    if keep:
        perm = v.perm
    else:
        # dropped axes leave the remaining ones in their IR order
        kept = [p for p in v.perm if p not in axes]
        perm = tuple(sorted(kept).index(k) for k in kept)
    _out(c, node, perm, "mean", [v.ir], {"axes": ir_axes, "keep_dims": keep})


_SPATIAL = {"Conv", "ConvTranspose", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool",
            "BatchNormalization"}
# Ops that work in any layout: a graph input reaching a spatial op through them gets NHWC.
_ELEMENTWISE = {"Relu", "LeakyRelu", "HardSwish", "Clip", "Add", "Sub", "Mul", "Div", "Sigmoid",
                "Tanh", "Identity", "Dropout", "Cast", "Pad", "Slice", "Concat"}

_HANDLERS: dict[str, Any] = {
    "Conv": _conv,
    "ConvTranspose": _conv_transpose,
    "LeakyRelu": _leaky_relu,
    "HardSwish": _unary("hard_swish"),
    "Gemm": _gemm,
    "MatMul": _matmul,
    "Relu": _relu,
    "Clip": _clip,
    "Add": _binary,
    "Sub": _binary,
    "Mul": _binary,
    "Div": _binary,
    "MaxPool": _pool,
    "AveragePool": _pool,
    "GlobalAveragePool": _pool,
    "GlobalMaxPool": _pool,
    "BatchNormalization": _batchnorm,
    "Reshape": _reshape_like,
    "Flatten": _reshape_like,
    "Squeeze": _reshape_like,
    "Unsqueeze": _reshape_like,
    "Transpose": _transpose,
    "Concat": _concat,
    "Pad": _pad,
    "Softmax": _softmax,
    "Sigmoid": _unary("logistic"),
    "Tanh": _unary("tanh"),
    "Slice": _slice,
    "ReduceMean": _reduce_mean,
    "Identity": _alias,
    "Dropout": _alias,
    "Cast": _alias,
}


def read_onnx(data: bytes, where: str = "<bytes>", name: str = "model") -> Graph:
    """Parse a float ONNX model into a float32 IR graph (NHWC, OHWI filters)."""
    try:
        import onnx
    except ImportError:
        raise EdgekitError(
            "reading ONNX needs the onnx package", where, "pip install 'edgekit[onnx]'"
        ) from None
    try:
        model = onnx.load_from_string(data)
    except Exception as exc:  # protobuf raises DecodeError and friends
        raise EdgekitError(
            f"not a readable ONNX model ({type(exc).__name__}: {exc})",
            where,
            "check the file is an .onnx model and was copied completely",
        ) from None
    _load_external_data(model, where)
    # dims, data types and data lengths agree before numpy_helper converts any tensor
    check_model(model, where)
    opset = _default_opset(model)
    if opset < MIN_OPSET:
        try:
            from onnx import version_converter

            model = version_converter.convert_version(model, MIN_OPSET)
        except Exception:
            raise EdgekitError(
                f"model uses opset {opset}; edgekit reads opset {MIN_OPSET} and newer",
                where,
                "re-export the model with opset_version=13 or later",
            ) from None
        check_model(model, where)  # again: the converter rewrote the tensors
    from edgekit.frontends.onnx_quantized import is_quantized, read_quantized_onnx

    if is_quantized(model):  # QDQ or QLinear* ops: the int8 IR directly
        return read_quantized_onnx(model, where, name)
    conv = _Converter(model, where, name)
    try:
        conv.prepare()
        return conv.convert()
    except _Unsupported as exc:
        raise EdgekitError(str(exc), where) from None
    except (ValueError, TypeError, KeyError, IndexError, AssertionError, AttributeError,
            ArithmeticError) as exc:  # e.g. an int attribute stored as a float infinity
        # the converter assumes a consistent graph (ranks, perms and shapes that agree); what
        # its checks do not name is still one error naming this file, never a traceback
        raise EdgekitError(
            f"the ONNX graph is malformed or inconsistent ({type(exc).__name__}: {exc})",
            where,
            "check that the model passes onnx.checker.check_model(model, full_check=True)",
        ) from None


def _load_external_data(model: Any, where: str) -> None:
    """Weights saved beside the model (onnx's external data) are read from the model's folder."""
    from onnx import external_data_helper

    if not any(external_data_helper.uses_external_data(t) for t in model.graph.initializer):
        return
    folder = Path(where).parent
    if not Path(where).is_file():
        raise EdgekitError("the model keeps its weights in a separate file", where,
                           "load it from its .onnx path, next to the weight file")
    # the model names these files: they must stay inside its folder (checked before onnx opens)
    check_external_locations(model, where)
    try:
        external_data_helper.load_external_data_for_model(model, str(folder))
    except Exception as exc:  # OSError, ValueError and onnx's ValidationError
        raise EdgekitError(f"cannot read the external weight data: {exc}", where) from None


def load_onnx(path: Path, name: str | None = None) -> Graph:
    from edgekit.frontends.tflite import _c_name

    p = Path(path)
    return read_onnx(p.read_bytes(), str(p), name or _c_name(p.stem))
