"""Bounds-check a TFLite flatbuffer before the schema object API unpacks it.

The flatbuffers Python runtime trusts every offset it reads. A hostile file can point thousands of
vector entries at one big sub-table or string, and the object API then copies it once per
reference: a 1 MB file can ask for gigabytes and minutes. This walk visits exactly the fields the
object API visits, checks every offset, length and table against the file size, and counts what
unpacking would cost, so a file is unpacked only when that cost is bounded.

The field layout is read from the generated accessor classes (each accessor's vtable slot and
whether it reads a table, a vector, a string or a union), so it follows whatever schema version
`ai_edge_litert` ships instead of a hand-copied table that would drift.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import cache
from types import ModuleType
from typing import Any

import flatbuffers.number_types as fb_numbers
from ai_edge_litert import schema_py_generated as schema

# Unpacking cost limits. A large MCU model has a few thousand tables; the C++ verifier's default
# table limit is 1,000,000 but Python objects are ~50x larger than its bookkeeping.
MAX_TABLES = 1 << 17
MAX_DEPTH = 32
# Shared strings and vectors are copied or scanned once per reference, so the bytes reachable
# through all references together may exceed the file only by this slack.
APPARENT_SLACK_BYTES = 1 << 20

_U32 = struct.Struct("<I")
_I32 = struct.Struct("<i")
_U16 = struct.Struct("<H")
_U16_PAIR = struct.Struct("<HH")

# Union fields whose enum is not named after the accessor (flatc names it after the union type).
_UNION_ENUMS = {
    "Details": "QuantizationDetails",
    "ArraySegments": "SparseIndexVector",
    "ArrayIndices": "SparseIndexVector",
}
_SKIP_SUFFIXES = ("Length", "IsNone", "AsNumpy")


class FlatbufferError(ValueError):
    """The file is not a well-formed flatbuffer of the expected schema, or too costly to unpack."""


@dataclass(frozen=True)
class _Field:
    name: str
    voffset: int
    kind: str  # table | string | vector | table_vector | string_vector | union
    child: type | None = None  # table class for table and table_vector
    width: int = 1  # element bytes for vector
    members: tuple[tuple[int, type], ...] = ()  # union: type value -> table class


def _first_int(consts: tuple[Any, ...]) -> int | None:
    return next((c for c in consts if isinstance(c, int) and not isinstance(c, bool)), None)


def _table_class(module: ModuleType, names: tuple[str, ...]) -> type | None:
    for n in names:
        cls = getattr(module, n, None)
        if isinstance(cls, type) and hasattr(cls, "Init") and hasattr(cls, "GetRootAs"):
            return cls
    return None


def _union_members(module: ModuleType, accessor: str) -> tuple[tuple[int, type], ...] | None:
    enum = getattr(module, _UNION_ENUMS.get(accessor, accessor), None)
    if not isinstance(enum, type):
        return None
    members = []
    for key, value in vars(enum).items():
        if key.startswith("_") or key == "NONE" or not isinstance(value, int):
            continue
        cls = _table_class(module, (key,))
        if cls is None:
            return None
        members.append((value, cls))
    return tuple(sorted(members, key=lambda m: m[0]))


def _classify(module: ModuleType, name: str, fn: Any) -> _Field | None:
    code = fn.__code__
    names = code.co_names
    voffset = _first_int(code.co_consts)
    if "Offset" not in names or voffset is None:
        return None
    if "Union" in names:
        members = _union_members(module, name)
        if members is None:
            raise FlatbufferError(f"cannot resolve the members of union field {name}")
        return _Field(name, voffset, "union", members=members)
    if "Vector" in names or "GetVectorAsNumpy" in names:
        if "String" in names:
            return _Field(name, voffset, "string_vector")
        if "Indirect" in names:
            return _Field(name, voffset, "table_vector", _table_class(module, names))
        flags = next((n for n in names if n.endswith("Flags") and n != "UOffsetTFlags"), None)
        if flags is None:
            # a vector of structs: its element size is the multiplier constant
            return _Field(name, voffset, "vector", width=max(1, int(code.co_consts[-1])))
        return _Field(name, voffset, "vector", width=getattr(fb_numbers, flags).bytewidth)
    if "String" in names:
        return _Field(name, voffset, "string")
    if "Indirect" in names:
        return _Field(name, voffset, "table", _table_class(module, names))
    return None  # a scalar or an inline struct: read in place, nothing to follow


@cache
def table_layout(cls: type) -> tuple[_Field, ...]:
    """The offset-carrying fields of a generated table class, in vtable order."""
    module = schema
    fields = []
    for name, fn in vars(cls).items():
        if (
            name.startswith(("_", "GetRootAs", "Init"))
            or name.endswith(_SKIP_SUFFIXES)
            or not callable(fn)
            or not hasattr(fn, "__code__")
        ):
            continue
        field = _classify(module, name, fn)
        if field is not None:
            if field.kind in ("table", "table_vector") and field.child is None:
                raise FlatbufferError(f"cannot resolve the table type of {cls.__name__}.{name}")
            fields.append(field)
    return tuple(sorted(fields, key=lambda f: f.voffset))


class _Walker:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.size = len(data)
        self.tables = 0
        self.apparent = 0
        self.budget = 2 * self.size + APPARENT_SLACK_BYTES

    def fail(self, what: str) -> FlatbufferError:
        return FlatbufferError(what)

    def u32(self, pos: int, what: str) -> int:
        if pos < 0 or pos + 4 > self.size:
            raise self.fail(f"{what} at byte {pos} lies outside the file")
        return int(_U32.unpack_from(self.data, pos)[0])

    def deref(self, pos: int, what: str) -> int:
        return pos + self.u32(pos, what)

    def span(self, start: int, nbytes: int, what: str) -> None:
        if start < 0 or nbytes < 0 or start + nbytes > self.size:
            raise self.fail(f"{what} ({nbytes} bytes at {start}) runs past the end of the file")
        self.apparent += nbytes
        if self.apparent > self.budget:
            raise self.fail(
                "the file refers to the same data many times over: unpacking it would need "
                f"more than {self.budget} bytes"
            )

    def table(self, pos: int, cls: type, depth: int) -> None:
        name = cls.__name__
        self.tables += 1
        if self.tables > MAX_TABLES:
            raise self.fail(f"more than {MAX_TABLES} tables (or tables referenced many times)")
        if depth > MAX_DEPTH:
            raise self.fail(f"tables nested deeper than {MAX_DEPTH}")
        if pos < 0 or pos + 4 > self.size:
            raise self.fail(f"{name} table at byte {pos} lies outside the file")
        vtable = pos - int(_I32.unpack_from(self.data, pos)[0])
        if vtable < 0 or vtable + 4 > self.size:
            raise self.fail(f"{name} table at byte {pos} has its vtable outside the file")
        vsize, tsize = (int(v) for v in _U16_PAIR.unpack_from(self.data, vtable))
        if vsize < 4 or vsize % 2 or vtable + vsize > self.size or pos + max(tsize, 4) > self.size:
            raise self.fail(f"{name} table at byte {pos} has an inconsistent vtable")
        for field in table_layout(cls):
            rel = self.slot(vtable, vsize, field.voffset)
            if rel == 0:
                continue
            what = f"{name}.{field.name}"
            if rel + 4 > tsize:
                raise self.fail(f"{what} points outside its table")
            if field.kind == "union":
                # flatc stores a union's type in the slot just before its value
                type_rel = self.slot(vtable, vsize, field.voffset - 2)
                if type_rel + 1 > tsize:
                    raise self.fail(f"{what} type points outside its table")
                member = dict(field.members).get(self.data[pos + type_rel] if type_rel else 0)
                if member is not None:
                    self.table(self.deref(pos + rel, what), member, depth + 1)
            else:
                self.follow(self.deref(pos + rel, what), field, what, depth)

    def slot(self, vtable: int, vsize: int, voffset: int) -> int:
        if voffset + 2 > vsize:
            return 0
        return int(_U16.unpack_from(self.data, vtable + voffset)[0])

    def follow(self, target: int, f: _Field, what: str, depth: int) -> None:
        if f.kind == "table":
            assert f.child is not None
            self.table(target, f.child, depth + 1)
            return
        n = self.u32(target, what)
        if f.kind in ("string", "vector"):
            self.span(target + 4, n * f.width, what)
            return
        self.span(target + 4, n * 4, what)
        for i in range(n):
            elem = self.deref(target + 4 + 4 * i, f"{what}[{i}]")
            if f.kind == "string_vector":
                self.span(elem + 4, self.u32(elem, f"{what}[{i}]"), f"{what}[{i}]")
            else:
                assert f.child is not None
                self.table(elem, f.child, depth + 1)


def check_tflite(data: bytes) -> None:
    """Raise FlatbufferError unless `data` can be unpacked by ModelT.InitFromObj at bounded cost."""
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise FlatbufferError("no TFL3 file identifier")
    walker = _Walker(data)
    walker.table(walker.u32(0, "root offset"), schema.Model, 0)
