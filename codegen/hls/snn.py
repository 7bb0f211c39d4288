"""Spiking graphs -> a Vitis HLS project that runs one time step per call of its top function.

Each (snn_synapse, neuron) pair of the IR becomes one layer function holding its own state as
`static` arrays: the delay history of its input spikes, the membranes, and a count of the steps
since the last reset. The history is kept in one of two forms, chosen by the layer's reuse:

* reuse 1, `shift`: the last D input vectors in a shift register (registers, shifted once a
  step). Every synapse reads the bit of its own delay at a constant position, so the whole
  layer is one combinational step: gated constant weights summed by adder trees.
* reuse R = RL x D > 1, `ring`: a circular buffer of D rows of n_in bits in block or LUT RAM,
  one row written per step. The step runs RL x D cycles; in cycle (rl, d) it reads the row of
  delay d once and adds, for the RL-th group of ceil(n_out / RL) neurons, the weights whose
  delay is d. Weights and delays are ROM words per lane round.

The arithmetic is the spiking golden model's (edgekit/snn/golden.py): exact int32 currents,
the Q2.30 decay, a saturating int32 membrane, threshold and reset. A reset input restarts the
network from rest without clearing any memory: a row older than the steps since the reset
reads as no spike, and the first step after it takes 0 as the previous membrane.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from math import ceil
from typing import Any

import numpy as np

from codegen.hls.design import memory_storage
from codegen.hls.render import (
    SIM_HEADERS,
    SYNTH_HEADER,
    ConstArray,
    _c_body,
    _env,
    _rom_pragmas,
    project_context,
)
from edgekit.errors import EdgekitError
from edgekit.ir.graph import Graph
from edgekit.resources import resource_dir
from edgekit.snn import ops

_PRAGMA_INDENT = re.compile(r"^[ \t]+#pragma", re.M)
NEURON_NAME = {ops.LIF: "lif", ops.IF: "if", ops.LI: "li"}


@dataclass
class SnnLayer:
    """One synapse + neuron pair with its constants and its reuse."""

    index: int
    name: str
    kind: str  # snn_lif | snn_if | snn_li
    n_in: int
    n_out: int
    max_delay: int
    weights: np.ndarray  # int8 [n_out, n_in]
    delays: np.ndarray  # uint8 [n_out, n_in]
    bias: np.ndarray  # int32 [n_out]
    threshold: np.ndarray | None
    decay: np.ndarray | None
    reset: str
    reuse: int = 1
    cache: dict[str, Any] = field(default_factory=dict)

    @property
    def spiking(self) -> bool:
        return self.kind != ops.LI

    @property
    def storage(self) -> str:
        """How the delay history is held: `shift` (registers) or `ring` (RAM)."""
        return "shift" if self.reuse == 1 else "ring"

    def _lane_options(self) -> list[int]:
        n = self.n_out
        return sorted({ceil(n / ceil(n / r)) for r in range(1, n + 1)})

    def reuse_options(self) -> list[int]:
        """1 (shift register), then RL x D for every distinct number RL of lane rounds."""
        return sorted({1} | {rl * self.max_delay for rl in self._lane_options()})

    def set_reuse(self, requested: int) -> None:
        self.reuse = max(r for r in self.reuse_options() if r <= max(1, requested))

    @property
    def rounds_lanes(self) -> int:
        """RL: rounds over the neurons (1 in shift mode)."""
        return 1 if self.storage == "shift" else self.reuse // self.max_delay

    @property
    def ub(self) -> int:
        """Neurons updated per lane round."""
        return ceil(self.n_out / self.rounds_lanes)

    @property
    def acc_bits(self) -> int:
        """Bits of a current: every partial sum of int8 weights gated by spikes fits."""
        bound = int(np.abs(self.weights.astype(np.int64)).sum(axis=1).max(initial=0))
        return min(32, bound.bit_length() + 1)

    @property
    def age_bits(self) -> int:
        """Bits of the steps-since-reset counter, which saturates at D + 1."""
        return (self.max_delay + 1).bit_length()


@dataclass
class SnnDesign:
    name: str
    graph: Graph
    io: str
    layers: list[SnnLayer]

    @property
    def n_in(self) -> int:
        return self.layers[0].n_in

    @property
    def n_out(self) -> int:
        return self.layers[-1].n_out

    @property
    def spiking_out(self) -> bool:
        return self.layers[-1].spiking

    @property
    def schedule(self) -> str:
        """`pipeline` when every layer is a one-cycle shift-register layer, else `sequential`."""
        return "pipeline" if all(x.storage == "shift" for x in self.layers) else "sequential"


def build_snn_design(graph: Graph, name: str, io: str = "parallel") -> SnnDesign:
    """The HLS layers of a spiking graph; structural errors are EdgekitErrors from ops.layers."""
    if io not in ("parallel", "stream"):
        raise EdgekitError(f"unknown I/O style '{io}'", hint="use parallel or stream")
    layers = []
    for x in ops.layers(graph):
        if x.kind not in NEURON_NAME:
            raise EdgekitError(
                f"op {x.neuron.name}: {x.kind} neurons have no HLS template yet",
                hint="generate C for it with edgekit generate (the C kernels support it)",
            )
        layers.append(
            SnnLayer(
                x.index, x.neuron.name, x.kind, x.n_in, x.n_out, x.max_delay,
                x.weights.astype(np.int8), x.delays.astype(np.uint8), x.bias.astype(np.int32),
                None if x.threshold is None else x.threshold.astype(np.int32),
                None if x.decay is None else x.decay.astype(np.int32), x.reset,
            )
        )  # fmt: skip
    return SnnDesign(name, graph, io, layers)


# --- rendering ------------------------------------------------------------------------------


def _uniform(data: np.ndarray | None) -> str | None:
    """A literal for a per-neuron constant whose values are all equal (no ROM needed)."""
    if data is None or data.size == 0 or np.any(data != data.reshape(-1)[0]):
        return None
    v = int(data.reshape(-1)[0])
    return "INT32_MIN" if v == -(1 << 31) else str(v)


def _lanes(values: np.ndarray, rl: int, ub: int, per_lane: int = 1) -> np.ndarray:
    flat = np.zeros(rl * ub * per_lane, dtype=np.int64)
    flat[: values.size] = values.reshape(-1)
    return flat.reshape(rl, ub * per_lane)


class _SnnRenderer:
    def __init__(self, design: SnnDesign) -> None:
        self.design = design
        self.env = _env()
        self.arrays: list[ConstArray] = []

    def _add(self, name: str, ctype: str, data: np.ndarray, comment: str) -> str:
        self.arrays.append(ConstArray(name, ctype, data, comment))
        return name

    def layer(self, layer: SnnLayer, fn: str, in_t: str, out_t: str) -> str:
        pre = f"L{layer.index}"
        rl, ub = layer.rounds_lanes, layer.ub
        constant = layer.storage == "shift"
        w = self._add(f"{pre}_w", "int8_t", _lanes(layer.weights, rl, ub, layer.n_in),
                      f"{layer.name}: weights [lane round][neuron * {layer.n_in} + input]")
        d = self._add(f"{pre}_d", "uint8_t", _lanes(layer.delays, rl, ub, layer.n_in),
                      f"{layer.name}: delays in steps, 0..{layer.max_delay - 1}")
        pragmas = _rom_pragmas(w, self.arrays[-2].data, 8, constant)
        pragmas += _rom_pragmas(d, self.arrays[-1].data, 8, constant)
        row = "r" if rl > 1 else "0"
        lit: dict[str, str] = {}
        for role, data in (("bias", layer.bias), ("thr", layer.threshold),
                           ("decay", layer.decay)):
            if data is None:
                continue
            u = _uniform(data)
            if u is not None:
                lit[role] = u
                continue
            arr = self._add(f"{pre}_{role}", "int32_t", _lanes(data, rl, ub),
                            f"{layer.name}: {role} per neuron")
            pragmas += _rom_pragmas(arr, self.arrays[-1].data, 32, constant)
            lit[role] = f"{arr}[{row}][j]"
        ctx = {
            "L": layer,
            "fn": fn,
            "in_t": in_t,
            "out_t": out_t,
            "sched": self.design.schedule,
            "N_IN": layer.n_in,
            "N_OUT": layer.n_out,
            "D": layer.max_delay,
            "RL": rl,
            "UB": ub,
            "A": layer.acc_bits,
            "AGE": layer.age_bits,
            "w": w,
            "d": d,
            "c": lit,
            "const_pragmas": pragmas,
            "ring_storage": (
                "impl=bram" if memory_storage(layer.n_in, layer.max_delay).impl == "bram"
                else "impl=lutram"
            ),
            "mem_storage": memory_storage(ub * 32, rl).impl,
        }
        code = self.env.get_template("hls/snn_layer.cpp.j2").render(**ctx)
        return _PRAGMA_INDENT.sub("#pragma", code)


@dataclass
class SnnVectors:
    """A spike train for the testbench, reset flags per step and the golden model's outputs."""

    spikes: np.ndarray  # bool [T, n_in]
    resets: np.ndarray  # bool [T]: restart from rest before this step
    outputs: np.ndarray  # [T, n_out]: bool spikes or int32 membranes
    seed: int


