"""Golden model of the float contract (docs/numerics-fp16.md), in numpy.

Every function performs exactly the roundings the contract lists, in the listed order, with the
accumulation loops written out (vectorised over outputs only, never over a reduction). It reads
the same IR the code generator reads, so `run_graph` of a converted graph is what every backend
must produce bit for bit. NaN payloads are outside the contract: `same_bits` treats all NaNs
as equal.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.ir.graph import Graph, Op
from edgekit.passes.fp16 import ACTIVATION_BOUNDS, contract_of

# the binary32 constants of ek_expf_nonpositive (csrc/edgekit_fp16.h), bit for bit
_F = np.float32
LOG2E = _F(float.fromhex("0x1.715476p+0"))
LN2_HI = _F(float.fromhex("0x1.62e400p-1"))
LN2_LO = _F(float.fromhex("0x1.7f7d1cp-20"))
EXP_POLY = [
    _F(float.fromhex(h))
    for h in (
        "0x1.6c16c2p-10",
        "0x1.111112p-7",
        "0x1.555556p-5",
        "0x1.555556p-3",
        "0x1.000000p-1",
        "1.0",
        "1.0",
    )
]
EXP_MIN = _F(-80.0)


# --- single roundings ---------------------------------------------------------------------------


def fma(a: Any, b: Any, c: Any, dtype: Any) -> np.ndarray:
    """a*b + c rounded once to `dtype` (float16 or float32), elementwise.

    The product of two binary16 or binary32 values is exact in double. The sum is rounded to
    double with round-to-odd (the exact error from TwoSum decides the last bit), which makes the
    final rounding to a format of at most 24 bits a correct single rounding.
    """
    a64, b64, c64 = (np.asarray(v, dtype=np.float64) for v in (a, b, c))
    with np.errstate(invalid="ignore", over="ignore"):
        p = a64 * b64
        s = p + c64
        bb = s - p
        err = (p - (s - bb)) + (c64 - bb)
        even = (s.view(np.uint64) & np.uint64(1)) == 0
        fix = np.isfinite(s) & (err != 0) & even
        if np.any(fix):
            toward = np.where(err > 0, np.inf, -np.inf)
            s = np.where(fix, np.nextafter(s, toward), s)
        return s.astype(dtype)


def fma16_via_double(a: Any, b: Any, c: Any) -> np.ndarray:
    """What the portable C path computes: (double)a*b + c, rounded to double and then to
    binary16. Equal to `fma` for binary16 operands whenever the result is finite."""
    a64, b64, c64 = (np.asarray(v, dtype=np.float64) for v in (a, b, c))
    with np.errstate(invalid="ignore", over="ignore"):
        return (a64 * b64 + c64).astype(np.float16)


def add(a: np.ndarray, b: np.ndarray, dtype: Any) -> np.ndarray:
    """a + b rounded once (exact in double for binary16; innocuous double rounding for binary32,
    since 53 >= 2 * 24 + 2)."""
    with np.errstate(invalid="ignore", over="ignore"):
        return (a.astype(np.float64) + b.astype(np.float64)).astype(dtype)


def maximum_number(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IEEE 754-2019 maximumNumber as ek_h_max computes it: a NaN loses, -0 < +0."""
    take_b = np.isnan(a) | (b > a) | ((b == a) & np.signbit(a) & ~np.signbit(b))
    return np.where(take_b, b, a)


def clamp(v: np.ndarray, activation: str) -> np.ndarray:
    """x > lo ? x : lo, then x < hi ? x : hi: a NaN becomes lo, -0 becomes +0 under relu."""
    lo, hi = ACTIVATION_BOUNDS[activation]
    if lo is not None:
        v = np.where(v > lo, v, v.dtype.type(lo))
    if hi is not None:
        v = np.where(v < hi, v, v.dtype.type(hi))
    return v


