#!/usr/bin/env python3
"""Structure-aware fuzzing of edgekit's model readers, through load_model + compile_graph.

Every execution takes a seed model (the built-in DS-CNN and tiny MLP, one small model per TFLite
operator edgekit compiles, and the MLPerf Tiny models when ../shared/models holds them), applies
one to three random mutations and runs the result through `load_model` and `compile_graph` in a
worker process that has an address-space limit and a timer. Success and one EdgekitError are the
only acceptable outcomes; everything else is a finding:

  crash    an exception other than EdgekitError escaped (or one was wrapped around MemoryError)
  hang     one execution took longer than --timeout seconds
  memory   the worker ran out of its --memory-mb allowance above its own baseline
  died     the worker process died (a native crash, or the kernel's OOM killer)
  bad-c    (--check-c) a model edgekit accepted gives C that gcc rejects under the strict flags,
           or that AddressSanitizer / UBSan flags on random inputs

TFLite mutants are made on the schema object API (shapes, types, quantization arrays, buffers,
operator and tensor indices, options, graph wiring) and repacked with `pack_model`, or on the raw
bytes (bit flips, truncation, interesting 32-bit values, offsets redirected to other tables, every
entry of a table vector pointed at one table). .ekir mutants edit the JSON header structurally
(values swapped for hostile ones, keys dropped, ops reordered, ranges moved, nesting deepened),
the version and length fields, or the raw bytes, of lowered and unlowered seeds; the `fekir`
reader does the same to .ekir files of the float ONNX seeds lowered to FP16 and FP32.

Executions are deterministic: execution I of a reader depends only on --seed, the reader and I,
so any finding replays in-process, with its traceback, with --replay READER:I.

    python bench/fuzz_readers.py --execs 100000 --jobs 2      # the full campaign
    python bench/fuzz_readers.py --seconds 600 --check-c 40     # a bounded run
    python bench/fuzz_readers.py --replay ekir:1234             # one case, in this process
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import hashlib
import json
import math
import multiprocessing as mp
import os
import resource
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from edgekit.errors import EdgekitError
from edgekit.frontends.tflite import read_tflite
from edgekit.frontends.tflite_writer import TFLiteBuilder, pack_model
from edgekit.ir import serialize
from edgekit.ir.graph import DTYPES, Graph
from edgekit.models.dscnn import build_dscnn_kws, build_tiny_mlp
from edgekit.pipeline import compile_graph, load_model

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fuzz_nir import mutate_nir, nir_seed_models, run_nir  # noqa: E402 - sibling bench module

REPO = Path(__file__).resolve().parents[1]
MLPERF_DIR = REPO.parent / "shared" / "models" / "mlperf-tiny"
MLPERF = ["kws_ref_model.tflite", "vww_96_int8.tflite", "pretrainedResnet_quant.tflite",
          "ad01_int8.tflite"]  # fmt: skip
READERS = ("tflite", "ekir")  # the default campaign ("both")
# ONNX and NIR run on request (--reader onnx|nir|all): they need the onnx and nir packages (the
# `dev` extra has both). Appending them to ALL_READERS keeps the cases of the first two unchanged.
# fekir: .ekir files of float models lowered to FP16 and FP32, which rederive.py checks since
# it stopped trusting them (the int8 .ekir seeds never reached that path)
ALL_READERS = (*READERS, "onnx", "nir", "fekir")

# fmt: off
INT32 = [0, 1, -1, 2, 3, 4, 7, 8, 15, 16, 127, 128, 255, 256, -128, -129, 1000, 32767, 65535,
         1 << 16, 1 << 20, 1 << 24, (1 << 28) + 1, 1 << 30, (1 << 31) - 1, -(1 << 31), -2, -1000]
FLOATS = [0.0, -0.0, -1.0, math.nan, math.inf, -math.inf, 1e-45, 1e-38, 1e-31, 1e-12, 1e30,
          3.4e38, 1.0, 0.5, 1.0 / 256, 2.0**-20, 6.0, 1e6]
HOSTILE_JSON: list[Any] = [None, True, 0, -1, 1, 2**31, -(2**63), 2**64, 10**30, 0.5, math.nan,
                           math.inf, -math.inf, 1e308, "", "x", "../../etc/passwd", "a*/b",
                           "\u00e9\n\"", [], [0], [[1, 2]], {}, {"a": 1}]
# fmt: on


# --- seed models -------------------------------------------------------------------------------


def _q(rng: np.random.Generator) -> tuple[float, int]:
    return float(np.float32(10 ** rng.uniform(-2.5, -0.5))), int(rng.integers(-128, 128))


def _conv_model(rng: np.random.Generator, depthwise: bool) -> TFLiteBuilder:
    b = TFLiteBuilder()
    h, w, c = (int(v) for v in rng.integers(1, 7, 3))
    kh, kw = int(rng.integers(1, min(h, 3) + 1)), int(rng.integers(1, min(w, 3) + 1))
    stride = int(rng.integers(1, 3))
    padding = str(rng.choice(["SAME", "VALID"]))
    mult = int(rng.integers(1, 3)) if depthwise else 1
    oc = c * mult if depthwise else int(rng.integers(1, 6))
    osz = [
        ((n + stride - 1) // stride) if padding == "SAME" else (n - k) // stride + 1
        for n, k in ((h, kh), (w, kw))
    ]
    s_in, z_in = _q(rng)
    x = b.tensor("x", [1, h, w, c], np.int8, s_in, z_in)
    shape = (1, kh, kw, oc) if depthwise else (oc, kh, kw, c)
    scales = (10 ** rng.uniform(-3, -1.5, oc)).astype(np.float32)
    wt = b.const(
        "w",
        rng.integers(-127, 128, shape).astype(np.int8),
        scales,
        0,
        quantized_dimension=3 if depthwise else 0,
    )
    bias = b.const(
        "b",
        rng.integers(-2000, 2000, oc).astype(np.int32),
        (scales * np.float32(s_in)).astype(np.float32),
        0,
    )
    y = b.tensor("y", [1, *osz, oc], np.int8, *_q(rng))
    b.op(
        "DEPTHWISE_CONV_2D" if depthwise else "CONV_2D",
        [x, wt, bias],
        [y],
        stride=stride,
        padding=padding,
        activation=str(rng.choice(["NONE", "RELU", "RELU6"])),
    )
    b.inputs([x])
    b.outputs([y])
    return b


def _unary(
    op: str,
    in_dtype: Any = np.int8,
    out: tuple[Any, float | None, int | None] | None = None,
    **options: Any,
) -> Callable[[np.random.Generator], TFLiteBuilder]:
    def build(rng: np.random.Generator) -> TFLiteBuilder:
        b = TFLiteBuilder()
        shape = [1, int(rng.integers(1, 5)), int(rng.integers(1, 9))]
        q = (None, None) if np.dtype(in_dtype) == np.float32 else _q(rng)
        x = b.tensor("x", shape, in_dtype, *q)
        dtype, scale, zp = out if out is not None else (np.int8, *_q(rng))
        y = b.tensor("y", shape, dtype, scale, zp)
        b.op(op, [x], [y], **options)
        b.inputs([x])
        b.outputs([y])
        return b

    return build


def _binary(op: str) -> Callable[[np.random.Generator], TFLiteBuilder]:
    def build(rng: np.random.Generator) -> TFLiteBuilder:
        b = TFLiteBuilder()
        shape = [1, int(rng.integers(1, 4)), int(rng.integers(1, 6))]
        other = [1, 1, shape[2]] if rng.random() < 0.4 else shape
        s1, z1 = _q(rng)
        s2, z2 = _q(rng)
        so = float(np.float32(max(s1, s2) * rng.uniform(0.5, 3.0)))
        x1 = b.tensor("a", shape, np.int8, s1, z1)
        x2 = b.tensor("b", other, np.int8, s2, z2)
        y = b.tensor("y", shape, np.int8, so, int(rng.integers(-128, 128)))
        b.op(op, [x1, x2], [y], activation=str(rng.choice(["NONE", "RELU"])))
        b.inputs([x1, x2])
        b.outputs([y])
        return b

    return build


def _fc_model(rng: np.random.Generator) -> TFLiteBuilder:
    b = TFLiteBuilder()
    batch, depth, units = int(rng.integers(1, 3)), int(rng.integers(1, 20)), int(rng.integers(1, 9))
    s_in, z_in = _q(rng)
    x = b.tensor("x", [batch, depth], np.int8, s_in, z_in)
    w_s = float(np.float32(10 ** rng.uniform(-3, -1.5)))
    wt = b.const("w", rng.integers(-127, 128, (units, depth)).astype(np.int8), w_s, 0)
    bias = b.const("b", rng.integers(-5000, 5000, units).astype(np.int32), s_in * w_s, 0)
    y = b.tensor("y", [batch, units], np.int8, *_q(rng))
    b.op("FULLY_CONNECTED", [x, wt, bias], [y], activation=str(rng.choice(["NONE", "RELU"])))
    b.inputs([x])
    b.outputs([y])
    return b


def _pool_model(op: str) -> Callable[[np.random.Generator], TFLiteBuilder]:
    def build(rng: np.random.Generator) -> TFLiteBuilder:
        b = TFLiteBuilder()
        h, w, c = int(rng.integers(2, 8)), int(rng.integers(2, 8)), int(rng.integers(1, 5))
        f, s = int(rng.integers(1, 3)), int(rng.integers(1, 3))
        padding = str(rng.choice(["SAME", "VALID"]))
        osz = [((n + s - 1) // s) if padding == "SAME" else (n - f) // s + 1 for n in (h, w)]
        q = _q(rng)
        x = b.tensor("x", [1, h, w, c], np.int8, *q)
        y = b.tensor("y", [1, *osz, c], np.int8, *q)
        b.op(op, [x], [y], filter=f, stride=s, padding=padding)
        b.inputs([x])
        b.outputs([y])
        return b

    return build


def _shape_model(op: str) -> Callable[[np.random.Generator], TFLiteBuilder]:
    def build(rng: np.random.Generator) -> TFLiteBuilder:
        b = TFLiteBuilder()
        q = _q(rng)
        n, c = int(rng.integers(1, 5)), int(rng.integers(1, 6))
        opts: dict[str, Any] = {}
        ins_extra: list[int] = []
        if op == "RESHAPE":
            xs, ys = [1, n, c], [1, n * c]
        elif op == "SQUEEZE":
            xs, ys, opts = [1, n, 1, c], [n, c], {"squeeze_dims": [0, 2]}
        elif op == "PAD":
            pads = rng.integers(0, 3, (3, 2))
            xs = [1, n, c]
            ys = [d + int(p.sum()) for d, p in zip(xs, pads, strict=True)]
            opts = {"paddings": pads.astype(np.int32)}
        elif op == "CONCATENATION":
            xs, ys, opts = [1, n, c], [1, n, 2 * c], {"axis": 2}
        elif op == "MEAN":
            xs, ys, opts = (
                [1, n, c, 2],
                [1, 1, 1, 2],
                {"axis": np.array([1, 2], np.int32), "keep_dims": True},
            )
        else:  # STRIDED_SLICE
            xs = [1, n + 2, c + 1]
            ys = [1, len(range(1, n + 2, 2)), c]
            opts = {
                "begin": np.array([0, 1, 1], np.int32),
                "end": np.array([1, n + 2, c + 1], np.int32),
                "strides": np.array([1, 2, 1], np.int32),
            }
        x = b.tensor("x", xs, np.int8, *q)
        if op == "CONCATENATION":
            ins_extra = [b.tensor("x2", xs, np.int8, *q)]
        yq = _q(rng) if op == "MEAN" else q
        y = b.tensor("y", ys, np.int8, *yq)
        b.op(op, [x, *ins_extra], [y], **opts)
        b.inputs([x, *ins_extra])
        b.outputs([y])
        return b

    return build


# One builder per TFLite operator of edgekit.frontends.tflite.SUPPORTED.
def _tconv_model(rng: np.random.Generator) -> TFLiteBuilder:
    b = TFLiteBuilder()
    h, w, cin, cout = (int(v) for v in rng.integers(1, 5, 4))
    kh, kw, stride = int(rng.integers(1, 4)), int(rng.integers(1, 4)), int(rng.integers(1, 3))
    padding = str(rng.choice(["SAME", "VALID"]))
    oh, ow = ((h * stride, w * stride) if padding == "SAME"
              else ((h - 1) * stride + kh, (w - 1) * stride + kw))  # fmt: skip
    s_in, z_in = _q(rng)
    scales = (10 ** rng.uniform(-3, -1.5, cout)).astype(np.float32)
    x = b.tensor("x", [1, h, w, cin], np.int8, s_in, z_in)
    wt = b.const("w", rng.integers(-127, 128, (cout, kh, kw, cin)).astype(np.int8), scales, 0,
                 quantized_dimension=0)  # fmt: skip
    bias = b.const("b", rng.integers(-2000, 2000, cout).astype(np.int32),
                   (scales * np.float32(s_in)).astype(np.float32), 0)  # fmt: skip
    y = b.tensor("y", [1, oh, ow, cout], np.int8, *_q(rng))
    b.op("TRANSPOSE_CONV", [wt, x, bias], [y], stride=[stride, stride], padding=padding)
    b.inputs([x])
    b.outputs([y])
    return b


SINGLE_OP_BUILDERS: dict[str, Callable[[np.random.Generator], TFLiteBuilder]] = {
    "CONV_2D": lambda rng: _conv_model(rng, False),
    "DEPTHWISE_CONV_2D": lambda rng: _conv_model(rng, True),
    "FULLY_CONNECTED": _fc_model,
    "AVERAGE_POOL_2D": _pool_model("AVERAGE_POOL_2D"),
    "MAX_POOL_2D": _pool_model("MAX_POOL_2D"),
    "ADD": _binary("ADD"),
    "SUB": _binary("SUB"),
    "MUL": _binary("MUL"),
    "RESHAPE": _shape_model("RESHAPE"),
    "SQUEEZE": _shape_model("SQUEEZE"),
    "SOFTMAX": _unary("SOFTMAX", out=(np.int8, 1.0 / 256, -128), beta=1.0),
    "LOGISTIC": _unary("LOGISTIC", out=(np.int8, 1.0 / 256, -128)),
    "TANH": _unary("TANH", out=(np.int8, 1.0 / 128, 0)),
    "RELU": _unary("RELU"),
    "RELU6": _unary("RELU6"),
    "QUANTIZE": _unary("QUANTIZE", in_dtype=np.float32),
    "DEQUANTIZE": _unary("DEQUANTIZE", out=(np.float32, None, None)),
    "PAD": _shape_model("PAD"),
    "CONCATENATION": _shape_model("CONCATENATION"),
    "MEAN": _shape_model("MEAN"),
    "STRIDED_SLICE": _shape_model("STRIDED_SLICE"),
    "LEAKY_RELU": _unary("LEAKY_RELU", alpha=0.2),
    "HARD_SWISH": _unary("HARD_SWISH"),
    "TRANSPOSE_CONV": _tconv_model,
}


def single_op_model(op: str, seed: int) -> bytes:
    """A small valid int8 model holding one `op`, with shapes and quantization drawn from seed."""
    return SINGLE_OP_BUILDERS[op](np.random.default_rng([seed, len(op)])).finish()


def seed_models(mlperf: bool = True) -> list[tuple[str, bytes]]:
    """(name, .tflite bytes) of every seed, in a fixed order."""
    seeds = [("dscnn", build_dscnn_kws(0)), ("mlp", build_tiny_mlp(0))]
    seeds += [(f"op_{op.lower()}", single_op_model(op, 0)) for op in SINGLE_OP_BUILDERS]
    if mlperf:
        seeds += [
            (f.split(".")[0], (MLPERF_DIR / f).read_bytes())
            for f in MLPERF
            if (MLPERF_DIR / f).is_file()
        ]
    return seeds


# --- TFLite mutations on the object API --------------------------------------------------------


# The mutation classes applied to the case being made, counted by the campaign (coverage of
# the classes). Recording draws nothing from the generator, so cases stay what they were.
APPLIED: list[str] = []


def _apply(rng: np.random.Generator, mutations: list[Callable[..., None]], *args: Any) -> None:
    """Pick one of `mutations`, record its name and apply it."""
    fn = _pick(rng, mutations)
    APPLIED.append(fn.__name__.lstrip("_"))
    fn(rng, *args)


def _pick(rng: np.random.Generator, items: list[Any]) -> Any:
    return items[int(rng.integers(len(items)))]


def _int(rng: np.random.Generator, bound: int | None = None) -> int:
    if bound is not None and rng.random() < 0.5:
        return int(rng.integers(-2, bound + 3))
    return int(_pick(rng, INT32))


def _tensors(m: Any) -> list[Any]:
    return m.subgraphs[0].tensors or []


def _ops(m: Any) -> list[Any]:
    return m.subgraphs[0].operators or []


def _mut_shape(rng: np.random.Generator, m: Any) -> None:
    t = _pick(rng, _tensors(m))
    shape = list(t.shape) if t.shape is not None else []
    r = rng.random()
    if r < 0.15:
        shape = shape + [_int(rng, 4)] * int(rng.integers(1, 6))
    elif r < 0.25 and shape:
        shape.pop(int(rng.integers(len(shape))))
    elif shape:
        shape[int(rng.integers(len(shape)))] = _int(rng, 64)
    t.shape = shape


def _mut_type(rng: np.random.Generator, m: Any) -> None:
    _pick(rng, _tensors(m)).type = int(rng.integers(-3, 20))


def _mut_buffer_index(rng: np.random.Generator, m: Any) -> None:
    t = _pick(rng, _tensors(m))
    t.buffer = int(
        _pick(
            rng,
            [
                0,
                1,
                len(m.buffers),
                len(m.buffers) + 7,
                2**32 - 1,
                int(rng.integers(len(m.buffers))),
            ],
        )
    )


def _mut_quant(rng: np.random.Generator, m: Any) -> None:
    t = _pick(rng, _tensors(m))
    q = t.quantization or schema.QuantizationParametersT()
    t.quantization = q
    r = rng.random()
    scale = list(q.scale) if q.scale is not None else [0.1]
    if r < 0.35:
        scale[int(rng.integers(len(scale)))] = _pick(rng, FLOATS)
        q.scale = scale
    elif r < 0.55:
        q.zeroPoint = [int(_pick(rng, INT32)) for _ in range(len(scale) + int(rng.integers(-1, 2)))]
    elif r < 0.7:
        q.quantizedDimension = _int(rng, 4)
    elif r < 0.85:
        q.scale = scale * int(rng.integers(2, 5))
    else:
        t.quantization = None


def _mut_buffer_data(rng: np.random.Generator, m: Any) -> None:
    full = [b for b in m.buffers if b.data is not None and len(b.data)]
    if not full:
        return
    buf = _pick(rng, full)
    data = np.asarray(buf.data, dtype=np.uint8)
    r = rng.random()
    if r < 0.3:
        buf.data = data[: int(rng.integers(len(data)))]
    elif r < 0.5:
        buf.data = np.concatenate([data, rng.integers(0, 256, int(rng.integers(1, 64)), np.uint8)])
    elif r < 0.6:
        buf.data = None
    elif r < 0.7:
        buf.offset, buf.size = int(rng.integers(2, 1 << 20)), len(data)
    else:
        data = data.copy()
        idx = rng.integers(0, len(data), max(1, len(data) // 50))
        data[idx] = rng.integers(0, 256, idx.size)  # extreme weights, e.g. for the overflow pass
        data[idx[: len(idx) // 2]] = _pick(rng, [0x7F, 0x80])
        buf.data = data


def _mut_op_io(rng: np.random.Generator, m: Any) -> None:
    op = _pick(rng, _ops(m))
    which = "inputs" if rng.random() < 0.6 else "outputs"
    idx = list(getattr(op, which) if getattr(op, which) is not None else [])
    n = len(_tensors(m))
    r = rng.random()
    if r < 0.5 and idx:
        idx[int(rng.integers(len(idx)))] = int(
            _pick(rng, [-1, -2, n, n + 5, 2**31 - 1, int(rng.integers(n))])
        )
    elif r < 0.7 and idx:
        idx.pop(int(rng.integers(len(idx))))
    elif r < 0.85:
        idx.append(int(rng.integers(-1, n)))
    else:
        idx = idx[::-1]
    setattr(op, which, idx)


def _mut_opcode(rng: np.random.Generator, m: Any) -> None:
    if rng.random() < 0.5:
        _pick(rng, _ops(m)).opcodeIndex = int(_pick(rng, [len(m.operatorCodes), 2**32 - 1, 0, 1]))
    else:
        code = _pick(rng, m.operatorCodes)
        code.builtinCode = int(rng.integers(0, 210))
        code.deprecatedBuiltinCode = min(code.builtinCode, 127)


_OPTION_TYPES = [v for k, v in vars(schema.BuiltinOptions).items() if not k.startswith("_")]


def _mut_options(rng: np.random.Generator, m: Any) -> None:
    op = _pick(rng, _ops(m))
    r = rng.random()
    if r < 0.15:
        op.builtinOptions = None
    elif r < 0.3:
        other = _pick(rng, [o for o in _ops(m) if o.builtinOptions is not None] or [op])
        op.builtinOptionsType, op.builtinOptions = (
            other.builtinOptionsType,
            copy.deepcopy(other.builtinOptions),
        )
    elif op.builtinOptions is not None and vars(op.builtinOptions):
        key = _pick(rng, sorted(vars(op.builtinOptions)))
        old = getattr(op.builtinOptions, key)
        if isinstance(old, bool):
            new: Any = not old
        elif isinstance(old, float):
            new = _pick(rng, FLOATS)
        elif isinstance(old, int):
            new = int(_pick(rng, [v for v in INT32 if -128 <= v <= 127] + [old + 1, old - 1]))
        else:
            new = [_int(rng, 8) for _ in range(int(rng.integers(0, 5)))]
        setattr(op.builtinOptions, key, new)


def _mut_wiring(rng: np.random.Generator, m: Any) -> None:
    sg = m.subgraphs[0]
    ops = _ops(m)
    r = rng.random()
    if r < 0.25 and len(ops) > 1:  # a cycle: an early op reads a later op's output
        i, j = sorted(int(v) for v in rng.choice(len(ops), 2, replace=False))
        if ops[i].inputs is not None and len(ops[i].inputs) and ops[j].outputs is not None:
            ins = list(ops[i].inputs)
            ins[0] = int(ops[j].outputs[0])
            ops[i].inputs = ins
    elif r < 0.4 and len(ops) > 1:  # two producers of one tensor
        i, j = (int(v) for v in rng.choice(len(ops), 2, replace=False))
        ops[i].outputs = list(ops[j].outputs)
    elif r < 0.55 and ops:  # a dangling graph: an op removed
        ops.pop(int(rng.integers(len(ops))))
    elif r < 0.65 and len(ops) > 1:
        rng.shuffle(ops)
    elif r < 0.8:
        sg.inputs = [
            int(rng.integers(-2, len(_tensors(m)) + 2)) for _ in range(int(rng.integers(3)))
        ]
    elif r < 0.9:
        keep = rng.random() < 0.5 and sg.inputs is not None
        sg.outputs = list(sg.inputs) if keep else []
    else:
        m.subgraphs.append(copy.deepcopy(sg) if rng.random() < 0.5 else schema.SubGraphT())


def _mut_name(rng: np.random.Generator, m: Any) -> None:
    t = _pick(rng, _tensors(m))
    t.name = _pick(
        rng,
        [
            "",
            "../../x",
            "a/b\\c",
            'q"uote',
            "new\nline",
            "*/ int x; /*",
            "??/",
            "\u00e9\u2603",
            "x" * 5000,
            "\x00\x1b[31m",
            t.name,
            "%s%n",
        ],
    )


TFLITE_OBJECT_MUTATIONS = [
    _mut_shape,
    _mut_type,
    _mut_buffer_index,
    _mut_quant,
    _mut_buffer_data,
    _mut_op_io,
    _mut_opcode,
    _mut_options,
    _mut_wiring,
    _mut_name,
]


# --- byte mutations (both formats) ------------------------------------------------------------


def _flip(rng: np.random.Generator, data: bytearray) -> None:
    for _ in range(int(rng.integers(1, 9))):
        pos = int(rng.integers(len(data)))
        data[pos] ^= 1 << int(rng.integers(8))


def _u32(rng: np.random.Generator, data: bytearray) -> None:
    pos = int(rng.integers(0, max(1, len(data) - 4))) & ~3
    value = int(
        _pick(
            rng,
            [
                0,
                1,
                4,
                0x7FFFFFFF,
                0xFFFFFFFF,
                0x80000000,
                len(data),
                len(data) - 4,
                int(rng.integers(0, 2**32)),
            ],
        )
    )
    data[pos : pos + 4] = struct.pack("<I", value)


def _redirect(rng: np.random.Generator, data: bytearray) -> None:
    """Point a 32-bit slot at another position, as a uoffset to it would."""
    pos = int(rng.integers(0, max(1, len(data) - 8))) & ~3
    target = int(rng.integers(pos, len(data)))
    data[pos : pos + 4] = struct.pack("<I", target - pos)


def _truncate(rng: np.random.Generator, data: bytearray) -> None:
    del data[int(rng.integers(len(data))) :]


def _splice(rng: np.random.Generator, data: bytearray) -> None:
    pos = int(rng.integers(len(data)))
    if rng.random() < 0.5:
        del data[pos : pos + int(rng.integers(1, 64))]
    else:
        data[pos:pos] = rng.integers(0, 256, int(rng.integers(1, 64)), np.uint8).tobytes()


BYTE_MUTATIONS = [_flip, _flip, _u32, _redirect, _truncate, _splice]


def _share_vector(rng: np.random.Generator, data: bytearray) -> None:
    """Every entry of one table vector (tensors, operators, buffers) points at a single table:
    the amplification a verifier must bound."""
    model = schema.Model.GetRootAs(bytes(data), 0)
    sg = model.Subgraphs(0)
    tab, slot = _pick(rng, [(sg._tab, 4), (sg._tab, 10), (model._tab, 12), (model._tab, 6)])
    off = tab.Offset(slot)
    if not off:
        return
    start, n = tab.Vector(off), tab.VectorLen(off)
    if n < 2:
        return
    keep = int(rng.integers(n))
    target = start + 4 * keep + struct.unpack_from("<I", data, start + 4 * keep)[0]
    for i in range(n):
        data[start + 4 * i : start + 4 * i + 4] = struct.pack("<I", target - (start + 4 * i))


# --- .ekir mutations ---------------------------------------------------------------------------


def _json_slots(node: Any, out: list[tuple[Any, Any]]) -> None:
    items = node.items() if isinstance(node, dict) else enumerate(node)
    for k, v in items:
        out.append((node, k))
        if isinstance(v, dict | list):
            _json_slots(v, out)


def _mut_json(rng: np.random.Generator, header: dict[str, Any]) -> None:
    slots: list[tuple[Any, Any]] = []
    _json_slots(header, slots)
    parent, key = _pick(rng, slots)
    value = parent[key]
    r = rng.random()
    if r < 0.4:
        parent[key] = _pick(rng, HOSTILE_JSON)
    elif r < 0.55 and isinstance(value, int) and not isinstance(value, bool):
        parent[key] = value + int(_pick(rng, [1, -1, 16, -16, 1 << 20, -(1 << 31)]))
    elif r < 0.65:
        parent[key] = NEST  # expanded in the JSON text: too deep for json.dumps itself
    elif r < 0.8 and isinstance(parent, dict):
        del parent[key]
    elif isinstance(parent, list):
        if rng.random() < 0.5:
            parent.insert(int(rng.integers(len(parent) + 1)), copy.deepcopy(value))
        else:
            j = int(rng.integers(len(parent)))
            parent[key], parent[j] = parent[j], parent[key]


NEST = "\x00nest\x00"


def _ekir_file(
    header: dict[str, Any], blob: bytes, major: int = 1, minor: int = 0, hlen: int | None = None
) -> bytes:
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    depth = 12 + len(text) % 3000  # from 12 (about the reader's limit) to thousands of levels
    text = text.replace(json.dumps(NEST).encode(), b"[" * depth + b"0" + b"]" * depth)
    pre = struct.pack("<4sHHI", b"EKIR", major, minor, len(text) if hlen is None else hlen) + text
    return pre + b"\0" * ((-len(pre)) % 16) + blob


def _split_ekir(data: bytes) -> tuple[dict[str, Any], bytes]:
    hlen = struct.unpack_from("<I", data, 8)[0]
    start = 12 + hlen
    return json.loads(data[12:start]), data[start + ((-start) % 16) :]


def mutate_ekir(rng: np.random.Generator, seed: bytes) -> bytes:
    header, blob = _split_ekir(seed)
    r = rng.random()
    if r < 0.6:
        for _ in range(int(rng.integers(1, 4))):
            _mut_json(rng, header)
        APPLIED.append("json_structure")
        return _ekir_file(header, blob)
    if r < 0.7:
        APPLIED.append("version")
        return _ekir_file(
            header, blob, int(_pick(rng, [0, 2, 255, 65535])), int(rng.integers(0, 9))
        )
    if r < 0.78:
        APPLIED.append("header_length")
        return _ekir_file(
            header,
            blob,
            hlen=int(_pick(rng, [0, 1, 2**32 - 1, 16 << 20, int(rng.integers(0, len(seed)))])),
        )
    data = bytearray(seed)
    if r < 0.85:  # corrupt the JSON text itself
        APPLIED.append("json_text")
        hlen = struct.unpack_from("<I", data, 8)[0]
        pos = 12 + int(rng.integers(max(hlen, 1)))
        data[pos : pos + 1] = bytes([int(_pick(rng, [0x22, 0x7B, 0x5D, 0x2C, 0x00, 0xFF]))])
        return bytes(data)
    for _ in range(int(rng.integers(1, 4))):
        _apply(rng, BYTE_MUTATIONS, data)
    return bytes(data)


def mutate_tflite(rng: np.random.Generator, seed: bytes, model: Any) -> bytes:
    r = rng.random()
    if r < 0.65:
        m = copy.deepcopy(model)
        mark = len(APPLIED)
        for _ in range(int(rng.integers(1, 4))):
            _apply(rng, TFLITE_OBJECT_MUTATIONS, m)
        try:
            return pack_model(m)
        except Exception:  # a value the schema field cannot hold: mutate the bytes instead
            del APPLIED[mark:]
    data = bytearray(seed)
    if r < 0.72:
        try:
            _share_vector(rng, data)
            APPLIED.append("share_vector")
            return bytes(data)
        except Exception:  # the seed lacks that vector
            pass
    for _ in range(int(rng.integers(1, 4))):
        _apply(rng, BYTE_MUTATIONS, data)
    return bytes(data)


# --- ONNX seeds and mutations ------------------------------------------------------------------


def onnx_seed_models() -> list[tuple[str, bytes]]:
    """(name, .onnx bytes) of small float models built with onnx.helper, all of which compile to
    FP16: a CNN (conv, batchnorm, relu, pooling, depthwise, dense, softmax), an MLP, a residual
    block ending in a transpose, and a reshape whose shape comes from a constant subgraph."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    seeds = []

    def build(name: str, x_shape: list[int], body: Callable[[Any], str]) -> None:
        nodes: list[Any] = []
        inits: list[Any] = []

        class G:
            k = 0

            def const(self, arr: Any) -> str:
                G.k += 1
                n = f"c{G.k}"
                inits.append(numpy_helper.from_array(np.asarray(arr), n))
                return n

            def w(self, *shape: int) -> str:
                return self.const(rng.uniform(-0.5, 0.5, shape).astype(np.float32))

            def node(self, op: str, inputs: list[str], **attrs: Any) -> str:
                G.k += 1
                out = f"v{G.k}"
                nodes.append(helper.make_node(op, inputs, [out], name=f"{op}_{G.k}", **attrs))
                return out

        y = body(G())
        graph = helper.make_graph(
            nodes,
            name,
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
            [helper.make_tensor_value_info(y, TensorProto.FLOAT, None)],
            inits,
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        seeds.append((f"onnx_{name}", model.SerializeToString()))

    def cnn(g: Any) -> str:
        v = g.node("Conv", ["x", g.w(8, 3, 3, 3), g.w(8)], pads=[1, 1, 1, 1])
        ones = np.ones(8, np.float32)
        v = g.node("BatchNormalization", [v, g.const(ones), g.w(8), g.w(8), g.const(ones)])
        v = g.node("Relu", [v])
        v = g.node("MaxPool", [v], kernel_shape=[2, 2], strides=[2, 2])
        v = g.node("Conv", [v, g.w(8, 1, 3, 3)], group=8, pads=[1, 1, 1, 1])
        v = g.node("Clip", [v, g.const(np.float32(0)), g.const(np.float32(6))])
        v = g.node("GlobalAveragePool", [v])
        v = g.node("Flatten", [v])
        v = g.node("Gemm", [v, g.w(5, 8), g.w(5)], transB=1)
        return g.node("Softmax", [v])

    def mlp(g: Any) -> str:
        v = g.node("Add", [g.node("MatMul", ["x", g.w(12, 16)]), g.w(16)])
        v = g.node("Relu", [v])
        return g.node("Gemm", [v, g.w(16, 4), g.w(4)])

    def residual(g: Any) -> str:
        a = g.node("Conv", ["x", g.w(4, 4, 3, 3), g.w(4)], pads=[1, 1, 1, 1])
        v = g.node("Relu", [g.node("Add", [a, "x"])])
        v = g.node("AveragePool", [v], kernel_shape=[2, 2], strides=[2, 2])
        return g.node("Transpose", [v], perm=[0, 2, 3, 1])

    def folded(g: Any) -> str:
        v = g.node("Conv", ["x", g.w(6, 2, 1, 1), g.w(6)])
        n = g.node("Gather", [g.node("Shape", [v]), g.const(np.array([0], np.int64))], axis=0)
        shape = g.node("Concat", [n, g.const(np.array([-1], np.int64))], axis=0)
        v = g.node("Reshape", [v, shape])
        return g.node("MatMul", [v, g.w(6 * 5 * 5, 3)])

    build("cnn", [1, 3, 8, 8], cnn)
    build("mlp", [1, 12], mlp)
    build("residual", [1, 4, 6, 6], residual)
    build("folded", [1, 2, 5, 5], folded)
    return seeds


ONNX_OPS = ["Conv", "Gemm", "MatMul", "Relu", "Clip", "Add", "Sub", "Mul", "Div", "MaxPool",
            "AveragePool", "GlobalAveragePool", "BatchNormalization", "Reshape", "Flatten",
            "Squeeze", "Unsqueeze", "Transpose", "Concat", "Pad", "Softmax", "Sigmoid", "Slice",
            "ReduceMean", "Identity", "Cast", "Shape", "Gather", "ConstantOfShape", "Expand",
            "Tile", "Range", "Resize", "Loop", "If", "Scan", "Einsum", "NoSuchOp"]  # fmt: skip
ONNX_INTS = [*INT32, 1 << 40, -(1 << 40), (1 << 63) - 1, -(1 << 63)]
ONNX_ATTRS = ["kernel_shape", "strides", "pads", "dilations", "group", "axis", "axes", "perm",
              "auto_pad", "transA", "alpha", "epsilon", "to"]  # fmt: skip
ONNX_NAMES = ["", "../../x", "/etc/passwd", "a/b\\c", 'q"uote', "new\nline", "*/ int x; /*",
              "??/", "\u00e9\u2603", "x" * 5000, "\x00\x1b[31m", "%s%n"]  # fmt: skip


def _values(m: Any) -> list[Any]:
    """Every ValueInfo with a tensor shape: graph inputs, outputs and value_info."""
    g = m.graph
    return [v for v in [*g.input, *g.output, *g.value_info] if v.type.HasField("tensor_type")]


def _onnx_dims(rng: np.random.Generator, m: Any) -> None:
    if m.graph.initializer and rng.random() < 0.5:
        t = _pick(rng, list(m.graph.initializer))
        dims = list(t.dims)
        if dims and rng.random() < 0.8:
            dims[int(rng.integers(len(dims)))] = int(_pick(rng, ONNX_INTS))
        else:
            dims = [int(_pick(rng, ONNX_INTS)) for _ in range(int(rng.integers(0, 9)))]
        del t.dims[:]
        t.dims.extend(dims)
        return
    vals = _values(m)
    if not vals:
        return
    shape = _pick(rng, vals).type.tensor_type.shape
    if shape.dim and rng.random() < 0.8:
        d = shape.dim[int(rng.integers(len(shape.dim)))]
        if rng.random() < 0.8:
            d.dim_value = int(_pick(rng, ONNX_INTS[: len(INT32)]))
        else:
            d.dim_param = _pick(rng, ["N", "", "batch", "x" * 300])
    else:
        for _ in range(int(rng.integers(1, 9))):
            shape.dim.add().dim_value = int(rng.integers(0, 4))


def _onnx_data(rng: np.random.Generator, m: Any) -> None:
    from onnx import numpy_helper

    if not m.graph.initializer:
        return
    t = _pick(rng, list(m.graph.initializer))
    r = rng.random()
    if r < 0.3 and t.raw_data:
        t.raw_data = t.raw_data[: int(rng.integers(len(t.raw_data)))]
    elif r < 0.45:
        t.raw_data = t.raw_data + bytes(int(rng.integers(1, 64)))
    elif r < 0.7 and t.data_type == 1:
        arr = numpy_helper.to_array(t).copy()
        if arr.size:
            arr.reshape(-1)[int(rng.integers(arr.size))] = float(_pick(rng, FLOATS))
            t.CopyFrom(numpy_helper.from_array(arr, t.name))
    elif r < 0.85:  # both encodings at once, or none
        t.float_data.extend([float(_pick(rng, FLOATS)) for _ in range(int(rng.integers(0, 5)))])
    else:
        t.ClearField("raw_data")


def _onnx_dtype(rng: np.random.Generator, m: Any) -> None:
    dtype = int(_pick(rng, [0, 1, 2, 3, 6, 7, 9, 10, 11, 16, 17, 99, -1]))
    if m.graph.initializer and rng.random() < 0.5:
        _pick(rng, list(m.graph.initializer)).data_type = dtype
    elif _values(m):
        _pick(rng, _values(m)).type.tensor_type.elem_type = max(dtype, 0)


def _onnx_attr(rng: np.random.Generator, m: Any) -> None:
    from onnx import AttributeProto, helper

    node = _pick(rng, list(m.graph.node))
    attrs = list(node.attribute)
    r = rng.random()
    if attrs and r < 0.6:
        a = _pick(rng, attrs)
        if a.type == AttributeProto.INTS:
            vals = list(a.ints) or [0]
            if rng.random() < 0.7:
                vals[int(rng.integers(len(vals)))] = int(_pick(rng, ONNX_INTS))
            else:
                vals = [int(_pick(rng, INT32)) for _ in range(int(rng.integers(0, 12)))]
            del a.ints[:]
            a.ints.extend(vals)
        elif a.type == AttributeProto.INT:
            a.i = int(_pick(rng, ONNX_INTS))
        elif a.type == AttributeProto.FLOAT:
            a.f = float(_pick(rng, FLOATS))
        else:
            a.type = int(_pick(rng, [0, 1, 2, 3, 6, 7]))
    elif attrs and r < 0.75:
        node.attribute.remove(_pick(rng, attrs))
    else:
        key = _pick(rng, ONNX_ATTRS)
        value: Any = _pick(
            rng, [int(_pick(rng, ONNX_INTS)), [int(_pick(rng, INT32))] * int(rng.integers(0, 9)),
                  float(_pick(rng, FLOATS)), _pick(rng, ["SAME_UPPER", "VALID", "", "x"])]
        )  # fmt: skip
        node.attribute.append(helper.make_attribute(key, value))


def _onnx_wiring(rng: np.random.Generator, m: Any) -> None:
    g = m.graph
    nodes = list(g.node)
    names = ["x", *(o for n in nodes for o in n.output), *(t.name for t in g.initializer)]
    r = rng.random()
    node = _pick(rng, nodes)
    if r < 0.35 and node.input:  # may point at a later output: a cycle
        node.input[int(rng.integers(len(node.input)))] = _pick(rng, [*names, "", "missing"])
    elif r < 0.45:
        node.input.append(_pick(rng, names))
    elif r < 0.55 and node.output:  # two producers of one value
        node.output[0] = _pick(rng, names)
    elif r < 0.65 and len(nodes) > 1:
        g.node.remove(node)
    elif r < 0.75:
        g.node.insert(int(rng.integers(len(nodes) + 1)), copy.deepcopy(node))
    elif r < 0.85:
        order = [copy.deepcopy(n) for n in nodes]
        rng.shuffle(order)  # type: ignore[arg-type]
        del g.node[:]
        g.node.extend(order)
    elif g.output:
        g.output[0].name = _pick(rng, [*names, "missing"])


def _onnx_op_type(rng: np.random.Generator, m: Any) -> None:
    node = _pick(rng, list(m.graph.node))
    if rng.random() < 0.85:
        node.op_type = _pick(rng, ONNX_OPS)
    else:
        node.domain = _pick(rng, ["com.microsoft", "ai.onnx.ml", "x", ""])


def _onnx_opset(rng: np.random.Generator, m: Any) -> None:
    r = rng.random()
    if r < 0.6 and m.opset_import:
        m.opset_import[0].version = int(_pick(rng, [0, 1, 6, 7, 9, 11, 12, 13, 18, 21, 99,
                                                    (1 << 31) - 1, -1]))  # fmt: skip
    elif r < 0.8:
        m.ir_version = int(_pick(rng, [0, 1, 3, 7, 10, 99, (1 << 62)]))
    elif r < 0.9:
        del m.opset_import[:]
    else:
        extra = m.opset_import.add()
        extra.domain, extra.version = "ai.onnx.ml", int(rng.integers(0, 5))


def _onnx_external(rng: np.random.Generator, m: Any) -> None:
    """Weights 'kept in another file': a hostile location, offset or length."""
    from onnx import TensorProto

    if not m.graph.initializer:
        return
    t = _pick(rng, list(m.graph.initializer))
    t.ClearField("raw_data")
    t.ClearField("float_data")
    t.data_location = TensorProto.EXTERNAL
    location = _pick(rng, ["../../../../etc/passwd", "/etc/passwd", "w.bin", "", "case.onnx",
                           ".", "a\x00b", "x" * 5000, "/proc/self/mem", "/dev/zero"])  # fmt: skip
    entries = [("location", location)]
    if rng.random() < 0.6:
        entries += [("offset", str(_pick(rng, ONNX_INTS))), ("length", str(_pick(rng, ONNX_INTS)))]
    del t.external_data[:]
    for key, value in entries:
        e = t.external_data.add()
        e.key, e.value = key, value


def _onnx_amplify(rng: np.random.Generator, m: Any) -> None:
    """A small node that declares a huge constant (folded at import) and feeds it into the graph:
    declared sizes must be checked before anything is allocated."""
    from onnx import helper, numpy_helper

    g = m.graph
    big = [1 << int(rng.integers(10, 21)), 1 << int(rng.integers(10, 21))]
    shape = numpy_helper.from_array(np.array(big, np.int64), "amp_shape")
    one = numpy_helper.from_array(np.ones((1, 1), np.float32), "amp_one")
    kind = _pick(rng, ["ConstantOfShape", "Expand", "Tile", "Range"])
    if kind == "ConstantOfShape":
        node = helper.make_node(kind, ["amp_shape"], ["amp"])
    elif kind in ("Expand", "Tile"):
        node = helper.make_node(kind, ["amp_one", "amp_shape"], ["amp"])
    else:
        lim = numpy_helper.from_array(np.array(float(big[0] * big[1]), np.float32), "amp_lim")
        zero = numpy_helper.from_array(np.array(0.0, np.float32), "amp_zero")
        d = numpy_helper.from_array(np.array(1.0, np.float32), "amp_d")
        g.initializer.extend([lim, zero, d])
        node = helper.make_node(kind, ["amp_zero", "amp_lim", "amp_d"], ["amp"])
    g.initializer.extend([shape, one])
    g.node.insert(0, node)
    g.node.insert(1, helper.make_node("Add", [g.node[1].input[0], "amp"], ["amp_sum"]))
    g.node[2].input[0] = "amp_sum"


def _onnx_name(rng: np.random.Generator, m: Any) -> None:
    g = m.graph
    r = rng.random()
    if r < 0.4:
        _pick(rng, list(g.node)).name = _pick(rng, ONNX_NAMES)
    elif r < 0.7:
        g.name = _pick(rng, ONNX_NAMES)
    else:  # rename a value everywhere: hostile names must flow through consistently
        old, new = "x", _pick(rng, ONNX_NAMES[1:])
        for v in g.input:
            v.name = new if v.name == old else v.name
        for n in g.node:
            for i, name in enumerate(n.input):
                if name == old:
                    n.input[i] = new


ONNX_MUTATIONS = [_onnx_dims, _onnx_dims, _onnx_data, _onnx_dtype, _onnx_attr, _onnx_attr,
                  _onnx_wiring, _onnx_wiring, _onnx_op_type, _onnx_opset, _onnx_external,
                  _onnx_amplify, _onnx_name]  # fmt: skip
ONNX_BYTE_MUTATIONS = [_flip, _flip, _u32, _truncate, _splice]


def mutate_onnx(rng: np.random.Generator, seed: bytes) -> bytes:
    import onnx

    if rng.random() < 0.75:
        m = onnx.load_from_string(seed)
        for _ in range(int(rng.integers(1, 4))):
            _apply(rng, ONNX_MUTATIONS, m)
        return bytes(m.SerializeToString())
    data = bytearray(seed)
    for _ in range(int(rng.integers(1, 4))):
        _apply(rng, ONNX_BYTE_MUTATIONS, data)
    return bytes(data)


# --- cases and outcomes ------------------------------------------------------------------------


@dataclass
class Corpus:
    """Seeds prepared for both readers: .tflite bytes with their unpacked ModelT, and .ekir files
    of each seed lowered (as `generate` writes them) and unlowered (semantic attrs only)."""

    tflite: list[tuple[str, bytes, Any]] = field(default_factory=list)
    ekir: list[tuple[str, bytes]] = field(default_factory=list)
    onnx: list[tuple[str, bytes]] = field(default_factory=list)
    nir: list[tuple[str, bytes]] = field(default_factory=list)
    fekir: list[tuple[str, bytes]] = field(default_factory=list)


def build_corpus(
    mlperf: bool = True, onnx: bool = False, nir: bool = False, fekir: bool = False
) -> Corpus:
    corpus = Corpus()
    if onnx:
        corpus.onnx = onnx_seed_models()
    if fekir:
        from edgekit.frontends.onnx import read_onnx

        for name, data in onnx_seed_models():
            graph = read_onnx(data, name, name)
            for precision in ("fp16", "fp32"):
                lowered = compile_graph(graph, "host", precision=precision).graph
                corpus.fekir.append((f"{name}-{precision}", serialize.dumps(lowered)))
    if nir:
        corpus.nir = nir_seed_models()
    for name, data in seed_models(mlperf):
        model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(data, 0))
        corpus.tflite.append((name, data, model))
        graph = read_tflite(data, name, name)
        corpus.ekir.append((f"{name}-semantic", serialize.dumps(graph)))
        corpus.ekir.append((f"{name}-lowered", serialize.dumps(compile_graph(graph).graph)))
    return corpus


