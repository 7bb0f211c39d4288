"""Run a generated spiking model on the host through cffi: step, batch, reset, and traces.

Compiled first on its own with the strict flags generated code promises, then linked into a cffi
extension; builds are cached by a hash of the sources like edgekit.runners.host.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.runners.host import STRICT_CFLAGS, _compiler, cache_root
from edgekit.snn import ops
from edgekit.snn.compile import SnnCompiled


class SnnHostModel:
    def __init__(self, compiled: SnnCompiled) -> None:
        self.compiled = compiled
        gen = compiled.generated
        self.name = gen.name
        self.layers = ops.layers(compiled.graph)
        self.n_in = self.layers[0].n_in
        self.n_out = self.layers[-1].n_out
        self.spiking_out = self.layers[-1].kind != ops.LI
        self.out_count = ops.io_bytes(self.n_out) if self.spiking_out else self.n_out
        self._out_ctype = "uint8_t" if self.spiking_out else "int32_t"
        key = hashlib.sha256()
        for fname, text in sorted(gen.files.items()):
            key.update(fname.encode() + b"\0" + text.encode() + b"\0")
        key.update(" ".join(STRICT_CFLAGS).encode() + sys.version.encode() + b"snn")
        digest = key.hexdigest()[:20]
        self.module_name = f"_eksnn_{self.name}_{digest}"
        self._lib, self.ffi = self._build(cache_root() / "snn-host" / digest)

    def _build(self, build: Path) -> tuple[Any, Any]:
        so = next(iter(build.glob(f"{self.module_name}*.so")), None) if build.exists() else None
        if so is None:
            build.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix="build-", dir=build.parent))
            try:
                self._compile(tmp)
                if build.exists():
                    shutil.rmtree(build)
                os.replace(tmp, build)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            so = next(build.glob(f"{self.module_name}*.so"))
        spec = importlib.util.spec_from_file_location(self.module_name, so)
        assert spec and spec.loader
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod.lib, mod.ffi

    def _compile(self, tmp: Path) -> None:
        import cffi

        src = tmp / "src"
        src.mkdir()
        for fname, text in self.compiled.generated.files.items():
            (src / fname).write_text(text)
        obj = tmp / f"{self.name}.o"
        cmd = [_compiler(), *STRICT_CFLAGS, "-c", str(src / f"{self.name}.c"), "-o", str(obj)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise EdgekitError(
                "generated spiking-network C failed to compile on the host",
                f"{self.name}.c",
                "this is an edgekit bug; please report it. Compiler said:\n" + proc.stderr[-4000:],
            )
        n, o = self.name, self._out_ctype
        ffi = cffi.FFI()
        ffi.cdef(
            f"""
            void {n}_reset(void);
            void {n}_step(const uint8_t *spikes_in, {o} *out);
            void {n}_run_steps(const uint8_t *spikes_in, {o} *out, int n_steps);
            uint8_t *{n}_state(void);
            size_t {n}_state_size(void);
            uint8_t *{n}_arena(void);
            size_t {n}_arena_size(void);
            """
        )
        ffi.set_source(
            self.module_name,
            f'#include "{n}.h"',
            include_dirs=[str(src)],
            extra_objects=[str(obj)],
            extra_compile_args=["-O1"],
        )
        try:
            ffi.compile(tmpdir=str(tmp), verbose=False)
        except Exception as exc:  # distutils raises several unrelated types
            raise EdgekitError(f"building the host extension failed: {exc}", self.name) from None

    def _fn(self, suffix: str) -> Any:
        return getattr(self._lib, f"{self.name}_{suffix}")

    def reset(self) -> None:
        self._fn("reset")()

    def _packed(self, spikes: np.ndarray) -> np.ndarray:
        x = np.asarray(spikes)
        if x.ndim != 2 or x.shape[1] != self.n_in:
            raise EdgekitError(f"spikes must be [T, {self.n_in}], got {list(x.shape)}")
        return np.ascontiguousarray(ops.pack_spikes(x))

    def _decode(self, raw: np.ndarray) -> np.ndarray:
        return ops.unpack_spikes(raw, self.n_out) if self.spiking_out else raw

    def run(self, spikes: np.ndarray) -> np.ndarray:
        """T steps through the batch API: readout [T, n_out] (int32, or bool spikes)."""
        packed = self._packed(spikes)
        t_steps = packed.shape[0]
        out = np.zeros((t_steps, self.out_count), np.uint8 if self.spiking_out else np.int32)
        if t_steps:
            self._fn("run_steps")(
                self.ffi.from_buffer("uint8_t[]", packed),
                self.ffi.from_buffer(f"{self._out_ctype}[]", out),
                t_steps,
            )
        return self._decode(out)

    def step(self, spikes: np.ndarray) -> np.ndarray:
        """One step through the streaming API; spikes [n_in] 0/1."""
        packed = self._packed(np.asarray(spikes).reshape(1, -1))[0]
        out = np.zeros(self.out_count, np.uint8 if self.spiking_out else np.int32)
        self._fn("step")(
            self.ffi.from_buffer("uint8_t[]", packed),
            self.ffi.from_buffer(f"{self._out_ctype}[]", out),
        )
        return self._decode(out)

    def state_bytes(self) -> bytes:
        return bytes(self.ffi.buffer(self._fn("state")(), self._fn("state_size")()))

    def membranes(self) -> list[np.ndarray]:
        raw = self.state_bytes()
        offsets = self.compiled.state.offsets
        out = []
        for layer in self.layers:
            off = offsets[layer.membrane]
            out.append(np.frombuffer(raw[off : off + 4 * layer.n_out], dtype="<i4").copy())
        return out

    def run_traced(self, spikes: np.ndarray) -> list[np.ndarray]:
        """Step by step; every spiking layer's output spikes per step, read from the arena."""
        packed = self._packed(spikes)
        arena = self.ffi.buffer(self._fn("arena")(), self._fn("arena_size")())
        plan = self.compiled.plan
        spiking = [layer for layer in self.layers if layer.kind != ops.LI]
        traces = [np.zeros((packed.shape[0], layer.n_out), bool) for layer in spiking]
        out = np.zeros(self.out_count, np.uint8 if self.spiking_out else np.int32)
        out_buf = self.ffi.from_buffer(f"{self._out_ctype}[]", out)
        for t in range(packed.shape[0]):
            self._fn("step")(self.ffi.from_buffer("uint8_t[]", packed[t]), out_buf)
            for k, layer in enumerate(spiking):
                off = plan.offsets[layer.neuron.outputs[0]]
                nbytes = ops.packed_bytes(layer.n_out)
                raw = np.frombuffer(bytes(arena[off : off + nbytes]), np.uint8)
                traces[k][t] = ops.unpack_spikes(raw, layer.n_out)
        return traces
