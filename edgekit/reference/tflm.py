"""TensorFlow Lite Micro as the bit-exactness oracle for generated code.

Only TFLM is loaded in this process. The LiteRT interpreter bundles its own copy of the TFLite
kernels and symbols, and having both in one process is asking for clashes.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from typing import IO, Any

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from edgekit.errors import EdgekitError
from edgekit.frontends.tflite_writer import pack_model

_HINT = "check that the model is a valid int8 TFLite model using ops TFLM supports"

_ITEMSIZE = {
    schema.TensorType.FLOAT32: 4,
    schema.TensorType.INT32: 4,
    schema.TensorType.INT64: 8,
    schema.TensorType.FLOAT64: 8,
    schema.TensorType.INT16: 2,
    schema.TensorType.FLOAT16: 2,
}


def run_tflm(model: bytes, batches: list[list[np.ndarray]]) -> list[list[np.ndarray]]:
    """Run every sample (one array per model input) and return copies of all model outputs."""
    parsed = _parse(model)
    sg = parsed.subgraphs[0]
    interp = _interpreter(model, parsed)
    results = []
    for n, sample in enumerate(batches):
        if n:
            # Stateless graphs don't need it, but variable tensors would otherwise carry over.
            interp.reset()
        results.append(_invoke(interp, sample, len(sg.inputs), len(sg.outputs), f"sample {n}"))
    return results


def tflm_all_tensors(model: bytes, inputs: list[np.ndarray]) -> dict[int, np.ndarray]:
    """Every non-constant tensor of subgraph 0 (graph inputs and op outputs) for one sample.

    TFLM reuses the memory of dead intermediates, so the model is rewritten to list every op
    output as a graph output; the planner then keeps them all alive until the end.
    """
    parsed = _parse(model)
    sg = parsed.subgraphs[0]
    outputs = [int(t) for t in sg.outputs]
    for op in sg.operators or []:
        for t in op.outputs:
            if t >= 0 and t not in outputs and not _is_const(parsed, sg.tensors[t]):
                outputs.append(int(t))
    sg.outputs = outputs
    rewritten = pack_model(parsed)
    interp = _interpreter(rewritten, parsed)
    values = _invoke(interp, inputs, len(sg.inputs), len(outputs), "all-tensors run")
    result = {int(t): np.array(v) for t, v in zip(sg.inputs, inputs, strict=True)}
    result.update(zip(outputs, values, strict=True))
    return result


_ALLOC_TOTAL = re.compile(r"Arena allocation total (\d+) bytes")

# The child builds the interpreter, which plans and allocates everything up front, then asks the
# RecordingMicroAllocator for its report. The C++ side prints to fd 2, out of Python's reach,
# hence a separate process.
_ARENA_SCRIPT = """
import sys
from tflite_micro import runtime
data = sys.stdin.buffer.read()
interp = runtime.Interpreter.from_bytes(data, arena_size=int(sys.argv[1]))
interp.print_allocations()
"""


def tflm_arena_bytes(model: bytes) -> int:
    """Bytes of tensor arena TFLM needs for `model` (RecordingMicroAllocator's total).

    print_allocations() writes, among per-category lines:
        [RecordingMicroAllocator] Arena allocation total 24272 bytes
        [RecordingMicroAllocator] Arena allocation head 16000 bytes
        [RecordingMicroAllocator] Arena allocation tail 8272 bytes
    "head" is the planned non-persistent area (activations and scratch buffers), "tail" the
    persistent allocations (tensor structs, quantisation and kernel data). "total" is their sum,
    the smallest arena the model fits in, and does not depend on the arena size we pass.
    """
    arena = _arena_size(model, _parse(model))
    proc = subprocess.run(
        [sys.executable, "-c", _ARENA_SCRIPT, str(arena)],
        input=model,
        capture_output=True,
        timeout=300,
    )
    err = proc.stderr.decode(errors="replace")
    match = _ALLOC_TOTAL.search(err)
    if proc.returncode != 0 or match is None:
        raise EdgekitError(
            f"TFLM could not report the arena size (exit code {proc.returncode}):\n" + _tail(err),
            where="tflm_arena_bytes",
            hint=_HINT,
        )
    return int(match.group(1))


def _parse(model: bytes) -> schema.ModelT:
    try:
        if not schema.Model.ModelBufferHasIdentifier(model, 0):
            raise ValueError("missing the TFL3 file identifier")
        parsed = schema.ModelT.InitFromPackedBuf(bytearray(model), 0)
    except Exception as exc:
        raise EdgekitError(
            f"not a TFLite flatbuffer ({exc})", where="TFLM reference", hint=_HINT
        ) from exc
    if not parsed.subgraphs:
        raise EdgekitError("model has no subgraphs", where="TFLM reference", hint=_HINT)
    return parsed


def _is_const(model: schema.ModelT, tensor: schema.TensorT) -> bool:
    data = model.buffers[tensor.buffer].data if tensor.buffer < len(model.buffers) else None
    return data is not None and len(data) > 0


def _arena_size(model: bytes, parsed: schema.ModelT) -> int:
    """An arena that surely fits: every activation without reuse, plus room for the rest."""
    total = 0
    for sg in parsed.subgraphs:
        for t in sg.tensors or []:
            if not _is_const(parsed, t) and t.shape is not None:
                total += int(np.prod(t.shape, dtype=np.int64)) * _ITEMSIZE.get(t.type, 1)
    size = total + 2 * len(model) + (1 << 20)
    # The tail is carved from the arena's end, so an end that is not 16-byte aligned adds padding
    # and shifts the reported total by a few bytes; a multiple of 64 keeps it reproducible.
    return -(-size // 64) * 64


def _interpreter(model: bytes, parsed: schema.ModelT) -> Any:
    from tflite_micro import runtime

    with _captured_stderr() as err:
        try:
            return runtime.Interpreter.from_bytes(model, arena_size=_arena_size(model, parsed))
        except Exception as exc:
            raise EdgekitError(
                f"TFLM could not load the model: {exc}\n{_tail(err.read())}".rstrip(),
                where="TFLM interpreter",
                hint=_HINT,
            ) from exc


def _invoke(
    interp: Any, sample: list[np.ndarray], n_in: int, n_out: int, where: str
) -> list[np.ndarray]:
    if len(sample) != n_in:
        raise EdgekitError(
            f"got {len(sample)} input arrays, the model has {n_in} inputs", where=where
        )
    for i, arr in enumerate(sample):
        try:
            interp.set_input(np.ascontiguousarray(arr), i)
        except Exception as exc:
            detail = interp.get_input_details(i)
            shape = [int(d) for d in detail["shape"]]
            raise EdgekitError(
                f"input {i}: {exc}",
                where=where,
                hint=f"expected {np.dtype(detail['dtype'])} of shape {shape}",
            ) from exc
    with _captured_stderr() as err:
        try:
            interp.invoke()
        except Exception as exc:
            raise EdgekitError(
                f"TFLM invoke failed: {exc}\n{_tail(err.read())}".rstrip(), where=where, hint=_HINT
            ) from exc
    return [np.array(interp.get_output(i), copy=True) for i in range(n_out)]


class _Captured:
    def __init__(self, file: IO[bytes]) -> None:
        self._file = file

    def read(self) -> str:
        self._file.seek(0)
        return self._file.read().decode(errors="replace")


@contextlib.contextmanager
def _captured_stderr() -> Iterator[_Captured]:
    """Collect what C++ writes to fd 2, so TFLM's own diagnostics can go into our errors."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield _Captured(tmp)
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _tail(text: str, lines: int = 20) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])