def make_case(corpus: Corpus, reader: str, index: int, seed: int) -> tuple[str, bytes]:
    """The deterministic mutant number `index` for `reader`: (seed name, file bytes)."""
    rng = np.random.default_rng([seed, ALL_READERS.index(reader), index])
    APPLIED.clear()
    model = None
    if reader in ("onnx", "nir", "fekir") and not getattr(corpus, reader):
        raise ValueError(f"the corpus has no {reader} seeds (build_corpus({reader}=True))")
    if reader == "tflite":
        name, data, model = corpus.tflite[int(rng.integers(len(corpus.tflite)))]
    elif reader == "onnx":
        name, data = corpus.onnx[int(rng.integers(len(corpus.onnx)))]
    elif reader == "nir":
        name, data = corpus.nir[int(rng.integers(len(corpus.nir)))]
    elif reader == "fekir":
        name, data = corpus.fekir[int(rng.integers(len(corpus.fekir)))]
    else:
        name, data = corpus.ekir[int(rng.integers(len(corpus.ekir)))]
    try:
        if model is not None:
            return name, mutate_tflite(rng, data, model)
        if reader == "onnx":
            return name, mutate_onnx(rng, data)
        if reader == "nir":
            return name, mutate_nir(rng, data, APPLIED)
        return name, mutate_ekir(rng, data)
    except Exception:  # a mutation that does not apply to this seed: flip bits instead
        APPLIED.clear()
        APPLIED.append("flip(fallback)")
        flipped = bytearray(data)
        _flip(rng, flipped)
        return name, bytes(flipped)


