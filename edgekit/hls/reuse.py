"""Choosing each layer's reuse factor and where its products go, against a part's capacity.

`--reuse N` gives every layer the same factor (rounded to what the layer can use). `--reuse
auto` balances the DATAFLOW pipeline instead: for a target interval T every layer takes the
largest reuse that still accepts a new inference every T cycles (the most sharing for that
throughput), and the search looks for the smallest T whose design fits. In both modes products
by constant weights (reuse 1) start on DSP slices and move to LUTs, largest layer first, while
the DSP slices would overflow.
"""

from __future__ import annotations

from bisect import bisect_right

from codegen.hls.design import Assembly, Design, assemble
from edgekit.errors import EdgekitError
from edgekit.hls.estimate import Estimate, Timing, estimate, step_cost
from edgekit.hls.parts import Part

# auto reuse leaves this share of each resource for routing, I/O and the rest of the system
AUTO_UTILIZATION = 0.8


def _evaluate(design: Design, part: Part, clock_mhz: float) -> tuple[Assembly, Estimate]:
    asm = assemble(design)
    return asm, estimate(asm, part, clock_mhz)


def place_products(
    design: Design, part: Part, clock_mhz: float, limit: float = 1.0
) -> tuple[Assembly, Estimate]:
    """DSP slices first; layers with constant weights move to LUTs while DSPs overflow."""
    for layer in design.layers:
        layer.mult = "dsp"
    asm, est = _evaluate(design, part, clock_mhz)
    by_layer = {s.layer.name: e for s, e in zip(asm.steps, est.layers, strict=True)}
    movable = sorted(
        (layer for layer in design.layers if layer.constant_weights),
        key=lambda layer: -by_layer[layer.name].dsp,
    )
    for layer in movable:
        if est.dsp <= part.dsp * limit:
            break
        layer.mult = "fabric"
        asm, est = _evaluate(design, part, clock_mhz)
    return asm, est


def _interval_options(design: Design, part: Part, clock_mhz: float) -> list[list[tuple[int, int]]]:
    """Per layer, (interval, reuse) for every reuse it can take, sorted by interval."""
    asm = assemble(design)
    tm = Timing(part, clock_mhz)
    step_of = {id(s.layer): s for s in asm.steps}
    out = []
    for layer in design.layers:
        step = step_of[id(layer)]
        pairs = []
        for r in layer.reuse_options():
            layer.reuse = r
            pairs.append((step_cost(step, asm, tm, part).interval, r))
        layer.reuse = 1
        # for one interval the largest reuse wins; sorted so bisect finds "largest within T"
        best: dict[int, int] = {}
        for interval, r in pairs:
            best[interval] = max(best.get(interval, 0), r)
        ordered = sorted(best.items())
        running, prefix = 1, []
        for interval, r in ordered:
            running = max(running, r)
            prefix.append((interval, running))
        out.append(prefix)
    return out


def _apply_interval(design: Design, options: list[list[tuple[int, int]]], target: int) -> None:
    for layer, opts in zip(design.layers, options, strict=True):
        k = bisect_right([i for i, _ in opts], target) - 1
        layer.reuse = opts[k][1] if k >= 0 else 1
        layer.mult = "dsp"


def plan_reuse(
    design: Design, part: Part, clock_mhz: float, reuse: int | str
) -> tuple[Assembly, Estimate]:
    """Set every layer's reuse and multiplier placement; returns the assembly and its estimate.

    The result may still not fit the part: check_fit() says so with the numbers.
    """
    if reuse != "auto":
        n = int(reuse)
        if n < 1:
            raise EdgekitError(f"--reuse must be at least 1 or 'auto', got {reuse}")
        for layer in design.layers:
            layer.set_reuse(n)
        return place_products(design, part, clock_mhz)
    options = _interval_options(design, part, clock_mhz)
    targets = sorted({i for opts in options for i, _ in opts})
    lo, hi = 0, len(targets) - 1
    best: int | None = None
    # assumes a longer interval never needs more resources; see docs/hls.md
    while lo <= hi:
        mid = (lo + hi) // 2
        _apply_interval(design, options, targets[mid])
        _, est = place_products(design, part, clock_mhz, AUTO_UTILIZATION)
        if est.over(AUTO_UTILIZATION):
            lo = mid + 1
        else:
            best, hi = mid, mid - 1
    # the probes changed the layers: set them again for the answer (or the most sharing)
    _apply_interval(design, options, targets[-1 if best is None else best])
    return place_products(design, part, clock_mhz, 1.0 if best is None else AUTO_UTILIZATION)


def check_fit(est: Estimate, reuse: int | str) -> None:
    over = est.over()
    if not over:
        return
    needs = "; ".join(f"needs {need:,} {res}, part has {cap:,}" for res, need, cap in over)
    if reuse == "auto":
        hint = (
            "even the largest reuse factors do not fit: choose a larger --part, or --io stream "
            "for convolutional models (line buffers instead of whole feature maps)"
        )
    else:
        hint = "raise --reuse (or use --reuse auto), or choose a larger --part"
    raise EdgekitError(f"the design does not fit {est.part.name}: {needs}", hint=hint)
