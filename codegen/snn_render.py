"""Spiking graph + activation plan + state plan -> C sources with a per-time-step API.

Writes <name>.h, <name>.c, <name>_weights.h and a harness_model.h that lets the unchanged
firmware main (csrc/harness/emu_main.c) run a fixed number of steps per sample. Output is
deterministic: constants in op order, names from op positions, no timestamps.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import numpy as np

from codegen import kernels
from codegen.render import GeneratedModel, Layer, c_ident
from edgekit import __version__
from edgekit.ir.graph import C_TYPES, Graph, Op
from edgekit.passes.memory import MemoryPlan
from edgekit.resources import resource_dir
from edgekit.snn import ops
from edgekit.snn.state import StatePlan

TEMPLATES = Path(__file__).resolve().parent / "templates"
RUNTIME_HEADERS = ("edgekit_fixedpoint.h", "edgekit_runtime.h")
DEBRUIJN = 0x077CB531


def _debruijn_table() -> list[int]:
    table = [0] * 32
    for b in range(32):
        table[((DEBRUIJN << b) & 0xFFFFFFFF) >> 27] = b
    return table


def _body(data: np.ndarray, per_line: int) -> str:
    items = [str(int(v)) for v in data.reshape(-1)]
    if data.dtype == np.int32:
        items = ["INT32_MIN" if v == str(-(1 << 31)) else v for v in items]
    lines = [", ".join(items[i : i + per_line]) for i in range(0, len(items), per_line)]
    return ",\n    ".join(lines)


@dataclass
class _Ctx:
    graph: Graph
    plan: MemoryPlan
    state: StatePlan
    consts: dict[str, str]
    blocks: list[dict[str, Any]]

    def const(self, tname: str, op: Op, role: str) -> str:
        if tname not in self.consts:
            t = self.graph.tensor(tname)
            assert t.data is not None
            ident = c_ident(f"{op.name}_{role}")
            self.consts[tname] = ident
            per_line = 16 if t.dtype in ("int8", "uint8") else 8
            self.blocks.append(
                {
                    "ident": ident,
                    "ctype": C_TYPES[t.dtype],
                    "count": max(t.size, 1),
                    "body": _body(t.data, per_line) if t.size else "0",
                    "shape": list(t.shape),
                    "source": tname,
                }
            )
        return self.consts[tname]


def _uniform(graph: Graph, tname: str) -> str | None:
    """The C literal of a constant whose elements are all equal (an immediate beats a load)."""
    if not tname:
        return None
    data = graph.tensor(tname).data
    assert data is not None
    if data.size == 0 or np.any(data != data.reshape(-1)[0]):
        return None
    v = int(data.reshape(-1)[0])
    return "INT32_MIN" if v == -(1 << 31) else f"INT32_C({v})"


def _decay_q(graph: Graph, tname: str) -> tuple[str, bool] | None:
    """(q, add v) of a uniform decay m for ek_snn_mulhr: q = 4 m below 2^29, else
    q = 4 (m - 2^30) with v added back (model.c.j2 derives both); None when not uniform."""
    if not tname or _uniform(graph, tname) is None:
        return None
    data = graph.tensor(tname).data
    assert data is not None
    m = int(data.reshape(-1)[0])
    hi = m >= 1 << (ops.DECAY_SHIFT - 1)
    q = 4 * (m - (1 << ops.DECAY_SHIFT)) if hi else 4 * m
    return ("INT32_MIN" if q == -(1 << 31) else f"INT32_C({q})"), hi


def _op_context(ctx: _Ctx, op: Op) -> dict[str, Any]:
    g, plan, state = ctx.graph, ctx.plan, ctx.state
    c: dict[str, Any] = {"op": op}
    if op.kind == ops.SYNAPSE:
        n_in, n_out = int(op.attrs["n_in"]), int(op.attrs["n_out"])
        c.update(
            N_IN=n_in,
            N_OUT=n_out,
            D=int(op.attrs["max_delay"]),
            ROWB=ops.packed_bytes(n_in),
            WORDS=(n_in + 31) // 32,
            in_off=plan.offsets[op.inputs[0]],
            cur_off=plan.offsets[op.outputs[0]],
        )
        if op.attrs.get("snn_kernel") == "dense":
            # only the dense kernel reads the matrices; the others their grouped copies
            c["weights"] = ctx.const(op.inputs[1], op, "weights")
            c["delays"] = ctx.const(op.inputs[2], op, "delays")
        c["paired"] = "pairs" in op.attrs.get("q", {})
        for role, tname in op.attrs.get("q", {}).items():
            c[role] = ctx.const(tname, op, role)
            c[f"{role}_t"] = C_TYPES[g.tensor(tname).dtype]
        for role, tname in op.attrs["state"].items():
            c[f"{role}_off"] = state.offsets[tname]
            c[f"{role}_t"] = C_TYPES[g.tensor(tname).dtype]
    else:
        n = int(op.attrs["n"])
        c.update(
            N=n,
            kind=op.kind,
            reset=op.attrs.get("reset", "zero"),
            saturate=bool(op.attrs.get("saturate", True)),
            spiking=op.kind != ops.LI,
            cur_off=plan.offsets[op.inputs[0]],
            out_off=plan.offsets[op.outputs[0]],
            mem_off=state.offsets[op.attrs["state"]["membrane"]],
            bias=ctx.const(op.inputs[1], op, "bias"),
            threshold=ctx.const(op.inputs[2], op, "threshold") if op.inputs[2] else "",
            decay=ctx.const(op.inputs[3], op, "decay") if op.inputs[3] else "",
            decay_c=_uniform(g, op.inputs[3]),
            decay_q=_decay_q(g, op.inputs[3]),
            threshold_c=_uniform(g, op.inputs[2]),
        )
        if op.kind == ops.CUBA:
            c.update(
                syn_off=state.offsets[op.attrs["state"]["synaptic"]],
                syn_decay=ctx.const(op.inputs[4], op, "syn_decay"),
                syn_decay_c=_uniform(g, op.inputs[4]),
                syn_bias=ctx.const(op.inputs[5], op, "syn_bias"),
            )
    return c


@functools.cache
def _env() -> jinja2.Environment:
    """One environment per process: jinja compiles each template once, not on every render
    (a fresh environment spent ~0.25 s of every compile_snn recompiling the same templates)."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render_snn(
    graph: Graph, plan: MemoryPlan, state: StatePlan, harness_steps: int = 64
) -> GeneratedModel:
    """Render the model; every snn_synapse op must already carry its kernel (see compile_snn)."""
    env = _env()
    name = c_ident(graph.name).lower()
    layers_ir = ops.layers(graph)
    ctx = _Ctx(graph, plan, state, {}, [])
    rendered: list[Layer] = []
    for i, op in enumerate(graph.ops):
        variant = kernels.variant_of(op)
        fn = f"op_{i}_{op.kind}"
        code = env.get_template(variant.template).render(fn=fn, **_op_context(ctx, op))
        rendered.append(Layer(i, op, fn, variant, code, 0))

    x_in = graph.inputs[0]
    y = graph.tensor(graph.outputs[0])
    n_in, n_out = layers_ir[0].n_in, layers_ir[-1].n_out
    spiking_out = layers_ir[-1].kind != ops.LI
    model = {
        "name": name,
        "NAME": name.upper(),
        "version": __version__,
        "graph": graph,
        "plan": plan,
        "state": state,
        "layers": rendered,
        "n_in": n_in,
        "n_out": n_out,
        "in_bytes": ops.io_bytes(n_in),
        "in_rowb": ops.packed_bytes(n_in),
        "in_mask": (1 << (n_in % 8)) - 1 if n_in % 8 else 0,
        "in_off": plan.offsets[x_in],
        "out_off": plan.offsets[y.name],
        "out_t": "uint8_t" if spiking_out else "int32_t",
        "out_count": ops.io_bytes(n_out) if spiking_out else n_out,
        "out_bytes": ops.io_bytes(n_out) if spiking_out else 4 * n_out,
        "spiking_out": spiking_out,
        "debruijn": DEBRUIJN,
        "debruijn_table": _debruijn_table(),
        "kernels": [str(layer.synapse.attrs.get("snn_kernel")) for layer in layers_ir],
        "steps": harness_steps,
        "harness_layers": [
            {
                "in_off": plan.offsets[layer.synapse.inputs[0]],
                "out_off": plan.offsets[layer.neuron.outputs[0]],
                "out_bytes": graph.tensor(layer.neuron.outputs[0]).nbytes,
                "first_op": 2 * layer.index,
            }
            for layer in layers_ir
        ],
    }
    model["consts"] = ctx.blocks
    model["max_layer_bytes"] = max(h["out_bytes"] for h in model["harness_layers"])
    files = {
        f"{name}.h": env.get_template("snn/model.h.j2").render(**model),
        f"{name}.c": env.get_template("snn/model.c.j2").render(**model),
        f"{name}_weights.h": env.get_template("snn/weights.h.j2").render(**model),
        "harness_model.h": env.get_template("snn/harness_model.h.j2").render(**model),
    }
    csrc = resource_dir("csrc")
    for header in RUNTIME_HEADERS:
        files[header] = (csrc / header).read_text()
    return GeneratedModel(name, files, rendered, dict(ctx.consts))