class _Timeout(BaseException):
    """Raised by the execution timer; a BaseException so `except Exception` cannot swallow it."""


def _on_alarm(signum: int, frame: Any) -> None:
    raise _Timeout()


@dataclass
class Outcome:
    kind: str  # ok | error | crash | hang | memory | died | bad-c
    seconds: float
    detail: str = ""


def run_case(path: Path, timeout: float) -> tuple[Outcome, Any]:
    """load_model + compile_graph of one file, classified; returns the compiled model when ok."""
    old = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    t0 = time.perf_counter()
    compiled = None
    # ONNX models are float: the FP16 path is the one that compiles them without a quantizer
    precision = "fp16" if path.suffix == ".onnx" else "int8"
    try:
        if path.suffix == ".nir":
            compiled = run_nir(path)
        else:
            graph, _ = load_model(path)
            compiled = compile_graph(graph, "host", str(path), precision=precision)
        outcome = Outcome("ok", 0.0)
    except EdgekitError as exc:
        text = exc.render()
        wrapped = "MemoryError" in text or "RecursionError" in text
        # numpy's MemoryError: an allocation the address-space limit refused. Without that limit
        # it would have been made (and filled), so it is a memory blow-up, not a clean refusal.
        blowup = "Unable to allocate" in text
        kind = "memory" if blowup else "crash" if wrapped else "error"
        outcome = Outcome(kind, 0.0, text.splitlines()[0][:300])
        if str(path) not in text and not getattr(exc, "after_reader", False):
            outcome = Outcome("crash", 0.0, f"error does not name the file: {text[:200]}")
    except _Timeout:
        outcome = Outcome("hang", 0.0, f"more than {timeout} s")
    except MemoryError:
        outcome = Outcome("memory", 0.0, "MemoryError")
    except BaseException as exc:  # noqa: BLE001 - every other exception is the finding
        outcome = Outcome("crash", 0.0, "".join(traceback.format_exception(exc))[-3000:])
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    outcome.seconds = time.perf_counter() - t0
    return outcome, compiled


