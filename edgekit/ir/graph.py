"""The quantized intermediate representation: typed tensors and ops in execution order.

One graph type serves every precision: integer ops carry their fixed-point constants (computed by
`passes.lower`), FP16 ops will carry a rounding contract, and stateful time-stepped ops will carry
their state tensors. Everything a code generator needs is in the graph; nothing is recomputed in C.
"""

from __future__ import annotations

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
}

C_TYPES: dict[str, str] = {
    "int8": "int8_t",
    "uint8": "uint8_t",
    "int16": "int16_t",
    "int32": "int32_t",
    "int64": "int64_t",
    "float16": "uint16_t",
    "float32": "float",
}


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
        """Check the graph is well formed: known tensors, topological order, single producers."""
        defined = set(self.inputs) | {n for n, t in self.tensors.items() if t.is_const}
        for name in self.inputs + self.outputs:
            if name not in self.tensors:
                raise ValueError(f"graph input/output '{name}' is not a tensor")
        for op in self.ops:
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
