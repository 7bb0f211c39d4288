"""Checks on an ONNX ModelProto before onnx's helpers turn its tensors into numpy arrays.

`numpy_helper.to_array` trusts a TensorProto: its dims, its data type and the length of its
data must agree, or it raises whatever numpy raises (ValueError, KeyError, TypeError). The
reference evaluator that folds constant subgraphs allocates whatever a node asks for: a
ConstantOfShape, Expand, Tile or Range of a few bytes can ask for gigabytes. Both are checked
here first, so a bad file ends in one EdgekitError that names it.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.ir.graph import MAX_ELEMENTS, MAX_RANK

# Folded values (constants computed from constants) are limited more tightly than tensors: a
# folded value is either a weight (at most the 8 MB of constants the IR accepts) or a shape.
MAX_FOLD_ELEMENTS = 1 << 22
MAX_EXTERNAL_BYTES = 64 << 20  # as the model file itself

# TensorProto.DataType -> (numpy dtype, the typed field that holds it, values per element)
_FIELDS: dict[int, tuple[Any, str, int]] = {
    1: (np.float32, "float_data", 1),
    2: (np.uint8, "int32_data", 1),
    3: (np.int8, "int32_data", 1),
    4: (np.uint16, "int32_data", 1),
    5: (np.int16, "int32_data", 1),
    6: (np.int32, "int32_data", 1),
    7: (np.int64, "int64_data", 1),
    9: (np.bool_, "int32_data", 1),
    10: (np.float16, "int32_data", 1),
    11: (np.float64, "double_data", 1),
    12: (np.uint32, "uint64_data", 1),
    13: (np.uint64, "uint64_data", 1),
}


def _count(dims: Any, where: str, what: str) -> int:
    dims = [int(d) for d in dims]
    if len(dims) > MAX_RANK + 2:  # ONNX ranks up to 8 fold down to the IR's rank limit
        raise EdgekitError(f"{what} has rank {len(dims)}", where)
    if any(d < 0 for d in dims):
        raise EdgekitError(f"{what} has a negative dimension {dims}", where)
    n = math.prod(dims)
    if n > MAX_ELEMENTS:
        raise EdgekitError(f"{what} declares {n:,} elements (limit {MAX_ELEMENTS:,})", where)
    return n


def check_shape(dims: Any, where: str, what: str) -> None:
    """A value's shape: rank, no negative dimension, at most MAX_ELEMENTS elements."""
    _count(dims, where, what)


def check_tensor(t: Any, where: str, what: str) -> None:
    """A TensorProto that numpy_helper.to_array can convert exactly as declared."""
    what = f"{what} '{t.name}'" if t.name else what
    if t.data_type not in _FIELDS:
        raise EdgekitError(
            f"{what} has data type {t.data_type}, which edgekit does not read", where,
            hint="numeric tensors only (float, double, float16, integers, bool)",
        )  # fmt: skip
    if t.HasField("segment"):
        raise EdgekitError(f"{what} is a segment of a larger tensor", where)
    if t.data_location == 1 and not t.raw_data:  # EXTERNAL, not loaded
        raise EdgekitError(f"{what} keeps its data in another file that was not read", where)
    n = _count(t.dims, where, what)
    dtype, field, per = _FIELDS[t.data_type]
    if t.raw_data:
        have, want = len(t.raw_data), n * np.dtype(dtype).itemsize
        unit = "bytes"
    else:
        have, want = len(getattr(t, field)), n * per
        unit = "values"
    if have != want:
        raise EdgekitError(f"{what} holds {have} {unit} of data for {n} elements", where)


def check_model(model: Any, where: str) -> None:
    """Every initializer and every Constant node's tensor of the main graph and its subgraphs."""
    _check_graph(model.graph, where, 0)


def _check_graph(graph: Any, where: str, depth: int) -> None:
    if depth > 8:
        raise EdgekitError("ONNX subgraphs nest more than 8 deep", where)
    if len(graph.sparse_initializer):
        raise EdgekitError("the model has sparse initializers, which edgekit does not read", where)
    for init in graph.initializer:
        check_tensor(init, where, "initializer")
    for idx, node in enumerate(graph.node):
        for a in node.attribute:
            what = f"node #{idx} {node.op_type} attribute '{a.name}'"
            if a.HasField("t"):
                check_tensor(a.t, where, what)
            for t in a.tensors:
                check_tensor(t, where, what)
            if a.HasField("sparse_tensor") or len(a.sparse_tensors):
                raise EdgekitError(f"{what} is a sparse tensor, which edgekit does not read", where)
            if a.HasField("g"):
                _check_graph(a.g, where, depth + 1)
            for g in a.graphs:
                _check_graph(g, where, depth + 1)


