"""An assembled HLS design -> a Vitis HLS project: C++ sources, ROMs, testbench, Tcl script.

Like the MCU renderer, the output is deterministic (no timestamps, no absolute paths), so the
same model and options give byte-identical files.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from math import gcd
from typing import Any

import jinja2
import numpy as np

from codegen.hls.design import Assembly, Buf, Layer, Step, fifo_storage, memory_storage
from codegen.render import TEMPLATES
from edgekit import __version__
from edgekit.resources import resource_dir

# Files Vitis synthesises; the lint reads exactly these.
SYNTH_HEADER = "edgekit_hls.h"
SIM_HEADERS = ("ap_int.h", "hls_stream.h")
_PER_LINE = 16
_PRAGMA_INDENT = re.compile(r"^[ \t]+#pragma", re.M)


@dataclass
class TestVectors:
    """Golden samples for the testbench: inputs and the reference's outputs, in model order."""

    inputs: list[list[np.ndarray]]
    outputs: list[list[np.ndarray]]
    reference: str  # who produced the outputs, for comments and messages
    seed: int


@dataclass
class ConstArray:
    name: str
    ctype: str
    data: np.ndarray  # 2-D: rows are reuse rounds
    comment: str

    @property
    def dims(self) -> list[int]:
        return list(self.data.shape)

    @property
    def body(self) -> str:
        return _c_body(self.data)


def _literal(v: int) -> str:
    return "INT32_MIN" if v == -(1 << 31) else str(int(v))


def _c_body(data: np.ndarray) -> str:
    def row(values: np.ndarray, indent: str) -> str:
        items = [_literal(v) for v in values.reshape(-1).tolist()]
        lines = [", ".join(items[i : i + _PER_LINE]) for i in range(0, len(items), _PER_LINE)]
        return "{" + f",\n{indent}".join(lines) + "}"

    if data.ndim == 1:
        return row(data, "    ")
    return "{\n    " + ",\n    ".join(row(r, "     ") for r in data) + "\n}"


def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def _param(buf: Buf, io: str, var: str, is_input: bool) -> str:
    if io == "stream":
        return f"hls::stream<ek_word<{buf.value.word}> > &{var}"
    return f"{'const ' if is_input else ''}ap_int<8> {var}[{buf.value.size}]"


def _rounds_table(values: np.ndarray, rounds: int, per_round: int) -> np.ndarray:
    """Per-lane values laid out [round][lane in round], zero-padded past the last lane."""
    flat = np.zeros(rounds * per_round, dtype=np.int64)
    flat[: values.size] = values.reshape(-1)
    return flat.reshape(rounds, per_round)


def _rom_pragmas(name: str, data: np.ndarray, bits: int, constant: bool) -> list[str]:
    """Constants of a fully parallel datapath become logic; otherwise a ROM word per round."""
    if constant or data.shape[0] == 1:
        return [f"ARRAY_PARTITION variable={name} complete dim=0"]
    storage = memory_storage(data.shape[1] * bits, data.shape[0])
    return [
        f"ARRAY_RESHAPE variable={name} complete dim=2",
        f"BIND_STORAGE variable={name} type=rom_1p impl={storage.impl}",
    ]


