"""The quantized intermediate representation: typed tensors and ops in execution order.

One graph type serves every precision: integer ops carry their fixed-point constants (computed by
`passes.lower`), FP16 ops will carry a rounding contract, and stateful time-stepped ops will carry
their state tensors. Everything a code generator needs is in the graph; nothing is recomputed in C.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# Storage types the IR knows, with their numpy equivalents. Names are the ones the .ekir file uses.
DTYPES: dict[str, np.dtype] = {
    "int8": np.dtype(np.int8),
    "uint8": np.dtype(np.uint8),
    "int16": np.dtype(np.int16),
    "int32": np.dtype(np.int32),
    "int64": np.dtype(np.int64),
    "float16": np.dtype(np.float16),
    "float32": np.dtype(np.float32),
    # packed int4 weights: held unpacked (int8 values in [-8, 7]) in memory, two per byte in the
    # .ekir file and in generated C (edgekit/ir/int4.py)
    "int4": np.dtype(np.int8),
}

C_TYPES: dict[str, str] = {
    "int8": "int8_t",
    "uint8": "uint8_t",
    "int16": "int16_t",
    "int32": "int32_t",
    "int64": "int64_t",
    "float16": "uint16_t",
    "float32": "float",
    "int4": "int8_t",  # packed bytes
}


# Limits every reader enforces (through validate) before later passes size anything from a shape.
# They sit far above what fits a microcontroller, and keep compiling any accepted file within a few
# seconds and well under 1 GB (docs/reliability.md has the measurements).
MAX_RANK = 6
MAX_ELEMENTS = 1 << 28
MAX_TENSORS = 1 << 14
MAX_OPS = 1 << 11
MAX_CONST_BYTES = 8 << 20  # rendering costs about 80 bytes of Python memory per constant byte
# Scales outside this range only come from corrupt files, and their multipliers or activation
# bounds overflow float32 arithmetic in lowering.
MIN_SCALE, MAX_SCALE = 1e-30, 1e30
# Op names appear in C comments of every kernel template, so they are kept to a plain alphabet.
OP_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:#-]{0,127}")


def _check_tensor(t: Tensor) -> None:
    if t.dtype not in DTYPES:
        raise ValueError(f"tensor '{t.name}' has unknown dtype {t.dtype}")
    if len(t.shape) > MAX_RANK or any(not isinstance(d, int) or d < 0 for d in t.shape):
        raise ValueError(f"tensor '{t.name}' has an invalid shape {list(t.shape)}")
    if int(np.prod(t.shape, dtype=np.float64)) > MAX_ELEMENTS:
        raise ValueError(f"tensor '{t.name}' declares {list(t.shape)}: more than {MAX_ELEMENTS}")
    if t.data is not None and (t.data.shape != t.shape or t.data.dtype != DTYPES[t.dtype]):
        raise ValueError(f"tensor '{t.name}' holds data that does not match its shape and dtype")
    if t.dtype == "int4" and (t.data is None or (t.data.size and (
            int(t.data.min()) < -8 or int(t.data.max()) > 7))):
        raise ValueError(f"int4 tensor '{t.name}' must be a constant with values in [-8, 7]")
    q = t.quant
    if q is None:
        return
    scale, zp = np.asarray(q.scale).reshape(-1), np.asarray(q.zero_point).reshape(-1)
    if scale.size == 0 or scale.size != zp.size:
        raise ValueError(f"tensor '{t.name}': {scale.size} scales but {zp.size} zero points")
    if not np.all(np.isfinite(scale)) or np.any((scale < MIN_SCALE) | (scale > MAX_SCALE)):
        raise ValueError(
            f"tensor '{t.name}': quantization scales must be finite and in "
            f"[{MIN_SCALE:g}, {MAX_SCALE:g}]"
        )
    kind = DTYPES[t.dtype]
    lo, hi = (
        (int(np.iinfo(kind).min), int(np.iinfo(kind).max))
        if kind.kind in "iu" and kind.itemsize <= 4
        else (-(1 << 31), (1 << 31) - 1)
    )
    if np.any((zp < lo) | (zp > hi)):
        raise ValueError(f"tensor '{t.name}': zero point outside the {t.dtype} range")
    if scale.size > 1:
        axis = q.axis
        if not isinstance(axis, int) or not 0 <= axis < len(t.shape):
            raise ValueError(f"tensor '{t.name}': quantized dimension {axis} is out of range")
        if t.shape[axis] != scale.size:
            raise ValueError(
                f"tensor '{t.name}': {scale.size} scales for dimension {axis} of size "
                f"{t.shape[axis]}"
            )


def dtype_name(dt: np.dtype | type) -> str:
    dt = np.dtype(dt)
    for name, known in DTYPES.items():
        if known == dt:
            return name
    raise ValueError(f"unsupported dtype {dt}")


@dataclass
class Quant:
    """Affine quantization: real = scale * (q - zero_point), per tensor or along `axis`."""

    scale: np.ndarray  # float32, length 1 or the size of `axis`
    zero_point: np.ndarray  # int64, same length as scale
    axis: int | None = None

    @property
    def per_channel(self) -> bool:
        return self.axis is not None and self.scale.size > 1

    def scalar_scale(self) -> float:
        return float(self.scale.reshape(-1)[0])

    def scalar_zero_point(self) -> int:
        return int(self.zero_point.reshape(-1)[0])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Quant):
            return NotImplemented
        return (
            self.axis == other.axis
            and np.array_equal(self.scale, other.scale)
            and np.array_equal(self.zero_point, other.zero_point)
        )


@dataclass
class Tensor:
    name: str
    shape: tuple[int, ...]
    dtype: str
    quant: Quant | None = None
    data: np.ndarray | None = None  # set for constants (weights, biases, lowered parameters)

    @property
    def is_const(self) -> bool:
        return self.data is not None

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1

    @property
    def nbytes(self) -> int:
        if self.dtype == "int4":
            return (self.size + 1) // 2
        return self.size * DTYPES[self.dtype].itemsize


@dataclass
class Op:
    kind: str
    name: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass
class Graph:
    name: str
    tensors: dict[str, Tensor]
    ops: list[Op]
    inputs: list[str]
    outputs: list[str]
    meta: dict[str, Any] = field(default_factory=dict)

    def tensor(self, name: str) -> Tensor:
        return self.tensors[name]

    def producers(self) -> dict[str, Op]:
        return {t: op for op in self.ops for t in op.outputs}

    def consumers(self) -> dict[str, list[Op]]:
        out: dict[str, list[Op]] = {}
        for op in self.ops:
            for t in op.inputs:
                if t:
                    out.setdefault(t, []).append(op)
        return out

    def activations(self) -> list[Tensor]:
        """Non-constant tensors: the ones that live in the arena."""
        return [t for t in self.tensors.values() if not t.is_const]

    def add_const(self, name: str, data: np.ndarray) -> str:
        """Add a constant derived by a pass (e.g. per-channel multipliers) and return its name."""
        if name in self.tensors:
            raise ValueError(f"tensor name collision: {name}")
        arr = np.ascontiguousarray(data)
        self.tensors[name] = Tensor(name, tuple(arr.shape), dtype_name(arr.dtype), None, arr)
        return name

    def validate(self) -> None:
        """Check the graph is well formed: known tensors, topological order, single producers.

        Also the per-tensor limits (rank, element count, quantization ranges), so that no later
        pass sizes anything from an unchecked number.
        """
        if len(self.tensors) > MAX_TENSORS or len(self.ops) > MAX_OPS:
            raise ValueError(f"more than {MAX_TENSORS} tensors or {MAX_OPS} ops")
        for name, t in self.tensors.items():
            if name != t.name or not name:
                raise ValueError(f"tensor '{name}' is registered under another name")
            _check_tensor(t)
        if sum(t.nbytes for t in self.tensors.values() if t.is_const) > MAX_CONST_BYTES:
            raise ValueError(f"constants exceed {MAX_CONST_BYTES >> 20} MB")
        if not self.inputs or not self.outputs:
            raise ValueError("the graph needs at least one input and one output")
        defined = set(self.inputs) | {n for n, t in self.tensors.items() if t.is_const}
        for name in self.inputs + self.outputs:
            if name not in self.tensors:
                raise ValueError(f"graph input/output '{name}' is not a tensor")
            if self.tensors[name].is_const:
                raise ValueError(f"graph input/output '{name}' is a constant")
        names: set[str] = set()
        for op in self.ops:
            if not isinstance(op.name, str) or not OP_NAME.fullmatch(op.name):
                raise ValueError(f"op name {op.name!r} is not a plain identifier")
            if op.name in names:
                raise ValueError(f"two ops are named '{op.name}'")
            names.add(op.name)
            if not op.outputs:
                raise ValueError(f"op {op.name} has no output")
            for t in op.inputs:
                if t and t not in defined:
                    raise ValueError(f"op {op.name} reads '{t}' before it is produced")
            for t in op.outputs:
                if t in defined:
                    raise ValueError(f"tensor '{t}' is produced twice (op {op.name})")
                if t not in self.tensors:
                    raise ValueError(f"op {op.name} writes unknown tensor '{t}'")
                defined.add(t)
        for name in self.outputs:
            if name not in defined:
                raise ValueError(f"graph output '{name}' is never produced")
