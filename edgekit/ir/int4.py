"""Packed int4: two signed 4-bit values per byte, the layout TFLite uses for INT4 tensors.

Element 2i is the low nibble of byte i and element 2i+1 its high nibble; an odd count leaves the
last high nibble zero. In memory (Tensor.data) an int4 tensor is an int8 array of values in
[-8, 7]; it is packed only where bytes leave Python: the .ekir blob and the generated C arrays.
"""

from __future__ import annotations

import numpy as np

MIN, MAX = -8, 7


def pack(values: np.ndarray) -> np.ndarray:
    """int8 values in [-8, 7] (any shape, C order) -> ceil(n/2) packed bytes (as int8)."""
    v = np.asarray(values, dtype=np.int8).reshape(-1)
    if v.size and (v.min() < MIN or v.max() > MAX):
        raise ValueError("int4 values must lie in [-8, 7]")
    if v.size % 2:
        v = np.append(v, np.int8(0))
    nib = (v.astype(np.uint8) & 0x0F).reshape(-1, 2)
    return (nib[:, 0] | (nib[:, 1] << 4)).astype(np.uint8).view(np.int8)


def unpack(packed: np.ndarray, count: int) -> np.ndarray:
    """The first `count` int4 values of packed bytes, as int8 (sign-extended)."""
    b = np.asarray(packed, dtype=np.int8).reshape(-1).view(np.uint8)
    lo = (b & 0x0F).astype(np.int8)
    hi = (b >> 4).astype(np.int8)
    out = np.empty(b.size * 2, dtype=np.int8)
    out[0::2], out[1::2] = lo, hi
    out = np.where(out > MAX, out - 16, out).astype(np.int8)
    return out[:count]


def packed_bytes(count: int) -> int:
    return (count + 1) // 2