# --- generated-code oracle: strict compile and sanitizers --------------------------------------

SANITIZER_MAIN = r"""
/* Runs a generated model on N samples read from a file and writes the outputs to another file:
   model_sanitized IN OUT N. Each sample is every input's bytes back to back, in model order;
   outputs likewise. Inputs and outputs live in their own heap blocks so AddressSanitizer sees
   any access past their ends. */
#include <stdio.h>
#include <stdlib.h>

#include "harness_model.h"

int main(int argc, char **argv)
{
    const void *ins[HARNESS_N_INPUTS];
    void *outs[HARNESS_N_OUTPUTS];
    FILE *fin, *fout;
    int i, ok = 1;
    long n;
    if (argc != 4 || !(fin = fopen(argv[1], "rb")) || !(fout = fopen(argv[2], "wb"))) {
        return 2;
    }
    n = strtol(argv[3], NULL, 10);
    for (i = 0; i < HARNESS_N_OUTPUTS; ++i) {
        outs[i] = malloc(harness_output_bytes[i] ? harness_output_bytes[i] : 1);
    }
    for (; ok && n > 0; --n) {
        for (i = 0; i < HARNESS_N_INPUTS; ++i) {
            void *p = malloc(harness_input_bytes[i] ? harness_input_bytes[i] : 1);
            ok = ok && fread(p, 1, harness_input_bytes[i], fin) == harness_input_bytes[i];
            ins[i] = p;
        }
        if (ok) {
            harness_run(ins, outs);
            for (i = 0; i < HARNESS_N_OUTPUTS; ++i) {
                fwrite(outs[i], 1, harness_output_bytes[i], fout);
            }
        }
        for (i = 0; i < HARNESS_N_INPUTS; ++i) {
            free((void *)ins[i]);
        }
    }
    for (i = 0; i < HARNESS_N_OUTPUTS; ++i) {
        free(outs[i]);
    }
    fclose(fin);
    return (fclose(fout) != 0 || !ok) ? 3 : 0;
}
"""
SANITIZE_FLAGS = [
    "-fsanitize=address,undefined",
    "-fno-sanitize-recover=all",
    "-fno-omit-frame-pointer",
    "-g",
    "-O1",
]
SANITIZE_MAX_ARENA = 16 << 20
STRICT_FLAGS = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"]
SANITIZER_ENV = {
    "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=0",
    "UBSAN_OPTIONS": "print_stacktrace=1",
}


