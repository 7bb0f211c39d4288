"""The .ekir file: a versioned, self-describing serialisation of an IR graph.

Layout (docs/ir.md): magic b"EKIR", uint16 major, uint16 minor, uint32 header length, a UTF-8 JSON
header, zero padding to a 16-byte boundary, then the constant data blob. Each constant names its
byte range in the blob; floats are written with repr() of the float32 value widened to double, which
reads back to the identical float32, so a load/save round trip is byte-identical.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.ir.graph import DTYPES, Graph, Op, Quant, Tensor

MAGIC = b"EKIR"
VERSION = (1, 0)
_HEADER = struct.Struct("<4sHHI")
_ALIGN = 16
MAX_HEADER_BYTES = 64 << 20


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
            raw = np.ascontiguousarray(t.data, dtype=DTYPES[t.dtype]).tobytes()
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
    try:
        header = json.loads(data[_HEADER.size : _HEADER.size + hlen])
        g = header["graph"]
        start = _HEADER.size + hlen
        blob = data[start + ((-start) % _ALIGN) :]
        tensors: dict[str, Tensor] = {}
        for e in g["tensors"]:
            dtype = e["dtype"]
            if dtype not in DTYPES:
                raise bad(f"tensor '{e['name']}' has unknown dtype {dtype}")
            shape = tuple(int(d) for d in e["shape"])
            if any(d < 0 for d in shape):
                raise bad(f"tensor '{e['name']}' has a negative dimension")
            quant = None
            if e.get("quant"):
                qd = e["quant"]
                quant = Quant(
                    np.asarray(qd["scale"], dtype=np.float32),
                    np.asarray(qd["zero_point"], dtype=np.int64),
                    qd["axis"],
                )
            arr = None
            if e.get("data"):
                off, n = int(e["data"]["offset"]), int(e["data"]["nbytes"])
                expected = int(np.prod(shape, dtype=np.int64)) * DTYPES[dtype].itemsize
                if off < 0 or n != expected or off + n > len(blob):
                    raise bad(f"tensor '{e['name']}' data range is invalid")
                arr = np.frombuffer(blob[off : off + n], dtype=DTYPES[dtype]).reshape(shape).copy()
            tensors[e["name"]] = Tensor(e["name"], shape, dtype, quant, arr)
        ops = [
            Op(o["kind"], o["name"], list(o["inputs"]), list(o["outputs"]), o["attrs"])
            for o in g["ops"]
        ]
        graph = Graph(g["name"], tensors, ops, list(g["inputs"]), list(g["outputs"]), g["meta"])
        graph.validate()
    except EdgekitError:
        raise
    except (KeyError, TypeError, ValueError, json.JSONDecodeError) as exc:
        raise bad(f"malformed .ekir header ({type(exc).__name__}: {exc})") from None
    return graph


def save(graph: Graph, path: Path) -> None:
    Path(path).write_bytes(dumps(graph))


def load(path: Path) -> Graph:
    return loads(Path(path).read_bytes(), str(path))
