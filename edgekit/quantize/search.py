"""`quantize --search`: per-layer choices that maximise end-to-end SQNR under a RAM/flash budget.

What is searched: one range estimator for the whole graph and bias correction on or off first,
then per layer:

- the range estimator of each activation tensor an op computes (minmax, percentile, mse);
- the weight granularity of each dense layer (per tensor or per output channel). Convolutions are
  always per channel: per tensor never helps them and saves only their multipliers.

- int16 activations (TFLite 16x8): every layer that has a 16x8 kernel at once, then (when that
  is not kept) each such layer alone. int16 doubles the layer's activation bytes, so the RAM
  budget is what binds; QUANTIZE boundaries are inserted where int8 and int16 layers meet.

- int4 weights, only when the int8 model is over the flash budget: each conv/depthwise/dense
  layer is scored alone with int4 weights, and layers are switched in order of SQNR lost per
  byte saved until the model fits (the layers that tolerate int4 best go first). The result is
  the baseline the other decisions then improve.

How: calibrate once and keep every tensor's statistics. The baseline is the TFLite converter's
choice (minmax, per-channel convolutions, per-tensor dense layers). Then a greedy pass in graph
order tries each alternative of each decision, builds the int8 graph, runs it in TFLite Micro
(bit-exact with the generated C) on the first 16 calibration samples and keeps the alternative
when the output SQNR against the float model rises by at least `MIN_GAIN_DB` and the compiled
model still fits.
Every kept change is recorded with its gain: that is the "why" of the report.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.ir.graph import Graph, Op
from edgekit.progress import Progress
from edgekit.quantize import precision as prec
from edgekit.quantize.dataset import Calibration, Source
from edgekit.quantize.metrics import dequantize_array, quantize_array, sqnr_db
from edgekit.quantize.observers import Collector
from edgekit.quantize.quantizer import (
    LINEAR,
    QuantConfig,
    _assign,
    _Builder,
    prepare,
)
from edgekit.quantize.ranges import METHODS, estimate
from edgekit.reference.float_ref import FloatModel

MIN_GAIN_DB = 0.05  # below this a change is noise on a few samples, not worth the complexity
EVAL_SAMPLES = 16  # 8 let the greedy pass fit noise (KWS lost 4 dB on held-out inputs)


@dataclass
class Budget:
    flash: int | None = None  # bytes of constants (weights, biases, requantization parameters)
    ram: int | None = None  # bytes of the activation arena

    def fits(self, cost: dict[str, int]) -> bool:
        return (self.flash is None or cost["flash"] <= self.flash) and \
            (self.ram is None or cost["ram"] <= self.ram)


@dataclass
class _Choice:
    default: str = "minmax"  # estimator of every tensor not in `methods`
    bias_correction: bool = False
    methods: dict[str, str] = field(default_factory=dict)  # tensor -> estimator
    dense_per_channel: dict[str, bool] = field(default_factory=dict)  # op name -> per channel
    all_int16: bool = False  # every layer with a 16x8 kernel runs int16
    int16: dict[str, bool] = field(default_factory=dict)  # op name -> int16 activations
    int4: dict[str, bool] = field(default_factory=dict)  # op name -> packed int4 weights


class _ChoiceBuilder(_Builder):
    """The quantizer's builder with the weight granularity decided per dense layer, and the
    weight type (int8 or int4) per layer."""

    def __init__(self, *args: Any, per_channel: dict[str, bool],
                 int4: dict[str, bool] | None = None) -> None:
        super().__init__(*args)
        self.per_channel = per_channel
        self.int4 = int4 or {}

    def linear(self, op: Op, ins: list[str]) -> list[str]:
        base = self.cfg
        four = (op.name,) if self.int4.get(op.name) else ()
        if op.kind != "fully_connected":
            self.cfg = replace(base, int4_layers=base.int4_layers + four)
        else:
            self.cfg = replace(base, per_channel="all" if self.per_channel.get(op.name) else
                               "conv", int4_layers=base.int4_layers + four)
        try:
            return super().linear(op, ins)
        finally:
            self.cfg = base


class _Searcher:
    def __init__(self, fg: Graph, stats: Collector, eval_batch: list[np.ndarray],
                 cfg: QuantConfig, budget: Budget) -> None:
        from edgekit.export.tflite import export_tflite
        from edgekit.reference.tflm import run_tflm

        self.export, self.run_tflm = export_tflite, run_tflm
        self.fg, self.stats, self.cfg, self.budget = fg, stats, cfg, budget
        self.batch = eval_batch
        self.n = eval_batch[0].shape[0]
        self.ref = [r.reshape(self.n, -1) for r in FloatModel(fg).run(eval_batch)]
        self.means = {n: st.channel_mean for n, st in stats.stats.items()
                      if st.channel_mean is not None}
        self.evaluations = 0

    def build(self, choice: _Choice) -> Graph:
        ranges = {}
        for name, st in self.stats.stats.items():
            method = "minmax" if name in self.fg.inputs else choice.methods.get(name,
                                                                                choice.default)
            ranges[name] = estimate(st, method, self.cfg.percentile)
        fg, dtypes = self.fg, {}
        if choice.all_int16 or any(choice.int16.values()):
            fg = copy.deepcopy(self.fg)
            chosen = None if choice.all_int16 else {k for k, v in choice.int16.items() if v}
            dtypes = prec.insert_boundaries(fg, ranges, prec.plan(fg, chosen))
            # clipping estimators trade rounding for clipping error on an 8-bit grid; int16
            # rounding is 256x finer, so int16 tensors take their full (minmax) range
            for name, dt in dtypes.items():
                base = name.removesuffix("/as_int16")
                if dt == "int16" and base in self.stats.stats:
                    ranges[name] = estimate(self.stats.stats[base], "minmax")
        wide = frozenset(n for n, d in dtypes.items() if d == "int16")
        quant, requant = _assign(fg, ranges, wide)
        cfg = replace(self.cfg, bias_correction=choice.bias_correction)
        g = _ChoiceBuilder(fg, quant, self.means, cfg, dtypes,
                           per_channel=choice.dense_per_channel, int4=choice.int4).build(requant)
        g.meta = {"source_format": self.fg.meta.get("source_format", "unknown"),
                  "tflite_tensor_names": list(g.tensors)}
        if "layout" in self.fg.meta:
            g.meta["layout"] = copy.deepcopy(self.fg.meta["layout"])
        return g

    def score(self, g: Graph) -> float:
        """Output SQNR (dB, the worst output) of the int8 model, as TFLM (and our C) runs it."""
        self.evaluations += 1
        ins = [g.tensor(n) for n in g.inputs]
        feeds = [[quantize_array(b[k], t.quant, t.dtype) for b, t in zip(self.batch, ins,
                                                                          strict=True)]
                 for k in range(self.n)]
        got = self.run_tflm(self.export(g), feeds)
        worst = math.inf
        for j, name in enumerate(g.outputs):
            t = g.tensor(name)
            test = np.stack([dequantize_array(np.asarray(r[j]).reshape(t.shape), t.quant)
                             for r in got]).reshape(self.n, -1)
            worst = min(worst, sqnr_db(self.ref[j], test))
        return worst


def cost(g: Graph) -> dict[str, int]:
    """Flash (constant bytes after lowering) and RAM (arena) of the compiled model."""
    from edgekit.pipeline import compile_graph

    c = compile_graph(g)
    flash = sum(t.nbytes for t in c.graph.tensors.values() if t.is_const)
    return {"flash": int(flash), "ram": int(c.plan.arena_bytes)}


def search(graph: Graph, data: Source, cfg: QuantConfig | None = None,
           budget: Budget | None = None, progress: bool | None = None,
           where: str = "") -> Graph:
    """The int8 graph the greedy search settles on; its report is meta.quantization.search."""
    cfg = cfg or QuantConfig()
    cfg.check()
    budget = budget or Budget()
    fg = prepare(graph, where)
    # input means for bias correction, which is one of the decisions
    wanted = {op.inputs[0] for op in fg.ops if op.kind in LINEAR}
    collector = Collector(wanted)
    model = FloatModel(fg)
    cal = Calibration(fg, data, cfg.chunk, cfg.limit)
    bar = Progress("calibrating", cal.total, progress, unit="samples")
    done = 0
    first: list[np.ndarray] | None = None
    for batch in cal:
        try:
            model.run(batch, observe=collector)
        except ValueError as exc:
            raise EdgekitError(f"calibration failed: {exc}", cal.where) from None
        if first is None:
            first = [b[:EVAL_SAMPLES] for b in batch]
        done += batch[0].shape[0]
        bar.update(done)
    bar.update(done, final=True)
    if first is None:
        raise EdgekitError("no calibration samples", where or graph.name)
    s = _Searcher(fg, collector, first, cfg, budget)

    choice = _Choice()
    g = s.build(choice)
    base_db, base_cost = s.score(g), cost(g)
    steps: list[dict[str, Any]] = []
    if not budget.fits(base_cost):
        choice, g, base_db, base_cost = _fit_with_int4(s, fg, budget, base_db, base_cost, steps)
    if not budget.fits(base_cost):
        raise EdgekitError(
            f"the model needs {base_cost['flash']} bytes of flash and a "
            f"{base_cost['ram']}-byte arena even with int4 weights where they help, over the "
            f"budget ({_budget_text(budget)})", where or graph.name,
            "raise the budget or use a smaller model")
    current_db, current_cost = base_db, base_cost
    # first one estimator for the whole graph (per-layer steps from a poor start stay local),
    # then per layer, other estimators than the one chosen for all
    decisions: list[tuple[str, str, list[Any], str]] = [
        ("default", "", [m for m in METHODS if m != "minmax"], "every layer"),
        ("bias_correction", "", [True], "every layer")]
    for op in fg.ops:
        out = op.outputs[0]
        if out in collector.stats and op.kind in LINEAR | {"add", "sub", "mul", "concat"}:
            decisions.append(("method", out, list(METHODS), f"{op.name} ({op.kind}) output"))
        if op.kind == "fully_connected":
            decisions.append(("per_channel", op.name, [True], f"{op.name} (fully_connected)"))
    decisions.append(("all_int16", "", [True], "every layer"))
    decisions += [("int16", op.name, [True], f"{op.name} ({op.kind})")
                  for op in fg.ops if op.kind in prec.INT16_OPS]
    for kind, key, options, label in decisions:
        for option in options:
            if kind == "method" and option == choice.methods.get(key, choice.default):
                continue
            if kind == "int16" and choice.all_int16:
                continue
            trial = copy.deepcopy(choice)
            if kind == "default":
                trial.default = option
            elif kind == "bias_correction":
                trial.bias_correction = option
            elif kind == "method":
                trial.methods[key] = option
            elif kind == "all_int16":
                trial.all_int16 = option
            elif kind == "int16":
                trial.int16[key] = option
            else:
                trial.dense_per_channel[key] = option
            tg = s.build(trial)
            db = s.score(tg)
            if db < current_db + MIN_GAIN_DB:
                continue
            c = cost(tg) if kind in ("per_channel", "all_int16", "int16") else current_cost
            if not budget.fits(c):
                steps.append({"decision": _what(kind, label, option), "gain_db": round(
                    db - current_db, 2), "kept": False, "why": "over the budget",
                    "flash": c["flash"], "ram": c["ram"]})
                continue
            steps.append({"decision": _what(kind, label, option),
                          "gain_db": round(db - current_db, 2), "kept": True,
                          "why": f"output SQNR {current_db:.2f} -> {db:.2f} dB",
                          "flash": c["flash"], "ram": c["ram"]})
            choice, g, current_db, current_cost = trial, tg, db, c
    final_cost = cost(g)
    g.meta["quantization"] = {
        **{k: v for k, v in asdict(cfg).items() if k != "chunk"},
        "method": "search",
        "data_free": False,
        "samples": done,
        "ranges_from": "data",
        "search": {
            "evaluation_samples": s.n,
            "evaluations": s.evaluations,
            "budget": {"flash": budget.flash, "ram": budget.ram},
            "baseline": {"sqnr_db": round(base_db, 2), **base_cost,
                         "what": "minmax ranges, per-channel convolutions, per-tensor dense "
                                 "layers (the TFLite converter's choice)" +
                                 (f", int4 weights in {len(choice.int4)} layer(s) to fit the "
                                  "flash budget" if choice.int4 else "")},
            "result": {"sqnr_db": round(current_db, 2), **final_cost},
            "steps": steps,
            "default_method": choice.default,
            "bias_correction": choice.bias_correction,
            "methods": {k: v for k, v in choice.methods.items()},
            "dense_per_channel": sorted(k for k, v in choice.dense_per_channel.items() if v),
            "int16_layers": sorted(op.name for op in g.ops if op.kind != "quantize" and
                                   g.tensor(op.outputs[0]).dtype == "int16"),
            "int4_layers": sorted(k for k, v in choice.int4.items() if v),
            "not_searched": "int4 weights unless the int8 model is over the flash budget",
        },
    }
    try:
        g.validate()
    except ValueError as exc:
        raise EdgekitError(f"internal: searched graph is malformed: {exc}", graph.name) from None
    return g


def _fit_with_int4(s: _Searcher, fg: Graph, budget: Budget, base_db: float,
                   base_cost: dict[str, int], steps: list[dict[str, Any]]
                   ) -> tuple[_Choice, Graph, float, dict[str, int]]:
    """Over the flash budget: int4 weights for the layers that tolerate them best.

    Each conv/depthwise/dense layer is scored alone with int4 weights; layers are then taken in
    order of SQNR lost per flash byte saved until the model fits. The baseline becomes that.
    """
    trials = []
    for op in fg.ops:
        if op.kind not in prec.INT4_OPS:
            continue
        c = _Choice(int4={op.name: True})
        tg = s.build(c)
        db, cst = s.score(tg), cost(tg)
        saved = base_cost["flash"] - cst["flash"]
        if saved > 0:
            trials.append(((base_db - db) / saved, op.name, saved, db))
    trials.sort()
    choice = _Choice()
    g, db, cst = s.build(choice), base_db, base_cost
    for _, name, saved, alone_db in trials:
        if budget.fits(cst):
            break
        choice.int4[name] = True
        g = s.build(choice)
        db, cst = s.score(g), cost(g)
        steps.append({"decision": f"{name}: int4 weights", "gain_db": round(alone_db - base_db, 2),
                      "kept": True, "why": f"over the flash budget: saves {saved} B "
                      f"(alone {alone_db - base_db:+.2f} dB)",
                      "flash": cst["flash"], "ram": cst["ram"]})
    return choice, g, db, cst


def _what(kind: str, label: str, option: Any) -> str:
    if kind in ("method", "default"):
        return f"{label}: {option} range"
    if kind == "bias_correction":
        return f"{label}: bias correction"
    if kind in ("all_int16", "int16"):
        return f"{label}: int16 activations (16x8)"
    return f"{label}: per-channel weights"


def _budget_text(b: Budget) -> str:
    parts = [f"flash {b.flash}" if b.flash is not None else "", f"RAM {b.ram}"
             if b.ram is not None else ""]
    return ", ".join(p for p in parts if p) or "none"


def format_search(info: dict[str, Any]) -> str:
    """What the search chose and why, for the quantize command's output."""
    s = info["search"]
    base, res = s["baseline"], s["result"]
    budget = _budget_text(Budget(**s["budget"]))
    lines = [f"search: {s['evaluations']} candidate models scored in TFLM on "
             f"{s['evaluation_samples']} calibration samples; budget {budget}",
             f"  baseline ({base['what']}): {base['sqnr_db']:.2f} dB, flash {base['flash']} B, "
             f"arena {base['ram']} B"]
    kept = [st for st in s["steps"] if st["kept"]]
    for st in kept:
        lines.append(f"  + {st['decision']}: {st['gain_db']:+.2f} dB ({st['why']})")
    for st in s["steps"]:
        if not st["kept"]:
            lines.append(f"  - {st['decision']}: {st['gain_db']:+.2f} dB but {st['why']} "
                         f"(flash {st['flash']} B, arena {st['ram']} B)")
    if not kept:
        lines.append(f"  nothing beat the baseline by {MIN_GAIN_DB} dB: kept it")
    lines.append(f"  result: {res['sqnr_db']:.2f} dB, flash {res['flash']} B, arena {res['ram']} B"
                 f"; not searched: {s['not_searched']}")
    return "\n".join(lines)