def compiler() -> str:
    return os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc") or "cc"


def build_sanitized(files: dict[str, str], name: str, workdir: Path) -> Path:
    """Write a generated model and the harness to workdir and link them with ASan and UBSan."""
    workdir.mkdir(parents=True, exist_ok=True)
    for fname, text in files.items():
        (workdir / fname).write_text(text)
    (workdir / "sanitizer_main.c").write_text(SANITIZER_MAIN)
    exe = workdir / "model_sanitized"
    cmd = [
        compiler(),
        *STRICT_FLAGS,
        *SANITIZE_FLAGS,
        "-I",
        str(workdir),
        str(workdir / "sanitizer_main.c"),
        str(workdir / f"{name}.c"),
        "-o",
        str(exe),
        "-lm",  # float models call fmaf
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, preexec_fn=_unlimited)
    if proc.returncode != 0:
        raise RuntimeError(f"sanitizer build failed:\n{proc.stderr[-3000:]}")
    return exe


def run_sanitized(
    exe: Path, graph: Graph, samples: list[list[np.ndarray]]
) -> list[list[np.ndarray]]:
    """Run samples through a sanitized build; RuntimeError with the report on any finding."""
    ins = [graph.tensor(t) for t in graph.inputs]
    outs = [graph.tensor(t) for t in graph.outputs]
    src, dst = exe.with_suffix(".in"), exe.with_suffix(".out")
    src.write_bytes(
        b"".join(
            np.ascontiguousarray(a, DTYPES[t.dtype]).tobytes()
            for s in samples
            for a, t in zip(s, ins, strict=True)
        )
    )
    proc = subprocess.run(
        [str(exe), str(src), str(dst), str(len(samples))],
        capture_output=True,
        text=True,
        env={**os.environ, **SANITIZER_ENV},
        timeout=60,
        preexec_fn=_unlimited,
    )
    if proc.returncode != 0 or "runtime error" in proc.stderr or "Sanitizer" in proc.stderr:
        raise RuntimeError(f"sanitized run failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    raw, pos, result = dst.read_bytes(), 0, []
    for _ in samples:
        row = []
        for t in outs:
            n = t.nbytes
            row.append(np.frombuffer(raw[pos : pos + n], DTYPES[t.dtype]).reshape(t.shape).copy())
            pos += n
        result.append(row)
    if pos != len(raw):
        raise RuntimeError(f"sanitized run wrote {len(raw)} bytes, expected {pos}")
    return result


def random_samples(graph: Graph, n: int, seed: int) -> list[list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        row = []
        for name in graph.inputs:
            t = graph.tensor(name)
            dt = DTYPES[t.dtype]
            if dt.kind == "f":
                row.append(rng.normal(0, 4, t.shape).astype(dt))
            else:
                info = np.iinfo(dt)
                row.append(rng.integers(info.min, int(info.max) + 1, t.shape).astype(dt))
        out.append(row)
    return out


def check_generated_c(compiled: Any, workdir: Path) -> str | None:
    """None if the C of an accepted model builds strictly and runs clean under the sanitizers."""
    gen = compiled.generated
    if compiled.plan.arena_bytes > SANITIZE_MAX_ARENA:
        return None  # valid but too big to run under the sanitizers within the time limit
    try:
        exe = build_sanitized(gen.files, gen.name, workdir)
        run_sanitized(exe, compiled.graph, random_samples(compiled.graph, 3, 0))
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        return str(exc)[-3000:]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return None


# --- workers -----------------------------------------------------------------------------------


def _limit_memory(megabytes: int) -> None:
    with open("/proc/self/status") as f:
        vm = next(int(line.split()[1]) for line in f if line.startswith("VmSize:")) * 1024
    # only the soft limit: compilers and sanitized programs this worker starts lift it again
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (vm + (megabytes << 20), hard))


def _unlimited() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (hard, hard))