class _LayerRenderer:
    def __init__(self, asm: Assembly, env: jinja2.Environment) -> None:
        self.asm = asm
        self.env = env
        self.io = asm.design.io
        self.arrays: list[ConstArray] = []

    def render(self, index: int, step: Step) -> str:
        layer = step.layer
        ins = [_param(b, self.io, f"x{k}", True) for k, b in enumerate(step.ins)]
        outs = [_param(b, self.io, f"y{k}", False) for k, b in enumerate(step.outs)]
        ctx: dict[str, Any] = {
            "L": layer,
            "p": layer.p,
            "fn": step.fn,
            "io": self.io,
            "sched": self.asm.schedule,
            "params": ", ".join(ins + outs),
            "R": layer.reuse,
            "UB": layer.ub,
            "const_pragmas": [],
            "c": {},
        }
        kind = layer.kind
        if kind == "fc":
            ctx.update(RL=layer.rounds_lanes, RK=layer.rounds_depth, KB=layer.kb)
            self._weights(index, layer, ctx)
            return self.env.get_template("hls/fc.cpp.j2").render(**ctx)
        if kind in ("conv", "dwconv", "maxpool", "avgpool"):
            ctx.update(TB=layer.tb, MEM_II=layer.mem_ii)
            if layer.has_weights:
                self._weights(index, layer, ctx)
            lb = memory_storage(layer.p["IC"] * 8, layer.p["NR"] * layer.p["IW"])
            ctx["lb_storage"] = _two_read_ram(lb.impl)
            return self.env.get_template("hls/window.cpp.j2").render(**ctx)
        if kind == "gpool":
            return self.env.get_template("hls/gpool.cpp.j2").render(**ctx)
        if kind == "eltwise":
            self._eltwise_consts(index, layer, ctx)
            ctx.update(size=step.outs[0].value.size, n_in=len(step.ins))
            return self.env.get_template("hls/eltwise.cpp.j2").render(**ctx)
        if kind == "softmax":
            return self.env.get_template("hls/softmax.cpp.j2").render(**ctx)
        if kind == "repack":
            win, wout = step.ins[0].value.word, step.outs[0].value.word
            size = step.ins[0].value.size
            ctx.update(size=size, win=win, wout=wout, banks=min(size, win * wout // gcd(win, wout)))
            return self.env.get_template("hls/repack.cpp.j2").render(**ctx)
        if kind == "fork":
            v = step.ins[0].value
            ctx.update(size=v.size, word=v.word, n_out=len(step.outs))
            return self.env.get_template("hls/fork.cpp.j2").render(**ctx)
        raise AssertionError(f"no template for {kind}")

    def _add(self, name: str, ctype: str, data: np.ndarray, comment: str) -> str:
        self.arrays.append(ConstArray(name, ctype, data, comment))
        return name

    def _weights(self, index: int, layer: Layer, ctx: dict[str, Any]) -> None:
        """Weight ROM [rounds][products a round] and per-lane bias / multiplier / shift."""
        p = layer.p
        pre = f"L{index}"
        ub = layer.ub
        rl = layer.rounds_lanes
        w = p["weights"]
        if layer.kind == "fc":
            rk, kb = layer.rounds_depth, layer.kb
            padded = np.zeros((rl * ub, rk * kb), dtype=np.int64)
            padded[: w.shape[0], : w.shape[1]] = w
            table = padded.reshape(rl, ub, rk, kb).transpose(0, 2, 1, 3).reshape(rl * rk, ub * kb)
        else:
            table = _rounds_table(w, rl, ub * w.shape[1])
        ctype = "int8_t" if p["wbits"] == 8 else "int16_t"
        constant = layer.constant_weights
        c: dict[str, str] = {}
        c["w"] = self._add(f"{pre}_w", ctype, table, f"{layer.name}: weights, {p['wbits']} bit")
        pragmas = _rom_pragmas(c["w"], table, p["wbits"], constant)
        rl_var = "rl" if layer.kind == "fc" else "r"
        row = rl_var if rl > 1 else "0"
        bias = _rounds_table(p["bias"], rl, ub)
        c["bias"] = self._add(f"{pre}_bias", "int32_t", bias, f"{layer.name}: bias (int32)")
        pragmas += _rom_pragmas(c["bias"], bias, 32, constant)
        ctx["bias"] = f"{c['bias']}[{row}][j]"
        if p["per_channel"]:
            mult = _rounds_table(p["mult"], rl, ub)
            shift = _rounds_table(p["shift"], rl, ub)
            c["mult"] = self._add(f"{pre}_mult", "int32_t", mult, f"{layer.name}: multipliers")
            c["shift"] = self._add(f"{pre}_shift", "int8_t", shift, f"{layer.name}: shifts")
            pragmas += _rom_pragmas(c["mult"], mult, 32, constant)
            pragmas += _rom_pragmas(c["shift"], shift, 6, constant)
            ctx["mult"] = f"{c['mult']}[{row}][j]"
            ctx["shift"] = f"{c['shift']}[{row}][j]"
        else:
            ctx["mult"] = str(int(p["mult"][0]))
            ctx["shift"] = str(int(p["shift"][0]))
        ctx["c"] = c
        ctx["const_pragmas"] = pragmas

    def _eltwise_consts(self, index: int, layer: Layer, ctx: dict[str, Any]) -> None:
        c: dict[str, str] = {}
        arg_of: dict[int, int] = {}
        pragmas: list[str] = []
        n = 0
        for k, data in enumerate(layer.p["consts"]):
            if data is None:
                arg_of[k] = n
                n += 1
                continue
            name = self._add(f"L{index}_c{k}", "int8_t", data.reshape(1, -1),
                             f"{layer.name}: constant operand {k}")
            c[f"c{k}"] = name + "[0]"
            if data.size > layer.p["word"]:
                pragmas.append(
                    f"ARRAY_RESHAPE variable={name} cyclic factor={layer.p['word']} dim=2"
                )
            else:
                pragmas.append(f"ARRAY_PARTITION variable={name} complete dim=0")
        ctx.update(c=c, arg_of=arg_of, const_pragmas=pragmas)


@dataclass
class _Decl:
    text: str
    pragmas: list[str]


def _top(asm: Assembly) -> tuple[str, list[str], list[_Decl], list[str]]:
    io = asm.design.io
    params = [_param(b, io, b.var, True) for b in asm.top_inputs]
    params += [_param(b, io, b.var, False) for b in asm.top_outputs]
    pragmas: list[str] = []
    if io == "stream":
        pragmas += [f"INTERFACE mode=axis port={b.var}" for b in asm.top_inputs + asm.top_outputs]
    else:
        for b in asm.top_inputs + asm.top_outputs:
            pragmas += _array_pragmas(b)
    if asm.schedule == "pipeline":
        pragmas.append("PIPELINE II=1")
    else:
        pragmas += ["INTERFACE mode=ap_ctrl_chain port=return", "DATAFLOW"]
    decls = []
    for b in asm.locals:
        v = b.value
        if io == "stream":
            extra = []
            storage = fifo_storage(v.word * 8, b.depth)
            if storage.impl != "reg":
                extra.append(f"BIND_STORAGE variable={b.var} type=fifo impl={storage.impl}")
            decls.append(
                _Decl(
                    f'hls::stream<ek_word<{v.word}> > {b.var}("{b.var}");',
                    [f"STREAM variable={b.var} depth={b.depth}", *extra],
                )
            )
        else:
            decls.append(_Decl(f"ap_int<8> {b.var}[{v.size}];", _array_pragmas(b)))
    calls = [
        f"{s.fn}({', '.join(b.var for b in s.ins + s.outs)})" for s in asm.steps
    ]
    return ", ".join(params), pragmas, decls, calls


def _two_read_ram(impl: str) -> str:
    """BIND_STORAGE type/impl of a memory read twice a cycle (window taps).

    Block RAM is true dual port; distributed RAM has one read-write and one read-only port,
    which serves the same two reads.
    """
    return "type=ram_t2p impl=bram" if impl == "bram" else "type=ram_2p impl=lutram"


def _array_pragmas(b: Buf) -> list[str]:
    """One memory word per tensor word, so a pixel's channels (or a dense row) are one access."""
    v = b.value
    if v.words == 1:
        return [f"ARRAY_PARTITION variable={b.var} complete dim=1"]
    out = [f"ARRAY_RESHAPE variable={b.var} cyclic factor={v.word} dim=1"]
    if b.role == "local":
        storage = memory_storage(v.word * 8, v.words)
        out.append(f"BIND_STORAGE variable={b.var} {_two_read_ram(storage.impl)}")
    return out


def _vectors(asm: Assembly, tv: TestVectors) -> list[dict[str, Any]]:
    arrays = []
    name = asm.design.name
    for k, b in enumerate(asm.top_inputs):
        data = np.stack([np.asarray(s[k]).reshape(-1) for s in tv.inputs])
        arrays.append({"name": f"{name}_tb_{b.var}", "size": b.value.size, "body": _c_body(data)})
    for k, b in enumerate(asm.top_outputs):
        data = np.stack([np.asarray(s[k]).reshape(-1) for s in tv.outputs])
        arrays.append({"name": f"{name}_tb_{b.var}", "size": b.value.size, "body": _c_body(data)})
    return arrays


def project_context(
    name: str, part: str, clock_mhz: float, io: str, source_sha256: str
) -> dict[str, Any]:
    """What every project file's header and run_hls.tcl say: names, part, clock, I/O style."""
    return {
        "name": name,
        "NAME": name.upper(),
        "version": __version__,
        "sha": source_sha256[:16] or "unknown",
        "part": part,
        "clock": f"{clock_mhz:g}",
        "period": f"{1e3 / clock_mhz:.4g}",
        "io": io,
    }


def render_project(
    asm: Assembly,
    part: str,
    clock_mhz: float,
    vectors: TestVectors,
    source_sha256: str = "",
) -> dict[str, str]:
    """Every file of the project, keyed by its path relative to the project folder."""
    env = _env()
    design = asm.design
    name = design.name
    layers = _LayerRenderer(asm, env)
    # pragmas start at column 0 wherever a macro's output was indented, as vendor examples do
    layer_code = [
        _PRAGMA_INDENT.sub("#pragma", layers.render(i, s)) for i, s in enumerate(asm.steps)
    ]
    top_params, top_pragmas, decls, calls = _top(asm)
    graph = design.graph
    quant = {}
    shapes = {}
    for t in graph.inputs + graph.outputs:
        tensor = graph.tensor(t)
        q = tensor.quant
        quant[t] = (f"{q.scalar_scale():.9g}", q.scalar_zero_point()) if q else ("1", 0)
        shapes[t] = list(tensor.shape)
    ctx: dict[str, Any] = {
        **project_context(name, part, clock_mhz, design.io, source_sha256),
        "schedule": asm.schedule,
        "inputs": asm.top_inputs,
        "outputs": asm.top_outputs,
        "quant": quant,
        "shapes": shapes,
        "top_params": top_params,
        "top_pragmas": top_pragmas,
        "local_decls": decls,
        "calls": calls,
        "layer_code": layer_code,
        "arrays": layers.arrays,
        "reference": vectors.reference,
        "seed": vectors.seed,
        "samples": len(vectors.inputs),
    }
    files = {
        f"{name}.h": env.get_template("hls/model.h.j2").render(**ctx),
        f"{name}.cpp": env.get_template("hls/model.cpp.j2").render(**ctx),
        f"{name}_weights.h": env.get_template("hls/weights.h.j2").render(**ctx),
        f"{name}_tb.cpp": env.get_template("hls/tb.cpp.j2").render(**ctx),
        f"{name}_tb_data.h": env.get_template("hls/tb_data.h.j2").render(
            **{**ctx, "arrays": _vectors(asm, vectors)}
        ),
        "run_hls.tcl": env.get_template("hls/run_hls.tcl.j2").render(**ctx),
        f"csim/{name}_csim_api.cpp": env.get_template("hls/csim_api.cpp.j2").render(**ctx),
        "csim/Makefile": env.get_template("hls/Makefile.j2").render(**ctx),
    }
    hls_dir = resource_dir("csrc") / "hls"
    files[SYNTH_HEADER] = (hls_dir / SYNTH_HEADER).read_text()
    for header in SIM_HEADERS:
        files[f"csim/include/{header}"] = (hls_dir / "sim" / header).read_text()
    return files


def synth_files(name: str) -> list[str]:
    """The project files a synthesis tool reads (and the lint checks)."""
    return [f"{name}.h", f"{name}.cpp", f"{name}_weights.h", SYNTH_HEADER]
