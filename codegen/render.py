"""Lowered IR + memory plan -> C sources, through jinja templates.

Output is deterministic: constants are emitted in op order, names come from op positions, and no
timestamps or absolute paths are written, so identical inputs give byte-identical files.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
import numpy as np

from codegen import kernels
from edgekit import __version__
from edgekit.ir import int4
from edgekit.ir.graph import C_TYPES, Graph, Op, Tensor
from edgekit.passes.memory import MemoryPlan
from edgekit.resources import resource_dir

TEMPLATES = Path(__file__).resolve().parent / "templates"

# Every csrc/edgekit_*.h is copied next to the model, so generated code is self-contained.
RUNTIME_HEADER_GLOB = "edgekit_*.h"


@dataclass
class Layer:
    index: int
    op: Op
    fn: str
    variant: kernels.KernelVariant
    code: str
    macs: int
    noop: bool = False  # storage-only op (a reshape sharing its input's bytes): nothing to run


@dataclass
class GeneratedModel:
    name: str
    files: dict[str, str]
    layers: list[Layer]
    consts: dict[str, str] = field(default_factory=dict)  # tensor name -> C identifier


# C99 guarantees 63 significant characters in internal identifiers; longer names are cut and
# keep a hash of the full text so that distinct names stay distinct.
C_IDENT_MAX = 63
_STD_HEADERS = {
    "assert",
    "complex",
    "ctype",
    "errno",
    "fenv",
    "float",
    "inttypes",
    "iso646",
    "limits",
    "locale",
    "math",
    "setjmp",
    "signal",
    "stdarg",
    "stdbool",
    "stddef",
    "stdint",
    "stdio",
    "stdlib",
    "string",
    "tgmath",
    "time",
    "wchar",
    "wctype",
}


def c_ident(text: str) -> str:
    out = re.sub(r"[^0-9a-zA-Z_]", "_", text)
    out = re.sub(r"_+", "_", out).strip("_") or "x"
    # a leading underscore would make a file-scope name reserved (C99 7.1.3)
    out = out if not out[0].isdigit() else "m_" + out
    if len(out) > C_IDENT_MAX:
        digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]
        out = out[: C_IDENT_MAX - 9].rstrip("_") + "_" + digest
    return out


@cache
def _included_headers() -> frozenset[str]:
    """Stems of every header generated code includes: a model file must not shadow one."""
    sources = [*TEMPLATES.rglob("*.j2"), *resource_dir("csrc").glob("*.h")]
    found = {m for f in sources for m in re.findall(r'#include\s*[<"](\w+)\.h[>"]', f.read_text())}
    return frozenset(found | _STD_HEADERS)


def model_ident(text: str) -> str:
    """The model's C prefix and file stem: an identifier that collides with no edgekit name.

    `<name>.h` must not shadow a header the code includes (a model called "string" would
    replace <string.h> for `-I`), and `<name>_arena` must not meet the model's own `ek_` statics.
    """
    name = c_ident(text).lower()
    reserved = name == "ek" or name.startswith(("ek_", "edgekit", "harness"))
    if reserved or name in _included_headers():
        name = c_ident("m_" + name)
    return name


def c_comment(text: object, limit: int = 120) -> str:
    """Text safe inside a /* */ comment: printable ASCII, no comment delimiters, no newlines."""
    s = str(text).encode("ascii", "backslashreplace").decode("ascii")
    s = "".join(c if " " <= c <= "~" else f"\\x{ord(c):02x}" for c in s)
    s = s.replace("*/", "*\\/").replace("/*", "/\\*").replace("??", "?\\?")
    return s if len(s) <= limit else s[: limit - 3] + "..."


def c_string(text: object, limit: int = 255) -> str:
    """A C99 string literal holding text's UTF-8 bytes (at most `limit`), every byte escaped
    that could end the literal, start an escape or a trigraph, or is not printable ASCII."""
    out = []
    for b in str(text).encode("utf-8", "backslashreplace")[:limit]:
        c = chr(b)
        if c in '"\\?':
            out.append("\\" + c)
        elif 32 <= b < 127:
            out.append(c)
        else:
            out.append(f"\\{b:03o}")  # three digits: the next character cannot join it
    return '"' + "".join(out) + '"'


def _c_literal(value: Any, dtype: str) -> str:
    if dtype == "float32":
        f = float(np.float32(value))
        return f"{f!r}f" if np.isfinite(f) else "0.0f"
    v = int(value)
    if dtype == "int32" and v == -(1 << 31):
        return "INT32_MIN"
    return str(v)


def _array_body(data: np.ndarray, dtype: str, per_line: int) -> str:
    flat = data.reshape(-1)
    if dtype == "float16":
        flat = flat.view(np.uint16)
    items = [_c_literal(v, dtype if dtype != "float16" else "uint16") for v in flat]
    lines = [", ".join(items[i : i + per_line]) for i in range(0, len(items), per_line)]
    return ",\n    ".join(lines)


class _Env:
    def __init__(self) -> None:
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(TEMPLATES)),
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )
        # names from model files reach comments and string literals only through these
        self.env.filters["c_comment"] = c_comment
        self.env.filters["c_string"] = c_string

    def render(self, template: str, **ctx: Any) -> str:
        return self.env.get_template(template).render(**ctx)


def op_macs(graph: Graph, op: Op) -> int:
    """Multiply-accumulates of one op, for reports and MACs-per-instruction figures."""
    if op.kind == "conv2d":
        w = graph.tensor(op.inputs[1])
        y = graph.tensor(op.outputs[0])
        return y.size * w.shape[1] * w.shape[2] * w.shape[3]
    if op.kind == "depthwise_conv2d":
        w = graph.tensor(op.inputs[1])
        return graph.tensor(op.outputs[0]).size * w.shape[1] * w.shape[2]
    if op.kind == "fully_connected":
        w = graph.tensor(op.inputs[1])
        return graph.tensor(op.outputs[0]).size * w.shape[1]
    if op.kind == "transpose_conv":
        # only the (input pixel, tap) pairs that land inside the cropped output multiply
        x, w, y = (graph.tensor(n) for n in (op.inputs[0], op.inputs[1], op.outputs[0]))
        (sh, sw), (pt, pl) = op.attrs["stride"], op.attrs["pad"]
        def reach(size: int, k: int, s: int, p: int, out: int) -> int:
            return sum(0 <= i * s - p + j < out for i in range(size) for j in range(k))

        rows = reach(x.shape[1], w.shape[1], sh, pt, y.shape[1])
        cols = reach(x.shape[2], w.shape[2], sw, pl, y.shape[2])
        return x.shape[0] * rows * cols * w.shape[3] * w.shape[0]
    return 0


class ConstantAsActivation(ValueError):
    """An op's kernel reads a constant tensor from the arena, where only activations live."""

    def __init__(self, op: Op, tensor: str) -> None:
        self.op, self.tensor = op, tensor
        super().__init__(f"op {op.name} ({op.kind}) reads the constant '{tensor}' as an activation")