def _worker(conn: Any, corpus: Corpus, args: argparse.Namespace, tmp: str) -> None:
    _limit_memory(args.memory_mb)
    work = Path(tempfile.mkdtemp(prefix="w", dir=tmp))
    seen_c: set[str] = set()
    checked = Counter[str]()
    while True:
        task = conn.recv()
        if task is None:
            return
        reader, index = task
        try:
            name, data = make_case(corpus, reader, index, args.seed)
        except Exception as exc:  # a bug of this script, not of edgekit: reported on its own
            conn.send((reader, index, "?", "harness", 0.0, repr(exc), []))
            continue
        path = work / f"case.{reader}"
        path.write_bytes(data)
        applied = list(APPLIED)
        outcome, compiled = run_case(path, args.timeout)
        if compiled is not None and reader == "nir":
            compiled = None  # spiking C is checked by tests/test_sanitizers.py, not here
        if compiled is not None and checked[reader] < args.check_c:
            key = hashlib.sha256(json.dumps(compiled.generated.files, sort_keys=True).encode())
            if key.hexdigest() not in seen_c:
                seen_c.add(key.hexdigest())
                checked[reader] += 1
                problem = check_generated_c(compiled, work / "c")
                if problem:
                    outcome = Outcome("bad-c", outcome.seconds, problem)
        conn.send((reader, index, name, outcome.kind, outcome.seconds, outcome.detail, applied))


