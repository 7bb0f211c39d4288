"""The .ekir file: a versioned, self-describing serialisation of an IR graph.

Layout (docs/ir.md): magic b"EKIR", uint16 major, uint16 minor, uint32 header length, a UTF-8 JSON
header, zero padding to a 16-byte boundary, then the constant data blob. Each constant names its
byte range in the blob; floats are written with repr() of the float32 value widened to double, which
reads back to the identical float32, so a load/save round trip is byte-identical.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.ir import int4
from edgekit.ir.graph import (
    DTYPES,
    MAX_CONST_BYTES,
    MAX_ELEMENTS,
    MAX_OPS,
    MAX_RANK,
    MAX_TENSORS,
    Graph,
    Op,
    Quant,
    Tensor,
)

MAGIC = b"EKIR"
# 1.1: "int4" constants (packed two per byte); 1.0 readers reject them as an unknown dtype
VERSION = (1, 1)
_HEADER = struct.Struct("<4sHHI")
_ALIGN = 16
# JSON parses to objects ~20x its size: this keeps a hostile header well under 1 GB
MAX_HEADER_BYTES = 16 << 20


def _plain(value: Any) -> Any:
    """numpy scalars and tuples to JSON types, so attrs round-trip unchanged."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def dumps(graph: Graph) -> bytes:
    blob = bytearray()
    tensors = []
    for t in graph.tensors.values():
        entry: dict[str, Any] = {"name": t.name, "shape": list(t.shape), "dtype": t.dtype}
        if t.quant is not None:
            entry["quant"] = {
                "scale": [float(s) for s in t.quant.scale.astype(np.float32)],
                "zero_point": [int(z) for z in t.quant.zero_point],
                "axis": t.quant.axis,
            }
        if t.data is not None:
            pad = (-len(blob)) % _ALIGN
            blob.extend(b"\0" * pad)
            raw = (int4.pack(t.data) if t.dtype == "int4" else
                   np.ascontiguousarray(t.data, dtype=DTYPES[t.dtype])).tobytes()
            entry["data"] = {"offset": len(blob), "nbytes": len(raw)}
            blob.extend(raw)
        tensors.append(entry)
    header = {
        "format": "ekir",
        "version": list(VERSION),
        "graph": {
            "name": graph.name,
            "inputs": graph.inputs,
            "outputs": graph.outputs,
            "meta": _plain(graph.meta),
            "tensors": tensors,
            "ops": [
                {
                    "kind": o.kind,
                    "name": o.name,
                    "inputs": o.inputs,
                    "outputs": o.outputs,
                    "attrs": _plain(o.attrs),
                }
                for o in graph.ops
            ],
        },
    }
    hjson = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    pre = _HEADER.pack(MAGIC, VERSION[0], VERSION[1], len(hjson)) + hjson
    pre += b"\0" * ((-len(pre)) % _ALIGN)
    return pre + bytes(blob)


def loads(data: bytes, where: str = "<bytes>") -> Graph:
    def bad(what: str) -> EdgekitError:
        return EdgekitError(what, where, "regenerate the .ekir file with this edgekit version")

    if len(data) < _HEADER.size:
        raise bad("file is too short to be an .ekir file")
    magic, major, minor, hlen = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise bad("not an .ekir file (wrong magic)")
    if major != VERSION[0]:
        raise bad(
            f".ekir format version {major}.{minor} is not supported (this reads {VERSION[0]}.x)"
        )
    if hlen > MAX_HEADER_BYTES or _HEADER.size + hlen > len(data):
        raise bad("header length is larger than the file")
    start = _HEADER.size + hlen
    blob = memoryview(data)[start + ((-start) % _ALIGN) :]
    try:
        header = json.loads(data[_HEADER.size : start])
        graph = _graph(_dict(header, "header")["graph"], blob)
        graph.validate()
    except _Malformed as exc:
        raise bad(str(exc)) from None
    except RecursionError:
        raise bad("malformed .ekir header (nested too deeply)") from None
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise bad(f"malformed .ekir header ({type(exc).__name__}: {exc})") from None
    return graph


# --- header structure: every value is type-checked before use, so a corrupt or hostile header is
# one clean error rather than whatever exception the first misuse would raise ----------------

MAX_NESTING = 12  # attrs and meta: deeper JSON would make later deep copies recurse too far


class _Malformed(ValueError):
    pass