def check_external_locations(model: Any, where: str) -> None:
    """External weight files must lie inside the model's folder, be regular files and small
    enough; the model names them, so a path must never reach outside that folder."""
    from onnx import external_data_helper

    folder = Path(where).resolve().parent
    for t in model.graph.initializer:
        if not external_data_helper.uses_external_data(t):
            continue
        info = {e.key: e.value for e in t.external_data}
        loc = info.get("location", "")
        what = f"initializer '{t.name}'"
        if not loc or os.path.isabs(loc) or ".." in Path(loc).parts or "\\" in loc or "\0" in loc:
            raise EdgekitError(
                f"{what}: external data location '{loc}' is not a plain file name beside the "
                "model", where,
            )  # fmt: skip
        if len(loc) > 255:
            raise EdgekitError(f"{what}: external data location is {len(loc)} characters", where)
        try:
            target = (folder / loc).resolve()
            if target.parent != folder and folder not in target.parents:
                raise EdgekitError(
                    f"{what}: external data '{loc}' resolves outside the folder", where
                )
            if not target.is_file():
                raise EdgekitError(f"{what}: external data file '{loc}' is missing", where)
            size = target.stat().st_size
        except OSError as exc:
            raise EdgekitError(f"{what}: cannot open external data '{loc}' ({exc.strerror})",
                               where) from None  # fmt: skip
        if size > MAX_EXTERNAL_BYTES:
            raise EdgekitError(f"{what}: external data file '{loc}' is too large", where)
        for key in ("offset", "length"):
            if key in info and (not info[key].isdigit() or int(info[key]) > MAX_EXTERNAL_BYTES):
                raise EdgekitError(f"{what}: external data {key} '{info[key]}' is invalid", where)


# --- folding ------------------------------------------------------------------------------------


def _values(feeds: dict[str, np.ndarray], name: str) -> np.ndarray | None:
    return feeds.get(name) if name else None


#: ops whose window attributes the reference evaluator loops or allocates by
_WINDOW_OPS = frozenset({"Conv", "ConvTranspose", "ConvInteger", "QLinearConv", "AveragePool",
                         "MaxPool", "LpPool", "MaxUnpool", "DeformConv", "Col2Im"})
_WINDOW_ATTRS = ("kernel_shape", "strides", "dilations")
#: a window dimension, stride or dilation beyond this is refused before folding
MAX_WINDOW = 1 << 16


def fold_problem(node: Any, attrs: dict[str, Any]) -> str | None:
    """Why `node` must not be handed to the reference evaluator, or None.

    The evaluator trusts its node: a missing data input becomes None (numpy then tiles or
    broadcasts an object array of Nones), and a negative stride or a huge dilation sizes its
    output and im2col arrays by it."""
    if node.input and not node.input[0] and node.op_type != "Loop":
        return "its first (data) input is empty"
    if node.op_type in _WINDOW_OPS:
        for key in _WINDOW_ATTRS:
            v = attrs.get(key)
            if v is None:
                continue
            vals = list(v) if isinstance(v, list | tuple) else [v]
            if not all(isinstance(a, int) and 1 <= a <= MAX_WINDOW for a in vals):
                return f"{key} {vals} must be integers from 1 to {MAX_WINDOW:,}"
    return None