@dataclass
class Stats:
    execs: int = 0
    seconds: float = 0.0
    outcomes: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    mutations: Counter[str] = field(default_factory=Counter)
    findings: list[dict[str, Any]] = field(default_factory=list)
    slowest: float = 0.0

    def to_json(self, wall: float) -> dict[str, Any]:
        return {
            "executions": self.execs,
            "executions_per_second": round(self.execs / wall, 1) if wall else 0.0,
            "outcomes": dict(self.outcomes),
            "findings": len(self.findings),
            "slowest_execution_s": round(self.slowest, 3),
            "mutation_classes": dict(sorted(self.mutations.items())),
            # clean errors, but from a reader's last-resort conversion of an exception its own
            # checks did not anticipate (ONNX and NIR converters): counted to keep them visible
            "caught_at_reader_boundary": sum(
                n for text, n in self.errors.items() if BOUNDARY in text
            ),
            "top_errors": self.errors.most_common(12),
            "finding_cases": self.findings[:200],
        }


FINDINGS = {"crash", "hang", "memory", "died", "bad-c"}
BOUNDARY = "is malformed"  # "the ONNX graph is malformed or ...", "the NIR graph is malformed"


def _error_class(detail: str) -> str:
    """An error message without its file name and numbers, to count distinct rejections."""
    text = detail.split(": ", 1)[-1]
    return "".join("#" if c.isdigit() else c for c in text)[:90]