def render_model(
    graph: Graph,
    plan: MemoryPlan,
    families: list[str] | None = None,
    capabilities: set[str] | None = None,
) -> GeneratedModel:
    """Render model.h, model.c, <name>_weights.h and harness_model.h for a lowered graph."""
    env = _Env()
    name = model_ident(graph.name)
    families = families or ["portable"]
    capabilities = capabilities or set()

    consts: dict[str, str] = {}
    const_order: list[Tensor] = []
    used: set[str] = set()

    def const(tname: str, role: str, op: Op) -> str:
        if tname not in consts:
            ident = c_ident(f"{op.name}_{role}")
            base, k = ident, 1
            while ident in used:
                k += 1
                ident = f"{base}_{k}"
            used.add(ident)
            consts[tname] = ident
            const_order.append(graph.tensor(tname))
        return consts[tname]

    def buf(tname: str) -> str:
        t = graph.tensor(tname)
        if tname not in plan.offsets:
            # a mis-wired file can hand a kernel a constant where it addresses an activation;
            # templates call buf only while the loop below renders `op`
            raise ConstantAsActivation(op, tname)
        return f"(({C_TYPES[t.dtype]} *)(ek_arena + {plan.offsets[tname]}))"

    layers: list[Layer] = []
    for i, op in enumerate(graph.ops):
        if "kernel" not in op.attrs:
            kernels.assign_kernels(graph, families, capabilities)
        variant = kernels.variant_of(op)
        q = dict(op.attrs.get("q", {}))
        c: dict[str, str] = {}
        for role, tname in (("weights", op.inputs[1] if len(op.inputs) > 1 else ""),):
            if (
                tname
                and graph.tensor(tname).is_const
                and op.kind in ("conv2d", "depthwise_conv2d", "fully_connected")
            ):
                c[role] = const(tname, role, op)
        for role, v in q.items():
            # every lowered or kernel-prepared constant the op names becomes a const array
            if isinstance(v, str) and v in graph.tensors and graph.tensor(v).is_const:
                c[role] = const(v, role, op)
        fn = f"layer_{i}_{op.kind}"
        ins = [graph.tensor(t) if t else None for t in op.inputs]
        outs = [graph.tensor(t) for t in op.outputs]
        code = env.render(
            variant.template,
            fn=fn,
            op=op,
            q=q,
            c=c,
            ins=ins,
            outs=outs,
            x=ins[0],
            y=outs[0],
            buf=buf,
            scratch=plan.scratch.get(op.name),
        )
        out_at = plan.offsets[op.outputs[0]]
        noop = op.kind == "reshape" and plan.offsets.get(op.inputs[0]) == out_at
        layers.append(Layer(i, op, fn, variant, "" if noop else code, op_macs(graph, op), noop))

    def io_info(tnames: list[str]) -> list[dict[str, Any]]:
        infos = []
        for tname in tnames:
            t = graph.tensor(tname)
            s = t.quant.scalar_scale() if t.quant else 0.0
            z = t.quant.scalar_zero_point() if t.quant else 0
            infos.append(
                {
                    "name": tname,
                    "tensor": t,
                    "ctype": C_TYPES[t.dtype],
                    "offset": plan.offsets[tname],
                    "scale": _c_literal(s, "float32"),
                    "zero_point": z,
                    "shape": list(t.shape),
                    "dtype": t.dtype,
                }
            )
        return infos

    # A kernel variant may replace a lowered constant with its own layout or fold it into the
    # code (DSP requantisation inline), so only arrays some layer still names are emitted.
    code_text = "\n".join(layer.code for layer in layers)
    named = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", code_text))
    const_order = [t for t in const_order if consts[t.name] in named]
    consts = {t.name: consts[t.name] for t in const_order}

    const_blocks = []
    for t in const_order:
        assert t.data is not None
        per_line = 16 if t.dtype in ("int8", "uint8", "int4") else 8
        # int4 constants are emitted packed, two per byte (kernels unpack them)
        data, dtype = (int4.pack(t.data), "int8") if t.dtype == "int4" else (t.data, t.dtype)
        const_blocks.append(
            {
                "ident": consts[t.name],
                "ctype": C_TYPES[t.dtype],
                "count": data.size,
                "body": _array_body(data, dtype, per_line),
                "shape": list(t.shape),
                "source": t.name,
            }
        )

    ctx = {
        "name": name,
        "NAME": name.upper(),
        "version": __version__,
        "graph": graph,
        "plan": plan,
        "layers": layers,
        "active": [layer for layer in layers if not layer.noop],
        "inputs": io_info(graph.inputs),
        "outputs": io_info(graph.outputs),
        "consts": const_blocks,
        "total_macs": sum(layer.macs for layer in layers),
    }
    files = {
        f"{name}.h": env.render("model.h.j2", **ctx),
        f"{name}.c": env.render("model.c.j2", **ctx),
        f"{name}_weights.h": env.render("weights.h.j2", **ctx),
        "harness_model.h": env.render("harness_model.h.j2", **ctx),
    }
    # Ship only the runtime headers the generated files include, directly or through another.
    runtime = {
        h.name: h.read_text() for h in sorted(resource_dir("csrc").glob(RUNTIME_HEADER_GLOB))
    }
    pending = list(files.values())
    while pending:
        for inc in re.findall(r'#include\s*"([^"]+)"', pending.pop()):
            if inc in runtime and inc not in files:
                files[inc] = runtime[inc]
                pending.append(files[inc])
    return GeneratedModel(name, files, layers, consts)