def fold_size(node: Any, feeds: dict[str, np.ndarray], attrs: dict[str, Any]) -> int | None:
    """An upper bound of the elements the reference evaluator allocates for `node` given its
    constant inputs, for the ops whose output can be much larger than their inputs; None when
    the output is no larger than the inputs (or broadcasts of them)."""
    ins = list(node.input)
    x = [_values(feeds, n) for n in ins]
    op = node.op_type

    def prod(shape: Any) -> int:
        dims = [int(d) for d in np.asarray(shape).reshape(-1)]
        return math.prod(max(d, 1) for d in dims) if dims else 1

    if op == "ConstantOfShape" and x and x[0] is not None:
        return prod(x[0])
    if op == "Expand" and len(x) > 1 and x[0] is not None and x[1] is not None:
        shape = [int(d) for d in np.asarray(x[1]).reshape(-1)]
        rank = max(len(shape), x[0].ndim)
        a = [1] * (rank - x[0].ndim) + list(x[0].shape)
        b = [1] * (rank - len(shape)) + shape
        return math.prod(max(abs(p), abs(q), 1) for p, q in zip(a, b, strict=True))
    if op == "Tile" and len(x) > 1 and x[0] is not None and x[1] is not None:
        return max(x[0].size, 1) * prod(np.abs(np.asarray(x[1], dtype=np.float64)))
    if op == "Tile" and len(x) > 1 and x[1] is not None:
        return prod(np.abs(np.asarray(x[1], dtype=np.float64)))
    if op == "Range" and len(x) > 2 and all(v is not None for v in x[:3]):
        start, limit, delta = (float(np.asarray(v).reshape(-1)[0]) for v in x[:3])
        if not all(math.isfinite(v) for v in (start, limit, delta)) or delta == 0:
            return MAX_FOLD_ELEMENTS + 1
        return max(0, math.ceil((limit - start) / delta))
    if op in ("Resize", "Upsample"):
        total = max((v.size for v in x if v is not None), default=1)
        for v in x[1:]:
            if v is not None and v.size and v.dtype.kind == "f":
                scales = np.asarray(v, dtype=np.float64).reshape(-1)
                if not np.all(np.isfinite(scales)):
                    return MAX_FOLD_ELEMENTS + 1
                total = int(min(total * math.prod(max(abs(s), 1.0) for s in scales), 1 << 62))
            elif v is not None and v.size and v.dtype.kind in "iu":
                total = max(total, prod(np.abs(v)))
        return total
    if op == "Pad" and x and x[0] is not None:
        pads = x[1] if len(x) > 1 and x[1] is not None else np.asarray(attrs.get("pads", []))
        pads = np.abs(np.asarray(pads, dtype=np.float64)).reshape(-1)
        r = x[0].ndim
        if pads.size == 2 * r:
            return math.prod(int(d + pads[i] + pads[i + r]) for i, d in enumerate(x[0].shape))
        return None
    present = [v for v in x if v is not None]
    if op in ("Conv", "ConvTranspose", "ConvInteger", "AveragePool", "MaxPool", "LpPool",
              "DeformConv") and present and present[0].ndim >= 2:  # fmt: skip
        # the evaluator pads the input and builds an im2col of it: padded size x kernel; a
        # transposed conv also multiplies the size by its strides
        x0 = present[0]
        spatial = list(x0.shape[2:])
        pads = attrs.get("pads") if isinstance(attrs.get("pads"), list | tuple) else []
        for i in range(len(spatial)):
            for j in (i, i + len(spatial)):
                if j < len(pads):
                    spatial[i] += abs(int(pads[j]))
        size = x0.shape[0] * math.prod(max(d, 1) for d in spatial)
        size *= max(present[1].size if len(present) > 1 else 1, x0.shape[1], 1)
        if op == "ConvTranspose":
            for v in attrs.get("strides", []) or []:
                size *= max(abs(int(v)), 1)
        return min(size, 1 << 62)
    if op in ("MatMul", "Gemm") and len(present) >= 2:
        a, b = present[0], present[1]
        inner = max(a.shape[-1] if a.ndim else 1, 1)
        return max(a.size, 1) * max(b.size, 1) // inner
    if op == "Gather" and len(present) >= 2:
        data, idx = present[0], present[1]
        axis = int(attrs.get("axis", 0))
        along = data.shape[axis] if data.ndim and -data.ndim <= axis < data.ndim else 1
        return max(idx.size, 1) * max(data.size, 1) // max(along, 1)
    if op == "OneHot" and len(present) >= 2 and present[1].size:
        depth = float(np.asarray(present[1], dtype=np.float64).reshape(-1)[0])
        if not math.isfinite(depth):
            return MAX_FOLD_ELEMENTS + 1
        return max(present[0].size, 1) * max(int(abs(depth)), 1)
    if op in ("EyeLike", "Einsum", "Col2Im", "CenterCropPad"):
        sizes = sorted((v.size for v in present), reverse=True) + [1, 1]
        return sizes[0] * sizes[1]
    if len(present) > 1:  # elementwise ops broadcast their inputs
        try:
            return max(math.prod(np.broadcast_shapes(*(v.shape for v in present))), 1)
        except ValueError:
            return None  # the evaluator refuses it without allocating
    return None
