"""Portable C kernels of LEAKY_RELU, HARD_SWISH and TRANSPOSE_CONV (int8, TFLM arithmetic).

Registered here rather than in kernels._PORTABLE so the ops' lowering, templates and tests stay
together (edgekit/passes/lower_activations.py, lower_transpose_conv.py, tests/test_onnx_ops.py).
No optimised family claims these kinds, so every target selects these variants.
"""

from __future__ import annotations

from codegen.kernels import register

for _kind in ("leaky_relu", "hard_swish", "transpose_conv"):
    register("portable", _kind, f"portable/{_kind}.c.j2")
