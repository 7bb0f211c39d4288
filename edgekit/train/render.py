"""Training spec -> C sources (<name>_train.c/.h and a firmware harness), through jinja."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from codegen.render import _Env
from edgekit import __version__
from edgekit.passes.fp16 import ACTIVATION_BOUNDS
from edgekit.train import golden
from edgekit.train.spec import TrainSpec

ALIGN = 16


def _hexf(v: Any) -> str:
    """An exact binary32 literal of a value representable in binary32."""
    f = float(np.float32(v))
    assert float(np.float32(f)) == f
    return float.hex(f) + "f"


def _body(data: np.ndarray, per_line: int = 8) -> str:
    flat = np.ascontiguousarray(data).reshape(-1)
    if flat.dtype == np.float16:
        items = [f"0x{int(b):04x}u" for b in flat.view(np.uint16)]
    else:
        items = [_hexf(v) for v in flat]
    lines = [", ".join(items[i : i + per_line]) for i in range(0, len(items), per_line)]
    return ",\n    ".join(lines)


def _align(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


@dataclass
class TrainLayout:
    """Where the train step keeps its buffers, in bytes of the training arena.

    act[i] is the input of tail op i (act[0] is read in place from the inference arena, where
    the frozen layers left it, so it is None here) and act[i + 1] its output; a reshape's output
    is its input. Two gradient rows ping-pong through the backward pass; `scratch` holds one
    row of weight gradients and the bias gradients of the layer being updated.
    """

    act: list[int | None]
    grad: list[int]
    grad_bytes: int  # both rows
    scratch: int
    scratch_bytes: int
    arena: int
    activation_bytes: int
    dy_buf: list[int]  # per tail op: the gradient buffer holding dL/d(output)
    dx_buf: list[int | None]  # per tail op: where dL/d(input) goes (None: not needed)
    col: list[int | None]  # per tail op: its im2col matrix (kept for the weight gradient)
    col_bytes: int
    dcol: int  # the gradient of an im2col matrix, before col2im folds it into dx
    dcol_bytes: int


def layout(spec: TrainSpec) -> TrainLayout:
    es = np.dtype(spec.dtype).itemsize
    act: list[int | None] = [None]
    at = 0
    for t in spec.tail:
        if t.kind == "reshape":
            act.append(act[-1])
            continue
        act.append(at)
        at += _align(t.out_size * es)
    activation_bytes = at
    col: list[int | None] = [None] * len(spec.tail)
    for i, t in enumerate(spec.tail):
        if t.kind == "dense" and t.conv is not None:
            col[i] = at
            at += _align(t.rows * t.depth * es)
    col_bytes = at - activation_bytes
    dy_buf: list[int] = [0] * len(spec.tail)
    dx_buf: list[int | None] = [None] * len(spec.tail)
    need = [spec.outputs, 0]  # elements each gradient row must hold; the loss writes row 0
    cur = 0
    for i in range(len(spec.tail) - 1, -1, -1):
        t = spec.tail[i]
        dy_buf[i] = cur
        if t.kind == "reshape":
            dx_buf[i] = cur
        elif i > 0:
            cur = 1 - cur
            dx_buf[i] = cur
            need[cur] = max(need[cur], t.in_size)
    # each row is sized for the widest gradient it ever holds, not the widest of all
    sizes = [_align(n * es) for n in need]
    grad = [at, at + sizes[0]]
    grad_bytes = sizes[0] + sizes[1]
    at += grad_bytes
    # one row of weight gradients (dense: over the inputs; depthwise: over the channels), then
    # the bias gradients
    row = max(t.depth if t.kind == "dense" else t.units for t in spec.layers)
    units = max(t.units for t in spec.layers)
    scratch, scratch_bytes = at, _align(row * es) + _align(units * es)
    at += scratch_bytes
    dcol_elems = max(
        [t.rows * t.depth for t, dx in zip(spec.tail, dx_buf, strict=True)
         if t.kind == "dense" and t.conv is not None and dx is not None] or [0]
    )  # fmt: skip
    dcol, dcol_bytes = at, _align(dcol_elems * es)
    at += dcol_bytes
    return TrainLayout(
        act, grad, grad_bytes, scratch, scratch_bytes, at, activation_bytes, dy_buf, dx_buf,
        col, col_bytes, dcol, dcol_bytes,
    )  # fmt: skip


def weight_bytes(spec: TrainSpec) -> int:
    return spec.parameter_count * np.dtype(spec.dtype).itemsize


def render_training(spec: TrainSpec, name: str, rvv: bool = False) -> dict[str, str]:
    """<name>_train.h, <name>_train.c and harness_train.h (the firmware glue). `rvv`: the
    target has RVV 1.0 (and Zvfh for fp16): dense kernels use LMUL-8 intrinsics."""
    env = _Env()
    fp16 = spec.precision == "fp16"
    dt = np.dtype(spec.dtype)
    lay = layout(spec)
    tail = []
    d = 0
    for i, t in enumerate(spec.tail):
        item: dict[str, Any] = {
            "i": i,
            "kind": t.kind,
            "name": t.name,
            "source": t.source,
            "rows": t.rows,
            "depth": t.depth,
            "units": t.units,
            "activation": t.activation,
            "x": lay.act[i],
            "y": lay.act[i + 1],
            "dy": lay.dy_buf[i],
            "dx": lay.dx_buf[i],
            "col": lay.col[i],
            "conv": t.conv if t.kind == "dense" else None,  # im2col geometry
            "geom": t.conv,
            "mult": t.mult,
            "pool": t.pool,
            "out_size": t.out_size,
            "post": t.kind in ("pool", "avgpool") and t.activation != "none",
        }
        lo, hi = ACTIVATION_BOUNDS[t.activation]
        item.update(lo=None if lo is None else _hexf(lo), hi=None if hi is None else _hexf(hi))
        if t.trained:
            assert t.weights is not None and t.bias is not None
            item.update(
                d=d,
                # the model's layouts: dense [units][depth] (weight-gradient and input-gradient
                # loops run over a contiguous row of inputs), depthwise [taps][channels]
                w_body=_body(t.weights if t.kind == "dense" else t.weights.T),
                b_body=_body(t.bias),
            )
            d += 1
        tail.append(item)
    opt = spec.optimizer
    input_count = spec.graph.tensor(spec.graph.inputs[0]).size
    ctx = {
        "name": name,
        "NAME": name.upper(),
        "version": __version__,
        "prec": spec.precision,
        "P": "ek_h" if fp16 else "ek_s",
        "S": "uint16_t" if fp16 else "float",
        "esize": dt.itemsize,
        "tail": tail,
        "layers": [x for x in tail if x["kind"] in ("dense", "depthwise")],
        "loss": spec.loss,
        "lr": f"{opt.lr:g}",
        "momentum": f"{opt.momentum:g}" if opt.momentum else "",
        # update constants rounded once to storage, written exactly
        "neg_lr": _hexf(np.asarray(-opt.lr).astype(dt)),
        "mu": _hexf(np.asarray(opt.momentum).astype(dt)),
        "mse_scale": _hexf(np.float32(2.0 / spec.outputs)),
        "sqrt2": _hexf(golden.SQRT2),
        "ln2": _hexf(golden.LN2),
        "log_poly": [_hexf(c) for c in golden.LOG_POLY],
        "outputs": spec.outputs,
        "params": spec.parameter_count,
        "input_count": input_count,
        "input_bytes": input_count * dt.itemsize,
        "target_bytes": 4 if spec.loss == "cross-entropy" else spec.outputs * dt.itemsize,
        "weight_bytes": weight_bytes(spec),
        "arena_bytes": lay.arena,
        "grad_offsets": lay.grad,
        "scratch": lay.scratch,
        "gb_at": lay.scratch_bytes - _align(max(t.units for t in spec.layers) * dt.itemsize),
        "rvv": rvv,
        "EW": 16 if fp16 else 32,
        "SFX": "f16m8" if fp16 else "f32m8",
        "VT": "vfloat16m8_t" if fp16 else "vfloat32m8_t",
        "CT": "ek_h_t" if fp16 else "float",
        "dcol": lay.dcol,
        "frozen_active": spec.frozen_active,
        "feature_offset": spec.feature_offset,
        "feature_bytes": spec.tail[0].in_size * dt.itemsize,
        "trailing_softmax": spec.trailing_softmax,
        "last_y": lay.act[-1],
    }
    return {
        f"{name}_train.h": env.render("train/train.h.j2", **ctx),
        f"{name}_train.c": env.render("train/train.c.j2", **ctx),
        "harness_train.h": env.render("train/harness_train.h.j2", **ctx),
    }
