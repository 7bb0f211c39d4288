"""LeakyRelu / ConvTranspose / HardSwish models: int8 SQNR against float and cortex-m4 executed
instructions per layer, then FP16 and FP32 instructions per layer on every FP16 target (QEMU
-icount; a target whose tools are missing is skipped). Run: python3 bench/onnx_ops.py"""

from __future__ import annotations

import numpy as np

from codegen.render import op_macs
from edgekit.errors import EdgekitError
from edgekit.frontends.onnx import read_onnx
from edgekit.pipeline import compile_graph
from edgekit.quantize import QuantConfig, quantize
from edgekit.quantize.metrics import dequantize_array, quantize_array, sqnr_db
from edgekit.reference.float_ref import FloatModel
from edgekit.runners.emulated_model import EmulatedModel
from edgekit.runners.host import HostModel
from edgekit.verify import random_inputs
from tests.test_onnx_ops import _onnx_model, _onnx_model_fp16

FP16_TARGETS = ("rv32-zfh-v", "rv32imafc-zfh", "cortex-m55", "aarch64-neon-fp16")


def main() -> None:
    fg = read_onnx(_onnx_model().SerializeToString(), "<bench>", "upsample")
    calib = np.random.default_rng(0).normal(size=(32, 3, 8, 8)).astype(np.float32)
    q = quantize(fg, [calib], QuantConfig())
    x = np.random.default_rng(1).normal(size=(8, 3, 8, 8)).astype(np.float32)
    xs = x.transpose(0, 2, 3, 1)[:, None]
    ref = FloatModel(fg).run([xs])[0]
    host = HostModel(compile_graph(q))
    qi, qo = q.tensor(q.inputs[0]).quant, q.tensor(q.outputs[0]).quant
    got = np.stack([dequantize_array(host.run([quantize_array(s, qi)])[0], qo) for s in xs])
    print(f"int8 SQNR vs float: {sqnr_db(ref.reshape(8, -1), got.reshape(8, -1)):.2f} dB")
    c = compile_graph(q, "cortex-m4")
    r = EmulatedModel(c).run(random_inputs(c.graph, 1, seed=7), count=True, per_layer=True)
    print(f"cortex-m4 total instructions: {r.instructions[0]}")
    for op, n in zip(c.graph.ops, r.layer_instructions[0], strict=True):
        print(f"  {op.name:24s} {op.attrs['kernel']['family']:9s} {n}")
    fp16_layers()


def fp16_layers() -> None:
    """Instructions per layer of the FP16 model in both float precisions, one sample."""
    fg = read_onnx(_onnx_model_fp16().SerializeToString(), "<bench>", "upsample16")
    print("\nFP16 / FP32 (Conv -> LeakyRelu -> ConvTranspose -> HardSwish), instructions per layer")
    for target in FP16_TARGETS:
        counts = {}
        try:
            for precision in ("fp16", "fp32"):
                c = compile_graph(fg, target, precision=precision)
                r = EmulatedModel(c).run(random_inputs(c.graph, 1, seed=7), count=True,
                                         per_layer=True)  # fmt: skip
                counts[precision] = (c.graph, r.layer_instructions[0])
        except EdgekitError as exc:
            print(f"{target}: skipped ({exc.what.splitlines()[0]})")
            continue
        graph, fp16 = counts["fp16"]
        print(f"{target}:")
        for op, n16, n32 in zip(graph.ops, fp16, counts["fp32"][1], strict=True):
            y = graph.tensor(op.outputs[0])
            macs = op_macs(graph, op)
            work, unit = (macs, "MAC") if macs else (y.size, "element")
            per = f"{work:,} {unit}s, fp16 {n16 / work:.1f} instr/{unit}"
            print(f"  {op.kind:16s} fp16 {n16:>9,} fp32 {n32:>9,}  ({per})")


if __name__ == "__main__":
    main()
