"""Per-layer resource and latency estimate of a generated HLS design, and the fit check.

This is a model, not synthesis: it counts what the generated C++ instantiates (products,
requantisation units, adder trees, ROMs, buffers) and prices each with a rule of thumb per
part family (edgekit/hls/parts.py). docs/hls.md lists every rule and its limits. Expect
synthesis to land within tens of percent; the model is meant to rank reuse choices and to
say early and clearly when a design cannot fit.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from math import ceil, log2
from typing import Any

import numpy as np

from codegen.hls.design import (
    Assembly,
    Buf,
    Layer,
    Step,
    fifo_storage,
    memory_storage,
)
from edgekit.hls.parts import CLOCK_UNCERTAINTY, Part

# LUTs of one requantisation unit (nudge, rounding shift, offset, clamp) after its product.
_REQUANT_LUT = 100
_REQUANT_LUT_VARIABLE_SHIFT = 150  # the shift comes from a ROM: a barrel shifter
_WIDE_LUT = 120  # glue of one 32x32 fixed-point step (SRDHM) in the transcendental kernels
_LAYER_CONTROL_LUT = 60
_TOP_CONTROL_LUT = 100
_HANDSHAKE = 2  # cycles a DATAFLOW process spends on start/done and buffer swaps

# gemmlowp-style chains, counted in 32x32 products: exp(x <= 0) is 4 for the polynomial plus
# 7 barrel steps, the reciprocal 1 + 3 Newton steps of 2; logistic/tanh add the input rescale.
_EXP_PRODUCTS = 11
_RECIP_PRODUCTS = 7


@dataclass
class LayerEstimate:
    index: int
    name: str
    kind: str
    reuse: int
    mult: str
    ii: int  # cycles between rounds
    iterations: int  # rounds per inference
    depth: int  # pipeline depth of one round, cycles
    latency: int  # first input to last output, cycles
    interval: int  # cycles before the layer takes the next inference
    first_out: int  # first input to first output, cycles (how streams overlap layers)
    products: int  # 8-bit products instantiated
    dsp: int
    bram18: int
    lut: int


@dataclass
class Estimate:
    part: Part
    clock_mhz: float
    io: str
    schedule: str
    layers: list[LayerEstimate]
    buffer_dsp: int = 0
    buffer_bram18: int = 0
    buffer_lut: int = 0
    latency: int = 0
    interval: int = 0
    notes: list[str] = field(default_factory=list)
    unit: str = "inference"  # what one interval delivers: an inference, or a spiking time step
    # flip-flops holding state the design cannot do without (spiking shift-register histories
    # and membranes); pipeline registers are not modelled, so 0 leaves FF out of the fit check
    ff: int = 0

    @property
    def dsp(self) -> int:
        return sum(x.dsp for x in self.layers) + self.buffer_dsp

    @property
    def bram18(self) -> int:
        return sum(x.bram18 for x in self.layers) + self.buffer_bram18

    @property
    def lut(self) -> int:
        return sum(x.lut for x in self.layers) + self.buffer_lut + _TOP_CONTROL_LUT

    @property
    def period_ns(self) -> float:
        return 1e3 / self.clock_mhz

    @property
    def latency_ns(self) -> float:
        return self.latency * self.period_ns

    @property
    def inferences_per_second(self) -> float:
        return self.clock_mhz * 1e6 / max(1, self.interval)

    def usage(self) -> dict[str, tuple[int, int]]:
        p = self.part
        out = {
            "DSP": (self.dsp, p.dsp),
            "BRAM18": (self.bram18, p.bram18),
            "LUT": (self.lut, p.lut),
        }
        if self.ff:
            out["FF"] = (self.ff, p.ff)
        return out

    def over(self, limit: float = 1.0) -> list[tuple[str, int, int]]:
        return [(r, need, cap) for r, (need, cap) in self.usage().items() if need > cap * limit]

    @property
    def fits(self) -> bool:
        return not self.over()

    def to_json(self) -> dict[str, Any]:
        return {
            "part": self.part.name,
            "clock_mhz": self.clock_mhz,
            "io": self.io,
            "schedule": self.schedule,
            "latency_cycles": self.latency,
            "latency_ns": round(self.latency_ns, 3),
            "interval_cycles": self.interval,
            "inferences_per_second": round(self.inferences_per_second, 1),
            "unit": self.unit,
            "dsp": self.dsp,
            "bram18": self.bram18,
            "lut": self.lut,
            "ff": self.ff,
            "capacity": {"dsp": self.part.dsp, "bram18": self.part.bram18, "lut": self.part.lut,
                         "ff": self.part.ff},
            "fits": self.fits,
            "buffers": {
                "dsp": self.buffer_dsp, "bram18": self.buffer_bram18, "lut": self.buffer_lut,
            },
            "layers": [asdict(x) for x in self.layers],
            "notes": self.notes,
        }


# --- building blocks ------------------------------------------------------------------------


def dsp_tiles(part: Part, a_bits: int, b_bits: int) -> int:
    """DSP slices of one signed a x b product (cascaded tiles; lower tiles are unsigned)."""

    def tiles(a: int, b: int) -> int:
        a_tiles = ceil(max(1, a - 1) / (part.dsp_a_bits - 1))
        return a_tiles * ceil(max(1, b - 1) / (part.dsp_b_bits - 1))

    return min(tiles(a_bits, b_bits), tiles(b_bits, a_bits))


def _naf_weights(limit: int = 512) -> np.ndarray:
    """Non-zero digits of each magnitude's canonical signed-digit form (shift-and-add terms)."""
    out = np.zeros(limit + 1, dtype=np.int64)
    for n in range(limit + 1):
        v, count = n, 0
        while v:
            if v & 1:
                v -= 2 - (v & 3)
                count += 1
            v >>= 1
        out[n] = count
    return out