def render_snn_project(
    design: SnnDesign,
    part: str,
    clock_mhz: float,
    vectors: SnnVectors,
    source_sha256: str = "",
    ii: int = 1,
) -> dict[str, str]:
    """Every file of the project, keyed by its path relative to the project folder.

    `ii` is the pipelined top's initiation interval: the membrane update is a loop-carried
    dependency, so a step can start only as often as that update completes.
    """
    r = _SnnRenderer(design)
    name = design.name
    layers = design.layers
    out_t = "ap_uint<1>" if design.spiking_out else "ap_int<32>"
    beat_out = "ek_spikes" if design.spiking_out else "ek_membranes"
    n_in, n_out = design.n_in, design.n_out
    if design.io == "parallel":
        src, dst = "in0", "out0"
        top_params = f"const ap_uint<1> in0[{n_in}], {out_t} out0[{n_out}], bool reset"
    else:
        src, dst = "x_in", "y_out"
        top_params = (f"hls::stream<ek_spikes<{n_in}> > &in0, "
                      f"hls::stream<{beat_out}<{n_out}> > &out0, bool reset")
    bufs = [f"t{k}" for k in range(len(layers) - 1)]
    ins = [src, *bufs]
    outs = [*bufs, dst]
    code, calls = [], []
    for k, layer in enumerate(layers):
        fn = f"layer_{k}_{NEURON_NAME[layer.kind]}"
        out_t = "ap_uint<1>" if layer.spiking else "ap_int<32>"
        code.append(r.layer(layer, fn, "ap_uint<1>", out_t))
        calls.append(f"{fn}({ins[k]}, {outs[k]}, reset)")
    t = vectors.spikes.shape[0]
    out_rows = vectors.outputs.astype(np.int64).reshape(t, -1)
    ctx: dict[str, Any] = {
        **project_context(name, part, clock_mhz, design.io, source_sha256),
        "schedule": design.schedule,
        "ii": ii,
        "layers": layers,
        "layer_code": code,
        "calls": calls,
        "top_params": top_params,
        "locals": [(b, layers[k].n_out) for k, b in enumerate(bufs)],
        "N_IN": design.n_in,
        "N_OUT": design.n_out,
        "out_t": out_t,
        "beat_out": beat_out,
        "spiking_out": design.spiking_out,
        "arrays": r.arrays,
        "reference": "the edgekit spiking golden model",
        "steps": t,
        "seed": vectors.seed,
        "tb_in": _c_body(ops.pack_spikes(vectors.spikes)),
        "tb_reset": _c_body(vectors.resets.astype(np.int64)),
        "tb_out": _c_body(ops.pack_spikes(out_rows.astype(bool)) if design.spiking_out
                          else out_rows),
        "in_bytes": ops.io_bytes(design.n_in),
        "out_count": ops.io_bytes(design.n_out) if design.spiking_out else design.n_out,
        "samples": t,
    }
    files = {
        f"{name}.h": r.env.get_template("hls/snn_model.h.j2").render(**ctx),
        f"{name}.cpp": r.env.get_template("hls/snn_model.cpp.j2").render(**ctx),
        f"{name}_weights.h": r.env.get_template("hls/weights.h.j2").render(**ctx),
        f"{name}_tb.cpp": r.env.get_template("hls/snn_tb.cpp.j2").render(**ctx),
        f"{name}_tb_data.h": r.env.get_template("hls/snn_tb_data.h.j2").render(**ctx),
        "run_hls.tcl": r.env.get_template("hls/run_hls.tcl.j2").render(**ctx),
        f"csim/{name}_csim_api.cpp": r.env.get_template("hls/snn_csim_api.cpp.j2").render(**ctx),
        "csim/Makefile": r.env.get_template("hls/Makefile.j2").render(**ctx),
    }
    hls_dir = resource_dir("csrc") / "hls"
    files[SYNTH_HEADER] = (hls_dir / SYNTH_HEADER).read_text()
    for header in SIM_HEADERS:
        files[f"csim/include/{header}"] = (hls_dir / "sim" / header).read_text()
    return files