def _dict(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Malformed(f"{what} must be a JSON object")
    return value


def _list(value: Any, what: str, limit: int = MAX_TENSORS) -> list[Any]:
    if not isinstance(value, list) or len(value) > limit:
        raise _Malformed(f"{what} must be a list of at most {limit} entries")
    return value


def _str(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise _Malformed(f"{what} must be a string")
    return value


def _int(value: Any, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise _Malformed(f"{what} must be an integer")
    return value


def _depth(value: Any, what: str, level: int = 0) -> Any:
    if level > MAX_NESTING:
        raise _Malformed(f"{what} is nested more than {MAX_NESTING} levels deep")
    children = (
        value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    )
    for v in children:
        _depth(v, what, level + 1)
    return value


def _graph(g: Any, blob: memoryview) -> Graph:
    g = _dict(g, "graph")
    tensors: dict[str, Tensor] = {}
    # dumps lays constants out in order without overlap; requiring that also means each blob
    # byte is copied out at most once, whatever the header claims
    end = 0
    for e in _list(g["tensors"], "tensors"):
        e = _dict(e, "tensor")
        name = _str(e["name"], "tensor name")
        if name in tensors:
            raise _Malformed(f"tensor '{name}' appears twice")
        tensors[name], end = _tensor(e, name, blob, end)
        if end > MAX_CONST_BYTES:  # ranges are ordered: end bounds the constant bytes read so far
            raise _Malformed(f"constants exceed {MAX_CONST_BYTES >> 20} MB")
    ops = []
    for o in _list(g["ops"], "ops", MAX_OPS):
        o = _dict(o, "op")
        ops.append(
            Op(
                _str(o["kind"], "op kind"),
                _str(o["name"], "op name"),
                [_str(n, "op input") for n in _list(o["inputs"], "op inputs")],
                [_str(n, "op output") for n in _list(o["outputs"], "op outputs")],
                _depth(_dict(o["attrs"], "op attrs"), "op attrs"),
            )
        )
    return Graph(
        _str(g["name"], "graph name"),
        tensors,
        ops,
        [_str(n, "graph input") for n in _list(g["inputs"], "graph inputs")],
        [_str(n, "graph output") for n in _list(g["outputs"], "graph outputs")],
        _depth(_dict(g["meta"], "meta"), "meta"),
    )


def _tensor(e: dict[str, Any], name: str, blob: memoryview, start: int) -> tuple[Tensor, int]:
    """The tensor of one header entry, and where the next constant's data may start."""
    dtype = _str(e["dtype"], "dtype")
    if dtype not in DTYPES:
        raise _Malformed(f"tensor '{name}' has unknown dtype {dtype}")
    shape = tuple(_int(d, "dimension") for d in _list(e["shape"], "shape", MAX_RANK))
    if any(d < 0 for d in shape) or math.prod(shape) > MAX_ELEMENTS:
        raise _Malformed(f"tensor '{name}' has an invalid shape {list(shape)}")
    quant = None
    if e.get("quant"):
        qd = _dict(e["quant"], "quant")
        scale = _list(qd["scale"], "scale", MAX_ELEMENTS)
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in scale):
            raise _Malformed(f"tensor '{name}' has a non-numeric scale")
        zp = [_int(z, "zero point") for z in _list(qd["zero_point"], "zero_point", MAX_ELEMENTS)]
        axis = qd["axis"] if qd["axis"] is None else _int(qd["axis"], "axis")
        with np.errstate(over="ignore"):  # an out-of-range scale becomes inf: validate names it
            quant = Quant(np.asarray(scale, dtype=np.float32), np.asarray(zp, np.int64), axis)
    arr = None
    if e.get("data"):
        rng = _dict(e["data"], "data")
        off, n = _int(rng["offset"], "data offset"), _int(rng["nbytes"], "data size")
        count = math.prod(shape)
        expected = int4.packed_bytes(count) if dtype == "int4" else count * DTYPES[dtype].itemsize
        if off < start or n != expected or off + n > len(blob):
            raise _Malformed(f"tensor '{name}' data range is invalid")
        arr = np.frombuffer(blob[off : off + n], dtype=DTYPES[dtype])
        arr = (int4.unpack(arr, count) if dtype == "int4" else arr).reshape(shape).copy()
        start = off + n
    return Tensor(name, shape, dtype, quant, arr), start


def save(graph: Graph, path: Path) -> None:
    Path(path).write_bytes(dumps(graph))


def load(path: Path) -> Graph:
    return loads(Path(path).read_bytes(), str(path))