_NAF = _naf_weights()


class Timing:
    """Clock budget and delays; a layer's chain of operations is packed into cycles as HLS
    schedulers chain them, so delays are summed along the chain and rounded up once."""

    def __init__(self, part: Part, clock_mhz: float, registered: bool = True) -> None:
        self.t = part.timing
        self.budget = 1e3 / clock_mhz * (1 - CLOCK_UNCERTAINTY)
        # a DATAFLOW process registers what it reads and writes; an inlined layer does not
        self.io = 2 if registered else 0

    def cycles(self, ns: float) -> int:
        return max(1, ceil(ns / self.budget - 1e-9))

    def tree_ns(self, terms: int) -> float:
        return max(1, ceil(log2(max(2, terms)))) * self.t.add

    @property
    def requant_ns(self) -> float:
        return self.t.wide_mul + self.t.round

    @property
    def srdhm_ns(self) -> float:
        """One fixed-point step of the transcendental kernels: product, nudge, shift."""
        return self.t.wide_mul + 2 * self.t.add


# --- per-layer models ---------------------------------------------------------------------


@dataclass
class _Cost:
    ii: int = 1
    iterations: int = 1
    depth: int = 1
    latency: int = 1
    interval: int = 1
    first_out: int = 1
    products: int = 0
    dsp: int = 0
    bram18: int = 0
    lut: int = 0

    def add_storage(self, width: int, depth: int) -> None:
        s = memory_storage(width, depth)
        self.bram18 += s.bram18
        self.lut += s.lut


def _weight_stats(layer: Layer) -> tuple[int, np.ndarray]:
    """Non-zero weights, and per lane the shift-and-add terms of its constant products."""
    if "nonzero" not in layer.cache:
        w = np.abs(layer.p["weights"])
        layer.cache["nonzero"] = int(np.count_nonzero(w))
        layer.cache["naf_terms"] = _NAF[np.minimum(w, len(_NAF) - 1)].sum(axis=1)
    return layer.cache["nonzero"], layer.cache["naf_terms"]