def same_bits(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Elementwise: identical bits, or both NaN."""
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype != b.dtype or a.shape != b.shape:
        raise ValueError(f"cannot compare {a.dtype}{a.shape} with {b.dtype}{b.shape}")
    ui = np.uint16 if a.dtype == np.float16 else np.uint32
    return (a.view(ui) == b.view(ui)) | (np.isnan(a) & np.isnan(b))


# --- activations computed in binary32 -------------------------------------------------------------


def leaky_relu(x: np.ndarray, alpha: float) -> np.ndarray:
    """x >= 0 ? x : x * alpha, the product rounded to binary32 and then to x's format."""
    v = x.astype(np.float32)
    with np.errstate(invalid="ignore", over="ignore"):
        return np.where(v >= 0, v, v * np.float32(alpha)).astype(x.dtype)


def hard_swish(x: np.ndarray) -> np.ndarray:
    """x * relu6(x + 3) / 6 with every step rounded to binary32, in this order: the add, the
    clamp as `clamp` does it (a NaN becomes 0), the product and the divide; then rounded once
    to x's format."""
    v = x.astype(np.float32)
    with np.errstate(invalid="ignore", over="ignore"):
        t = v + np.float32(3.0)
        t = np.where(t > 0, t, np.float32(0.0))
        t = np.where(t < 6, t, np.float32(6.0))
        return ((v * t) / np.float32(6.0)).astype(x.dtype)


# --- dot-product ops ----------------------------------------------------------------------------


def _taps(
    x: np.ndarray, out_hw: tuple[int, int], ky: int, kx: int, attrs: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray]:
    """The input values under filter tap (ky, kx) for every output pixel: [N, OH, OW, C], with
    +0 where the tap falls outside the image, and the mask of in-image taps [OH, OW]."""
    n, ih, iw, ch = x.shape
    oh, ow = out_hw
    sh, sw = attrs["stride"]
    dh, dw = attrs.get("dilation", [1, 1])
    pt, pl = attrs["pad"]
    iy = np.arange(oh) * sh - pt + ky * dh
    ix = np.arange(ow) * sw - pl + kx * dw
    vy, vx = (iy >= 0) & (iy < ih), (ix >= 0) & (ix < iw)
    out = np.zeros((n, oh, ow, ch), dtype=x.dtype)
    sub = x[:, np.clip(iy, 0, ih - 1)][:, :, np.clip(ix, 0, iw - 1)]
    mask = vy[:, None] & vx[None, :]
    out[:, mask] = sub[:, mask]
    return out, mask


def conv2d(
    x: np.ndarray, w: np.ndarray, bias: np.ndarray, out_hw: tuple[int, int], attrs: dict[str, Any]
) -> np.ndarray:
    """acc = bias; acc = fma(x, w, acc) for k = (ky, kx, ic) in filter order; then the clamp."""
    dtype = x.dtype
    oc, kh, kw, ic = w.shape
    acc = np.broadcast_to(bias, (x.shape[0], *out_hw, oc)).astype(dtype)
    for ky in range(kh):
        for kx in range(kw):
            patch, _ = _taps(x, out_hw, ky, kx, attrs)
            for c in range(ic):
                acc = fma(patch[..., c : c + 1], w[:, ky, kx, c], acc, dtype)
    return clamp(acc, attrs.get("activation", "none"))


def transpose_conv(
    x: np.ndarray, w: np.ndarray, bias: np.ndarray, out_hw: tuple[int, int], attrs: dict[str, Any]
) -> np.ndarray:
    """Per output pixel: acc = bias, then for each tap (ky, kx) in filter order that reaches an
    input pixel (iy * stride - pad + ky == oy, and likewise for x), one fma per ic; taps that
    reach none are skipped, not added as +0 (which would turn a -0 accumulator into +0)."""
    dtype = x.dtype
    oc, kh, kw, ic = w.shape
    n, ih, iw, _ = x.shape
    oh, ow = out_hw
    (sh, sw), (pt, pl) = attrs["stride"], attrs["pad"]
    acc = np.broadcast_to(bias, (n, oh, ow, oc)).astype(dtype)
    for ky in range(kh):
        ty = np.arange(oh) + pt - ky
        vy = (ty >= 0) & (ty % sh == 0) & (ty // sh < ih)
        iy = np.where(vy, ty // sh, 0)
        for kx in range(kw):
            tx = np.arange(ow) + pl - kx
            vx = (tx >= 0) & (tx % sw == 0) & (tx // sw < iw)
            ix = np.where(vx, tx // sw, 0)
            mask = (vy[:, None] & vx[None, :])[None, :, :, None]
            patch = x[:, iy][:, :, ix]
            for c in range(ic):
                acc = np.where(mask, fma(patch[..., c : c + 1], w[:, ky, kx, c], acc, dtype), acc)
    return clamp(acc, attrs.get("activation", "none"))


def depthwise_conv2d(
    x: np.ndarray, w: np.ndarray, bias: np.ndarray, out_hw: tuple[int, int], attrs: dict[str, Any]
) -> np.ndarray:
    """Per output channel oc (input channel oc // multiplier): acc = bias, then one fma per tap
    (ky, kx) in filter order."""
    dtype = x.dtype
    _, kh, kw, oc = w.shape
    source = np.arange(oc) // int(attrs.get("depth_multiplier", 1))
    acc = np.broadcast_to(bias, (x.shape[0], *out_hw, oc)).astype(dtype)
    for ky in range(kh):
        for kx in range(kw):
            patch, _ = _taps(x, out_hw, ky, kx, attrs)
            acc = fma(patch[..., source], w[0, ky, kx], acc, dtype)
    return clamp(acc, attrs.get("activation", "none"))


def fully_connected(
    x: np.ndarray, w: np.ndarray, bias: np.ndarray, attrs: dict[str, Any]
) -> np.ndarray:
    """Per output: acc = bias, then acc = fma(x[k], w[u, k], acc) for k = 0 .. depth-1."""
    units, depth = w.shape
    rows = x.reshape(-1, depth)
    acc = np.broadcast_to(bias, (rows.shape[0], units)).astype(x.dtype)
    for k in range(depth):
        acc = fma(rows[:, k : k + 1], w[:, k], acc, x.dtype)
    return clamp(acc, attrs.get("activation", "none"))


# --- pooling, elementwise, softmax --------------------------------------------------------------


def avg_pool2d(x: np.ndarray, out_hw: tuple[int, int], attrs: dict[str, Any]) -> np.ndarray:
    """binary32 sum from +0 over in-image taps (ky, kx), divided by their count, rounded."""
    fh, fw = attrs["filter"]
    acc = np.zeros((x.shape[0], *out_hw, x.shape[3]), dtype=np.float32)
    count = np.zeros(out_hw, dtype=np.int64)
    for ky in range(fh):
        for kx in range(fw):
            patch, mask = _taps(x, out_hw, ky, kx, {**attrs, "dilation": [1, 1]})
            acc = np.where(mask[None, :, :, None], acc + patch.astype(np.float32), acc)
            count += mask
    y = (acc / count.astype(np.float32)[None, :, :, None]).astype(x.dtype)
    return clamp(y, attrs.get("activation", "none"))


def max_pool2d(x: np.ndarray, out_hw: tuple[int, int], attrs: dict[str, Any]) -> np.ndarray:
    """maximumNumber over in-image taps, the first one as the start value."""
    fh, fw = attrs["filter"]
    best = np.zeros((x.shape[0], *out_hw, x.shape[3]), dtype=x.dtype)
    have = np.zeros(out_hw, dtype=bool)
    for ky in range(fh):
        for kx in range(fw):
            patch, mask = _taps(x, out_hw, ky, kx, {**attrs, "dilation": [1, 1]})
            first = (mask & ~have)[None, :, :, None]
            later = (mask & have)[None, :, :, None]
            best = np.where(first, patch, np.where(later, maximum_number(best, patch), best))
            have |= mask
    return clamp(best, attrs.get("activation", "none"))


def expf_nonpositive(z: np.ndarray) -> np.ndarray:
    """ek_expf_nonpositive: the same binary32 operations in the same order."""
    f = np.float32
    z = np.asarray(z, dtype=f)
    zc = np.where(z >= EXP_MIN, z, EXP_MIN)
    t = fma(zc, LOG2E, f(-0.5), f)
    n = np.trunc(t).astype(np.int32)
    nf = n.astype(f)
    r = fma(-nf, LN2_HI, zc, f)
    r = fma(-nf, LN2_LO, r, f)
    p = np.full_like(r, EXP_POLY[0])
    for coef in EXP_POLY[1:]:
        p = fma(p, r, coef, f)
    scale = ((n + 127).astype(np.uint32) << np.uint32(23)).view(f)
    return np.where(z >= EXP_MIN, p * scale, f(0.0))


def softmax(x: np.ndarray, beta: float) -> np.ndarray:
    """Per row in binary32: max, e_i = exp((x_i - max) [* beta]), sum from +0 in row order,
    e_i / sum rounded to storage."""
    f = np.float32
    depth = x.shape[-1]
    rows = x.reshape(-1, depth)
    m = rows[:, 0]
    for i in range(1, depth):
        m = maximum_number(m, rows[:, i])
    with np.errstate(invalid="ignore", over="ignore"):
        z = rows.astype(f) - m.astype(f)[:, None]
        if f(beta) != f(1.0):
            z = z * f(beta)
        e = expf_nonpositive(z)
        total = np.zeros(rows.shape[0], dtype=f)
        for i in range(depth):
            total = total + e[:, i]
        return (e / total[:, None]).astype(x.dtype).reshape(x.shape)


# --- graphs -------------------------------------------------------------------------------------


def run_op(graph: Graph, op: Op, values: dict[str, np.ndarray]) -> np.ndarray:
    """The contract result of one converted op, from the values of its inputs."""
    found = contract_of(op)
    if found is None:
        raise ValueError(f"{op.name} carries no float contract (run the fp16 pass first)")
    x = values[op.inputs[0]]
    y = graph.tensor(op.outputs[0])
    attrs = op.attrs
    if op.kind in ("conv2d", "depthwise_conv2d", "fully_connected", "transpose_conv"):
        w = graph.tensor(op.inputs[1]).data
        b = graph.tensor(attrs["q"]["bias"]).data
        assert w is not None and b is not None
        if op.kind == "fully_connected":
            return fully_connected(x, w, b, attrs).reshape(y.shape)
        fn = {"conv2d": conv2d, "depthwise_conv2d": depthwise_conv2d}.get(op.kind, transpose_conv)
        return fn(x, w, b, (y.shape[1], y.shape[2]), attrs)
    if op.kind in ("avg_pool2d", "max_pool2d"):
        fn = avg_pool2d if op.kind == "avg_pool2d" else max_pool2d
        return fn(x, (y.shape[1], y.shape[2]), attrs)
    if op.kind == "add":
        return clamp(add(x, values[op.inputs[1]], x.dtype), attrs.get("activation", "none"))
    if op.kind in ("relu", "relu6"):
        return clamp(x, op.kind)
    if op.kind == "leaky_relu":
        return leaky_relu(x, attrs["q"]["alpha"])
    if op.kind == "hard_swish":
        return hard_swish(x)
    if op.kind == "softmax":
        return softmax(x, attrs["q"]["beta"])
    if op.kind == "reshape":
        return x.reshape(y.shape)
    raise ValueError(f"{op.name}: no golden model for '{op.kind}'")


def run_graph_all(graph: Graph, inputs: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Every activation of one inference, keyed by tensor name."""
    values: dict[str, np.ndarray] = {}
    for name, arr in zip(graph.inputs, inputs, strict=True):
        t = graph.tensor(name)
        values[name] = np.asarray(arr).astype(t.dtype, copy=False).reshape(t.shape)
    for op in graph.ops:
        values[op.outputs[0]] = run_op(graph, op, values)
    return values


def run_graph(graph: Graph, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """The graph's outputs for one inference, in model order."""
    values = run_graph_all(graph, inputs)
    return [values[name] for name in graph.outputs]


# --- verification: every backend against the golden model --------------------------------------


def _ulps(a: np.ndarray, b: np.ndarray) -> int:
    """Largest distance in units in the last place between finite elements of a and b."""
    ui, si = (np.uint16, np.int32) if a.dtype == np.float16 else (np.uint32, np.int64)
    top = np.int64(0x8000 if a.dtype == np.float16 else 0x80000000)

    def ordered(v: np.ndarray) -> np.ndarray:
        bits = v.reshape(-1).view(ui).astype(np.int64)
        # sign-magnitude to a monotonic integer line: -0 and +0 both map to 0
        return np.where(bits >= top, top - bits, bits).astype(si)

    finite = np.isfinite(a.reshape(-1)) & np.isfinite(b.reshape(-1))
    if not finite.any():
        return 0
    return int(np.max(np.abs(ordered(a)[finite].astype(np.int64) - ordered(b)[finite])))


def compare_backend(
    outputs: list[list[np.ndarray]], golden: list[list[np.ndarray]]
) -> dict[str, int]:
    """Samples and elements of one backend that differ from the golden model, and the largest
    difference in ULPs."""
    bad_samples = bad_elements = max_ulps = 0
    for got, want in zip(outputs, golden, strict=True):
        bad_here = 0
        for g, w in zip(got, want, strict=True):
            g = np.asarray(g).reshape(w.shape).astype(w.dtype, copy=False)
            bad = int(np.count_nonzero(~same_bits(g, w)))
            bad_here += bad
            if bad:
                max_ulps = max(max_ulps, _ulps(g, w))
        bad_samples += bad_here > 0
        bad_elements += bad_here
    return {
        "samples": len(outputs),
        "bad_samples": bad_samples,
        "bad_elements": bad_elements,
        "max_ulps": max_ulps,
    }


def first_bad_layer(graph: Graph, traced: dict[str, np.ndarray], inputs: list[np.ndarray]) -> str:
    """The first op whose host output differs from the golden model, for the error message."""
    golden = run_graph_all(graph, inputs)
    for i, op in enumerate(graph.ops):
        t = op.outputs[0]
        if t in traced and not same_bits(traced[t].reshape(golden[t].shape), golden[t]).all():
            bad = int(np.count_nonzero(~same_bits(traced[t].reshape(golden[t].shape), golden[t])))
            return f"first differing layer: #{i} {op.name} ({op.kind}), {bad} elements"
    return "every layer matches on the host; the difference is in the emulated build"


def verify_float(
    compiled: Any, samples: int, seed: int, emulate: bool, host_build: Any = None
) -> dict[str, Any]:
    """Run the host build (portable C: `compiled` itself, or `host_build` when `compiled` is
    for another target) and, with `emulate`, the target build under QEMU, and compare both with
    the golden model bit for bit (NaNs equal)."""
    from edgekit.runners.host import HostModel
    from edgekit.verify import random_inputs

    graph = compiled.graph
    if graph.meta.get("precision", "int8") == "int8":
        raise EdgekitError(
            "this model was compiled for int8; the golden model checks float builds",
            graph.name,
            "verify int8 builds without --precision (they are compared with TFLite Micro)",
        )
    inputs = random_inputs(graph, samples, seed)
    golden = [run_graph(graph, s) for s in inputs]
    host = HostModel(host_build if host_build is not None else compiled)
    runs = {"host": [host.run(s) for s in inputs]}
    if emulate and compiled.target != "host":
        from edgekit.runners.emulated_model import EmulatedModel

        runs[compiled.target] = EmulatedModel(compiled).run(inputs).outputs
    backends = {name: compare_backend(outs, golden) for name, outs in runs.items()}
    ok = all(b["bad_elements"] == 0 for b in backends.values())
    result: dict[str, Any] = {
        "ok": ok,
        "precision": graph.meta.get("precision"),
        "samples": samples,
        "backends": backends,
    }
    if backends["host"]["bad_elements"]:
        k = next(
            i
            for i, (g, w) in enumerate(zip(runs["host"], golden, strict=True))
            if any((~same_bits(a.reshape(b.shape), b)).any() for a, b in zip(g, w, strict=True))
        )
        result["first_bad_layer"] = first_bad_layer(graph, host.run_traced(inputs[k]), inputs[k])
    return result


def format_verify_float(result: dict[str, Any], target: str) -> str:
    rows = [("backend", "samples", "bad samples", "bad elements", "max ULPs")]
    for name, b in result["backends"].items():
        rows.append(
            (
                name,
                str(b["samples"]),
                str(b["bad_samples"]),
                str(b["bad_elements"]),
                str(b["max_ulps"]),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = []
    for n, r in enumerate(rows):
        lines.append(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(r, widths, strict=True))
            )
        )
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    names = " == ".join([*result["backends"], "golden model"])
    lines.append("")
    if result["ok"]:
        lines.append(
            f"bit-exact: {names} on every output element of {result['samples']} samples "
            f"({result['precision']} contract, docs/numerics-fp16.md; target {target})"
        )
    else:
        lines.append(f"MISMATCH against the {result['precision']} golden model (target {target})")
        if "first_bad_layer" in result:
            lines.append(result["first_bad_layer"])
    return "\n".join(lines)


# --- benchmark: one precision next to another on the same target --------------------------------


def bench_float(
    model: Any, target: str, name: str | None, precisions: list[str], per_layer: bool = False
) -> dict[str, Any]:
    """Exact executed instructions of one inference per precision on an emulated target."""
    from edgekit.pipeline import compile_file
    from edgekit.runners.emulated_model import EmulatedModel
    from edgekit.verify import random_inputs

    runs: dict[str, Any] = {}
    for precision in precisions:
        compiled = compile_file(model, target, name, precision=precision)
        emu = EmulatedModel(compiled)
        run = emu.run(random_inputs(compiled.graph, 1, 0), count=True, per_layer=per_layer)
        layers = [layer for layer in compiled.generated.layers if not layer.noop]
        macs = sum(layer.macs for layer in layers)
        entry: dict[str, Any] = {
            "instructions": run.instructions[0],
            "macs": macs,
            "macs_per_instruction": round(macs / run.instructions[0], 4),
            "arena_bytes": compiled.plan.arena_bytes,
            "flash_bytes": emu.sizes()["flash"],
        }
        if per_layer:
            entry["layers"] = [
                {
                    "index": layer.index,
                    "kind": layer.op.kind,
                    "kernel": layer.variant.template,
                    "macs": layer.macs,
                    "instructions": n,
                }
                for layer, n in zip(layers, run.layer_instructions[0], strict=True)
            ]
        runs[precision] = entry
        model_name = compiled.graph.name
    return {"model": model_name, "target": target, "precisions": runs}


def format_bench_float(r: dict[str, Any]) -> str:
    runs = r["precisions"]
    lines = [f"model {r['model']} on {r['target']} (QEMU -icount: exact instruction counts)", ""]
    lines.append(
        f"{'precision':10s} {'instructions':>14s} {'MACs':>12s} {'MAC/instr':>10s} "
        f"{'arena B':>10s} {'flash B':>10s}"
    )
    for precision, e in runs.items():
        lines.append(
            f"{precision:10s} {e['instructions']:>14,} {e['macs']:>12,} "
            f"{e['macs_per_instruction']:>10.3f} {e['arena_bytes']:>10,} {e['flash_bytes']:>10,}"
        )
    if len(runs) == 2:
        (pa, a), (pb, b) = runs.items()
        lines.append("")
        lines.append(f"{pb} / {pa} instructions: {b['instructions'] / a['instructions']:.2f}x")
        if "layers" in a and "layers" in b:
            lines.append("")
            lines.append(f"{'#':>3}  {'layer':18s} {pa + ' instr':>14s} {pb + ' instr':>14s} ratio")
            for la, lb in zip(a["layers"], b["layers"], strict=True):
                ratio = lb["instructions"] / max(1, la["instructions"])
                lines.append(
                    f"{la['index']:>3}  {la['kind']:18s} {la['instructions']:>14,} "
                    f"{lb['instructions']:>14,} {ratio:5.2f}"
                )
    return "\n".join(lines)