def campaign(args: argparse.Namespace, corpus: Corpus) -> dict[str, Any]:
    """Run the executions of every reader on args.jobs workers; returns the JSON report."""
    readers = {"both": list(READERS), "all": list(ALL_READERS)}.get(
        args.reader, args.reader.split(",")
    )
    stats = {r: Stats() for r in readers}
    ctx = mp.get_context("fork")
    tmp = tempfile.mkdtemp(prefix="edgekit-fuzz-")
    # args.cases (the CI regression list) names executions instead of a range
    indices = getattr(args, "cases", None) or range(args.start, args.start + args.execs)
    pending = [(r, i) for i in indices for r in readers]
    pending.reverse()
    workers: list[Any] = []

    def spawn() -> Any:
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_worker, args=(child, corpus, args, tmp), daemon=True)
        proc.start()
        return [proc, parent, None, 0.0]

    t0 = time.perf_counter()
    reported = 0
    deadline = t0 + args.seconds if args.seconds else math.inf
    try:
        workers = [spawn() for _ in range(args.jobs)]
        while any(w[2] is not None for w in workers) or (
            pending and time.perf_counter() < deadline
        ):
            for w in workers:
                if w[2] is None and pending and time.perf_counter() < deadline:
                    w[2], w[3] = pending.pop(), time.perf_counter()
                    w[1].send(w[2])
            for k, w in enumerate(workers):
                if w[2] is None:
                    continue
                reader, index = w[2]
                st = stats[reader]
                result = None
                try:
                    if w[1].poll(0.02):
                        result = w[1].recv()
                except (EOFError, OSError):
                    result = (
                        reader,
                        index,
                        "?",
                        "died",
                        time.perf_counter() - w[3],
                        f"worker exit code {w[0].exitcode}",
                        [],
                    )
                if result is None and time.perf_counter() - w[3] > 3 * args.timeout + 5:
                    result = (
                        reader,
                        index,
                        "?",
                        "hang",
                        time.perf_counter() - w[3],
                        "worker did not answer; killed",
                        [],
                    )
                if result is None:
                    continue
                _, _, seed_name, kind, secs, detail, applied = result
                st.mutations.update(applied)
                st.execs += 1
                st.seconds += secs
                st.slowest = max(st.slowest, secs)
                st.outcomes[kind] += 1
                if kind == "error":
                    st.errors[_error_class(detail)] += 1
                if kind == "harness":
                    print(f"harness problem at {reader}:{index}: {detail}", file=sys.stderr)
                if kind in FINDINGS:
                    st.findings.append(
                        {
                            "case": f"{reader}:{index}",
                            "seed": seed_name,
                            "kind": kind,
                            "detail": detail,
                        }
                    )
                    print(
                        f"FINDING {kind} {reader}:{index} ({seed_name}): {detail[-400:]}",
                        file=sys.stderr,
                    )
                w[2] = None
                if kind in ("died", "hang", "memory"):
                    w[0].kill()
                    workers[k] = spawn()
            done = sum(s.execs for s in stats.values())
            if args.progress and done >= reported + args.progress:
                reported = done
                rate = done / (time.perf_counter() - t0)
                found = sum(len(s.findings) for s in stats.values())
                print(f"{done} executions, {rate:.1f}/s, {found} findings", file=sys.stderr)
    finally:
        for w in workers:
            with contextlib.suppress(OSError):
                w[1].send(None)
            w[0].join(timeout=2)
            if w[0].is_alive():
                w[0].kill()
        shutil.rmtree(tmp, ignore_errors=True)
    wall = time.perf_counter() - t0
    return {
        "seed": args.seed,
        "jobs": args.jobs,
        "wall_seconds": round(wall, 1),
        "timeout_s": args.timeout,
        "memory_mb": args.memory_mb,
        "seeds": [n for n, _, _ in corpus.tflite] + [n for n, _ in corpus.onnx + corpus.nir],
        "readers": {r: s.to_json(wall) for r, s in stats.items()},
    }


def replay(corpus: Corpus, case: str, seed: int, timeout: float, keep: Path | None) -> int:
    reader, index = case.split(":")
    name, data = make_case(corpus, reader, int(index), seed)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"case.{reader}"
        path.write_bytes(data)
        if keep:
            shutil.copy(path, keep)
        outcome, _ = run_case(path, timeout)
    print(
        f"{case} (seed model {name}, {len(data)} bytes): {outcome.kind} in "
        f"{outcome.seconds:.3f} s\n{outcome.detail}"
    )
    return 0 if outcome.kind in ("ok", "error") else 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "--reader",
        default="both",
        help="tflite, ekir, onnx, nir, fekir (.ekir of float models lowered to FP16/FP32), a "
        "comma list of them (interleaved), both = tflite,ekir, all = all five",
    )
    ap.add_argument("--execs", type=int, default=100_000, help="executions per reader")
    ap.add_argument("--start", type=int, default=0, help="first execution index")
    ap.add_argument("--seconds", type=float, default=0.0, help="stop after this wall time")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--timeout", type=float, default=5.0, help="seconds per execution")
    ap.add_argument("--memory-mb", type=int, default=1024, help="per-worker allowance")
    ap.add_argument(
        "--check-c",
        type=int,
        default=0,
        metavar="N",
        help="sanitizer-check the C of up to N distinct accepted mutants per worker",
    )
    ap.add_argument("--no-mlperf", action="store_true", help="leave the MLPerf seeds out")
    ap.add_argument("--progress", type=int, default=1000, help="print a line every N executions")
    ap.add_argument("--out", type=Path, help="write the JSON report here")
    ap.add_argument("--replay", metavar="READER:I", help="run one case in-process and explain it")
    ap.add_argument("--keep", type=Path, help="with --replay: copy the case file here")
    args = ap.parse_args()
    chosen = {"both": list(READERS), "all": list(ALL_READERS)}.get(
        args.reader, args.reader.split(",")
    )
    if any(r not in ALL_READERS for r in chosen):
        ap.error(f"--reader takes {', '.join(ALL_READERS)}, a comma list of them, both or all")
    onnx = "onnx" in chosen or (args.replay or "").startswith("onnx:")
    nir = "nir" in chosen or (args.replay or "").startswith("nir:")
    fekir = "fekir" in chosen or (args.replay or "").startswith("fekir:")
    corpus = build_corpus(mlperf=not args.no_mlperf, onnx=onnx, nir=nir, fekir=fekir)
    if args.replay:
        return replay(corpus, args.replay, args.seed, args.timeout, args.keep)
    report = campaign(args, corpus)
    text = json.dumps(report, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)
    return 1 if any(r["findings"] for r in report["readers"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