def _mac(layer: Layer, tm: Timing, part: Part, io: str) -> _Cost:
    p = layer.p
    c = _Cost(ii=layer.mem_ii)
    a_bits = p["acc_bits"]
    ub, pl = layer.ub, layer.products_per_lane
    nonzero, naf_terms = _weight_stats(layer)
    constant = layer.constant_weights
    c.products = ceil((nonzero if constant else ub * pl) / c.ii)
    if layer.mult == "dsp":
        c.dsp += c.products * dsp_tiles(part, p["xbits"], p["wbits"])
        c.lut += ub * ceil(pl / 2) * a_bits  # ternary adder tree behind the DSP products
        tree_terms = pl + 1
        mult_ns = tm.t.dsp_mul
    else:
        # each constant product becomes its shift-and-add terms, merged into one tree per lane
        c.lut += int(sum(ceil(max(0, int(t)) / 2) * a_bits for t in naf_terms))
        tree_terms = int(naf_terms.max(initial=0)) + 1
        mult_ns = 0.0  # the shifted terms go straight into the tree
    requants = ceil(ub / c.ii)
    c.dsp += requants * dsp_tiles(part, a_bits, 32)
    variable_shift = p["per_channel"] and layer.rounds_lanes > 1
    c.lut += requants * (_REQUANT_LUT_VARIABLE_SHIFT if variable_shift else _REQUANT_LUT)
    if c.ii > 1:  # products shared across the cycles of one round need operand multiplexers
        c.lut += c.products * 2 * (p["xbits"] + 1) * ceil((c.ii - 1) / 3)
    c.lut += _LAYER_CONTROL_LUT
    c.depth = tm.cycles(mult_ns + tm.tree_ns(tree_terms) + tm.requant_ns) + tm.io
    rounds = layer.reuse
    if layer.kind == "fc":
        if layer.rounds_depth > 1:
            c.lut += layer.kb * 8 * ceil((layer.rounds_depth - 1) / 3)  # input slice select
        c.iterations = p["B"] * rounds
        c.latency = c.iterations - 1 + c.depth
        c.interval = c.iterations
        c.first_out = rounds + c.depth
    else:
        _window(layer, c, tm, io)
        if layer.kind == "dwconv" and rounds > 1:
            c.lut += ub * p["TAPS"] * 9 * ceil((rounds - 1) / 3)  # lane -> input channel
    if not constant:  # ROMs: one word per round (weights) or per lane round (the rest)
        c.add_storage(ub * pl * p["wbits"], layer.reuse)
        c.add_storage(ub * 32, layer.rounds_lanes)
        if p["per_channel"]:
            c.add_storage(ub * 32, layer.rounds_lanes)
            c.add_storage(ub * 6, layer.rounds_lanes)
    return c


def _window(layer: Layer, c: _Cost, tm: Timing, io: str) -> None:
    """Timing of the window engine and the cost of its window registers and line buffer."""
    p = layer.p
    c.depth += 1  # the window registers between gathering and computing
    wv = 9 if layer.kind in ("conv", "dwconv") else 8
    c.lut += (layer.tb + p["TAPS"]) * p["IC"] * wv
    rounds, ii = layer.reuse, c.ii
    if io == "stream":
        pixels_row = p["OW"]
        per_row = ((pixels_row + 1) * rounds - 1) * ii + c.depth
        reads = p["IH"] * (p["IW"] + 2)
        c.iterations = p["N"] * p["OH"] * (pixels_row + 1) * rounds
        c.latency = p["N"] * (reads + p["OH"] * per_row)
        c.interval = c.latency
        first_rows = min(p["IH"], max(0, (p["KH"] - 1) * p["DH"] - p["PT"]) + 1)
        c.first_out = first_rows * (p["IW"] + 2) + rounds * ii + c.depth
        c.add_storage(p["IC"] * 8, p["NR"] * p["IW"])
    else:
        pixels = p["N"] * p["OH"] * p["OW"]
        c.iterations = (pixels + 1) * rounds
        c.latency = (c.iterations - 1) * ii + c.depth
        c.interval = c.iterations * ii
        c.first_out = 2 * rounds * ii + c.depth


def _avg_counts(p: dict[str, Any]) -> set[int]:
    """Distinct numbers of in-image taps over the output pixels."""

    def valid(size: int, out: int, k: int, s: int, d: int, pad: int) -> set[int]:
        return {
            sum(1 for t in range(k) if 0 <= o * s - pad + t * d < size) for o in range(out)
        }

    rows = valid(p["IH"], p["OH"], p["KH"], p["SH"], p["DH"], p["PT"])
    cols = valid(p["IW"], p["OW"], p["KW"], p["SW"], p["DW"], p["PL"])
    return {r * k for r in rows for k in cols}


