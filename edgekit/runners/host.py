"""Run generated C on the host through cffi, for bit-exact tests and `edgekit run`.

The model's C is first compiled on its own with the strict flags the generated code promises
(C99, -Wall -Wextra -Werror -pedantic), then linked into a cffi extension. Builds are cached by a
hash of the sources and flags, so repeated runs of the same model do not recompile.
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
from edgekit.ir.graph import DTYPES
from edgekit.pipeline import Compiled

STRICT_CFLAGS = ["-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-pedantic", "-fPIC"]
# EDGEKIT_SANITIZE=1 builds every generated model loaded into this process (HostModel, the
# spiking and training host runners, which share these flags) with AddressSanitizer and UBSan,
# so a whole test run checks each model it generates. The Python process must preload the
# sanitizer runtimes: scripts/sanitize_suite.sh does that.
SANITIZE_CFLAGS = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all",
                   "-fno-omit-frame-pointer", "-g"]  # fmt: skip
if os.environ.get("EDGEKIT_SANITIZE"):
    STRICT_CFLAGS = [*STRICT_CFLAGS, *SANITIZE_CFLAGS]


def cache_root() -> Path:
    root = os.environ.get("EDGEKIT_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "edgekit"


def _compiler() -> str:
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not cc:
        raise EdgekitError(
            "no C compiler found", hint="install one: apt-get install gcc (or set CC)"
        )
    return cc


class HostModel:
    """A compiled model loaded into this process."""

    def __init__(self, compiled: Compiled, extra_cflags: list[str] | None = None) -> None:
        self.compiled = compiled
        gen = compiled.generated
        self.name = gen.name
        graph = compiled.graph
        self._inputs = [graph.tensor(t) for t in graph.inputs]
        self._outputs = [graph.tensor(t) for t in graph.outputs]
        cflags = STRICT_CFLAGS + list(extra_cflags or [])
        key = hashlib.sha256()
        for fname, text in sorted(gen.files.items()):
            key.update(fname.encode() + b"\0" + text.encode() + b"\0")
        key.update(" ".join(cflags).encode())
        key.update(sys.version.encode())
        digest = key.hexdigest()[:20]
        self.module_name = f"_ek_{self.name}_{digest}"
        build = cache_root() / "host" / digest
        self._lib, self.ffi = self._build(build, cflags)

    def _build(self, build: Path, cflags: list[str]) -> tuple[Any, Any]:
        so = next(iter(build.glob(f"{self.module_name}*.so")), None) if build.exists() else None
        if so is None:
            build.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix="build-", dir=build.parent))
            try:
                self._compile(tmp, cflags)
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

    def _compile(self, tmp: Path, cflags: list[str]) -> None:
        import cffi

        src = tmp / "src"
        src.mkdir()
        for fname, text in self.compiled.generated.files.items():
            (src / fname).write_text(text)
        obj = tmp / f"{self.name}.o"
        cmd = [_compiler(), *cflags, "-c", str(src / f"{self.name}.c"), "-o", str(obj)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise EdgekitError(
                "generated C failed to compile on the host",
                f"{self.name}.c",
                "this is an edgekit bug; please report it with the model. Compiler said:\n"
                + proc.stderr[-4000:],
            )
        n = self.name
        ffi = cffi.FFI()
        ffi.cdef(
            f"""
            int {n}_run_io(const void *const *inputs, void *const *outputs);
            void {n}_load_inputs(const void *const *inputs);
            void {n}_run_layer(int index);
            void {n}_store_outputs(void *const *outputs);
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

    def _check_inputs(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        if len(inputs) != len(self._inputs):
            raise EdgekitError(f"model takes {len(self._inputs)} input(s), got {len(inputs)}")
        out = []
        for arr, t in zip(inputs, self._inputs, strict=True):
            a = np.ascontiguousarray(arr, dtype=DTYPES[t.dtype])
            if a.size != t.size:
                raise EdgekitError(
                    f"input '{t.name}' needs {t.size} elements {list(t.shape)}, got {a.size} "
                    f"{list(a.shape)}"
                )
            out.append(a)
        return out

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        """One inference: inputs in model order, outputs shaped as the model declares."""
        ins = self._check_inputs(inputs)
        outs = [np.empty(t.shape, dtype=DTYPES[t.dtype]) for t in self._outputs]
        in_ptrs = self.ffi.new("void *[]", [self.ffi.from_buffer(a) for a in ins])
        out_ptrs = self.ffi.new("void *[]", [self.ffi.from_buffer(o) for o in outs])
        self._fn("run_io")(in_ptrs, out_ptrs)
        return outs

    def run_traced(self, inputs: list[np.ndarray]) -> dict[str, np.ndarray]:
        """Run layer by layer and return every activation tensor, read just after it is written."""
        graph, plan = self.compiled.graph, self.compiled.plan
        ins = self._check_inputs(inputs)
        in_ptrs = self.ffi.new("void *[]", [self.ffi.from_buffer(a) for a in ins])
        self._fn("load_inputs")(in_ptrs)
        arena = self.ffi.buffer(self._fn("arena")(), self._fn("arena_size")())
        values: dict[str, np.ndarray] = {}
        for t, a in zip(graph.inputs, ins, strict=True):
            values[t] = a.reshape(graph.tensor(t).shape).copy()
        # a no-op layer (an alias reshape) has no function; its output is read with the layer
        # that wrote the shared bytes, which is the last real layer before it
        k = 0
        for layer in self.compiled.generated.layers:
            if not layer.noop:
                self._fn("run_layer")(k)
                k += 1
            for tname in layer.op.outputs:
                t = graph.tensor(tname)
                off = plan.offsets[tname]
                raw = bytes(arena[off : off + t.nbytes])
                values[tname] = np.frombuffer(raw, dtype=DTYPES[t.dtype]).reshape(t.shape).copy()
        return values