def _pool(layer: Layer, tm: Timing, io: str) -> _Cost:
    p = layer.p
    c = _Cost(ii=layer.mem_ii)
    ub, taps = layer.ub, p["TAPS"]
    lanes_hw = ceil(ub / c.ii)
    if layer.kind == "maxpool":
        c.lut += lanes_hw * (max(0, taps - 1) * 16 + 16)
        c.depth = tm.cycles(tm.tree_ns(taps) + 2 * tm.t.add) + tm.io
    else:
        a_bits = p["acc_bits"]
        c.lut += lanes_hw * ceil(max(0, taps - 1) / 2) * a_bits
        if "counts" not in layer.cache:
            layer.cache["counts"] = _avg_counts(p)
        if len(layer.cache["counts"]) > 1:
            c.lut += lanes_hw * a_bits * a_bits  # divider by a variable count, a bit a stage
            divide = a_bits
        else:
            c.lut += lanes_hw * a_bits * 3  # constant divisor: multiply and shift
            divide = 0
        c.depth = tm.cycles(tm.tree_ns(taps) + tm.requant_ns) + divide + tm.io
    c.lut += _LAYER_CONTROL_LUT
    _window(layer, c, tm, io)
    return c


def _global_pool(layer: Layer, tm: Timing) -> _Cost:
    """A running sum or maximum per channel as pixels arrive, then one division per channel."""
    p = layer.p
    c = _Cost()
    ub, rounds = layer.ub, layer.reuse
    a_bits = p["acc_bits"]
    pixels = p["IH"] * p["IW"]
    per_lane = a_bits + (a_bits * 3 if p["mode"] == "avg" else 16)  # add or compare, divide
    c.lut = ub * per_lane + _LAYER_CONTROL_LUT
    if rounds > 1:  # the accumulator of lane r * UB + j is picked by the round
        c.lut += ub * a_bits * 2 * ceil((rounds - 1) / 3)
    c.depth = tm.cycles(tm.t.add) + tm.io
    finish = rounds + tm.cycles(tm.requant_ns)
    c.iterations = p["N"] * (pixels + 1) * rounds
    c.latency = p["N"] * (pixels * rounds + finish) + c.depth
    c.interval = c.latency
    c.first_out = c.latency
    return c


def _eltwise(layer: Layer, step: Step, tm: Timing, part: Part) -> _Cost:
    p = layer.p
    mode = p["mode"]
    c = _Cost()
    ub = layer.ub
    wide = dsp_tiles(part, 32, 32)
    if mode in ("add", "sub"):
        c.dsp = ub * 3 * wide
        c.lut = ub * 3 * _REQUANT_LUT
        c.depth = tm.cycles(2 * tm.requant_ns) + tm.io
    elif mode == "mul":
        c.dsp = ub * (1 + wide)
        c.lut = ub * (_REQUANT_LUT + 20)
        c.depth = tm.cycles(tm.t.dsp_mul + tm.requant_ns) + tm.io
    elif mode == "requant":
        c.dsp = ub * dsp_tiles(part, 10, 32)
        c.lut = ub * _REQUANT_LUT
        c.depth = tm.cycles(tm.requant_ns) + tm.io
    elif mode == "clamp":
        c.lut = ub * 16
        c.depth = tm.cycles(2 * tm.t.add) + tm.io
    else:  # logistic, tanh
        chain = 1 + _EXP_PRODUCTS + _RECIP_PRODUCTS
        c.dsp = ub * chain * wide
        c.lut = ub * chain * _WIDE_LUT
        c.depth = tm.cycles(chain * tm.srdhm_ns + tm.t.round) + tm.io
    c.lut += _LAYER_CONTROL_LUT
    words = step.outs[0].value.words
    c.iterations = words * layer.reuse
    c.latency = c.iterations - 1 + c.depth
    c.interval = c.iterations
    c.first_out = layer.reuse + c.depth
    for data in p["consts"]:
        if data is not None and not (layer.reuse == 1 and words == 1):
            c.add_storage(p["word"] * 8, words)
    return c


def _softmax(layer: Layer, tm: Timing, part: Part) -> _Cost:
    p = layer.p
    c = _Cost()
    ub, rounds = layer.ub, layer.reuse
    wide = dsp_tiles(part, 32, 32)
    per_lane = 1 + _EXP_PRODUCTS + 1
    c.dsp = (ub * per_lane + _RECIP_PRODUCTS) * wide
    c.lut = (ub * per_lane + _RECIP_PRODUCTS) * _WIDE_LUT + ub * 16 + _LAYER_CONTROL_LUT
    max_pass = rounds + tm.cycles(tm.tree_ns(ub))
    exp_pass = rounds + tm.cycles((1 + _EXP_PRODUCTS) * tm.srdhm_ns + tm.t.add)
    recip = tm.cycles(_RECIP_PRODUCTS * tm.srdhm_ns + 2 * tm.t.add)
    out_pass = rounds + tm.cycles(tm.srdhm_ns + tm.t.round)
    c.depth = max_pass + exp_pass + recip + out_pass + tm.io
    c.iterations = p["rows"] * 3 * rounds
    c.latency = p["rows"] * c.depth
    c.interval = c.latency
    c.first_out = c.depth
    return c


def _copy(layer: Layer, step: Step, io: str, asm_pipeline: bool) -> _Cost:
    """Repack and fork layers: wires and registers, plus a buffer when a stream is re-cut."""
    c = _Cost()
    src = step.ins[0].value
    dst = step.outs[0].value
    c.lut = _LAYER_CONTROL_LUT + dst.word * 8 // 4 * len(step.outs)
    if io == "stream" and layer.kind == "repack":
        c.latency = src.words + dst.words + 4
        c.first_out = src.words + 2
        banks = min(src.size, src.word * dst.word // np.gcd(src.word, dst.word))
        s = memory_storage(8, ceil(src.size / banks))
        c.bram18 = s.bram18 * banks
        c.lut += s.lut * banks
    else:
        c.latency = max(src.words, dst.words) + 2
        c.first_out = 2
    c.iterations = max(src.words, dst.words)
    c.depth = 0 if asm_pipeline else 2
    c.interval = c.latency
    return c


def step_cost(step: Step, asm: Assembly, tm: Timing, part: Part) -> _Cost:
    layer, io = step.layer, asm.design.io
    if layer.kind in ("fc", "conv", "dwconv"):
        return _mac(layer, tm, part, io)
    if layer.kind in ("maxpool", "avgpool"):
        return _pool(layer, tm, io)
    if layer.kind == "gpool":
        return _global_pool(layer, tm)
    if layer.kind == "eltwise":
        return _eltwise(layer, step, tm, part)
    if layer.kind == "softmax":
        return _softmax(layer, tm, part)
    return _copy(layer, step, asm.design.io, asm.schedule == "pipeline")


def _buffer_cost(b: Buf, asm: Assembly) -> tuple[int, int]:
    """(BRAM18, LUT) of one inter-layer buffer: a ping-pong array or a FIFO."""
    v = b.value
    if asm.design.io == "stream":
        s = fifo_storage(v.word * 8, b.depth)
        return s.bram18, s.lut
    if asm.schedule == "pipeline":
        return 0, 0
    s = memory_storage(v.word * 8, v.words)
    return 2 * s.bram18, 2 * s.lut


def estimate(asm: Assembly, part: Part, clock_mhz: float) -> Estimate:
    tm = Timing(part, clock_mhz, registered=asm.schedule != "pipeline")
    est = Estimate(part, clock_mhz, asm.design.io, asm.schedule, [])
    costs: list[_Cost] = []
    for i, step in enumerate(asm.steps):
        c = step_cost(step, asm, tm, part)
        costs.append(c)
        layer = step.layer
        est.layers.append(
            LayerEstimate(
                index=i, name=layer.name, kind=layer.kind, reuse=layer.reuse,
                mult=layer.mult if layer.has_weights else "-",
                ii=c.ii, iterations=c.iterations, depth=c.depth, latency=c.latency,
                interval=c.interval, first_out=c.first_out, products=c.products,
                dsp=c.dsp, bram18=c.bram18, lut=c.lut,
            )
        )
    for b in asm.locals:
        bram, lut = _buffer_cost(b, asm)
        est.buffer_bram18 += bram
        est.buffer_lut += lut
    if asm.schedule == "pipeline":
        est.latency = 2 + sum(c.depth for c in costs)  # input and output registers
        est.interval = 1
    elif asm.design.io == "parallel":
        est.latency = sum(c.latency + _HANDSHAKE for c in costs)
        est.interval = max((c.interval for c in costs), default=1)
    else:
        # a stream starts the next layer at its first output; the slowest tail finishes last
        est.latency = sum(c.first_out for c in costs) + max(
            (c.latency - c.first_out for c in costs), default=0
        )
        est.interval = max((c.interval for c in costs), default=1)
    return est
