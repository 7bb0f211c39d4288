"""Run a training build: on the host through cffi, or on an emulated target under QEMU.

Both return, per step, the loss and the exported weights after the step, so tests compare them
with the golden model (edgekit/train/golden.py) bit for bit.
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
from edgekit.train import TrainingBuild
from edgekit.train.render import weight_bytes


def _target_array(build: TrainingBuild, target: Any) -> np.ndarray:
    if build.spec.loss == "cross-entropy":
        return np.asarray([int(target)], dtype="<i4")
    return np.ascontiguousarray(np.asarray(target).reshape(-1).astype(build.spec.dtype))


class HostTrainer:
    """The generated model and training code, built with the strict flags and loaded."""

    def __init__(self, build: TrainingBuild) -> None:
        self.build = build
        self.name = n = build.name
        key = hashlib.sha256()
        for fname, text in sorted(build.files.items()):
            key.update(fname.encode() + b"\0" + text.encode() + b"\0")
        key.update(" ".join(STRICT_CFLAGS).encode() + sys.version.encode())
        digest = key.hexdigest()[:20]
        self.module_name = f"_ekt_{n}_{digest}"
        where = cache_root() / "train-host" / digest
        so = next(iter(where.glob(f"{self.module_name}*.so")), None) if where.exists() else None
        if so is None:
            where.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix="build-", dir=where.parent))
            try:
                self._compile(tmp)
                if where.exists():
                    shutil.rmtree(where)
                os.replace(tmp, where)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            so = next(where.glob(f"{self.module_name}*.so"))
        spec = importlib.util.spec_from_file_location(self.module_name, so)
        assert spec and spec.loader
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        self.lib, self.ffi = mod.lib, mod.ffi
        self._dtype = np.dtype(build.spec.dtype)

    def _compile(self, tmp: Path) -> None:
        import cffi

        n = self.name
        src = tmp / "src"
        src.mkdir()
        for fname, text in self.build.files.items():
            (src / fname).write_text(text)
        objs = []
        for stem in (n, f"{n}_train"):
            obj = tmp / f"{stem}.o"
            cmd = [_compiler(), *STRICT_CFLAGS, "-c", str(src / f"{stem}.c"), "-o", str(obj)]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                raise EdgekitError(
                    "generated C failed to compile on the host", f"{stem}.c", proc.stderr[-4000:]
                )
            objs.append(str(obj))
        s = "uint16_t" if self.build.spec.precision == "fp16" else "float"
        arg = "int label" if self.build.spec.loss == "cross-entropy" else f"const {s} *target"
        ffi = cffi.FFI()
        ffi.cdef(
            f"""
            void {n}_train_init(void);
            float {n}_train_step(const {s} *input, {arg});
            int {n}_predict(const {s} *input, {s} *output);
            size_t {n}_weights_size(void);
            void {n}_weights_export(void *dst);
            void {n}_weights_import(const void *src);
            """
        )
        ffi.set_source(
            self.module_name,
            f'#include "{n}_train.h"',
            include_dirs=[str(src)],
            extra_objects=objs,
            extra_compile_args=["-O1"],
        )
        try:
            ffi.compile(tmpdir=str(tmp), verbose=False)
        except Exception as exc:  # distutils raises several unrelated types
            raise EdgekitError(f"building the host extension failed: {exc}", n) from None

    def _fn(self, suffix: str) -> Any:
        return getattr(self.lib, f"{self.name}_{suffix}")

    def _input(self, x: np.ndarray) -> Any:
        a = np.ascontiguousarray(np.asarray(x).reshape(-1).astype(self._dtype))
        self._keep = a
        ctype = "uint16_t *" if self._dtype == np.float16 else "float *"
        return self.ffi.cast(ctype, self.ffi.from_buffer(a))

    def init(self) -> None:
        self._fn("train_init")()

    def step(self, x: np.ndarray, target: Any) -> np.float32:
        ptr = self._input(x)
        if self.build.spec.loss == "cross-entropy":
            return np.float32(self._fn("train_step")(ptr, int(target)))
        t = _target_array(self.build, target)
        ctype = "uint16_t *" if self._dtype == np.float16 else "float *"
        tptr = self.ffi.cast(ctype, self.ffi.from_buffer(t))
        return np.float32(self._fn("train_step")(ptr, tptr))

    def predict(self, x: np.ndarray) -> np.ndarray:
        out = np.empty(self.build.spec.outputs, dtype=self._dtype)
        ctype = "uint16_t *" if self._dtype == np.float16 else "float *"
        self._fn("predict")(self._input(x), self.ffi.cast(ctype, self.ffi.from_buffer(out)))
        return out

    def weights(self) -> bytes:
        size = int(self._fn("weights_size")())
        buf = bytearray(size)
        self._fn("weights_export")(self.ffi.from_buffer(buf))
        return bytes(buf)

    def import_weights(self, blob: bytes) -> None:
        self._fn("weights_import")(self.ffi.from_buffer(bytearray(blob)))


class EmulatedTrainer:
    """The training build cross-compiled for its target; every sample is one train step."""

    def __init__(self, build: TrainingBuild, defines: dict[str, Any] | None = None) -> None:
        """`defines`: extra C macros, e.g. {"EK_TRAIN_NO_EXPORT": 1} so a benchmark counts
        the train step alone (the weights output then stays unwritten)."""
        from edgekit.runners.emulated import build_firmware, firmware_key
        from edgekit.targets import load_target

        self.build = build
        self.target = load_target(build.compiled.target)
        key = firmware_key(self.target)
        key.update(repr(sorted((defines or {}).items())).encode())
        for fname, text in sorted(build.files.items()):
            key.update(fname.encode() + b"\0" + text.encode() + b"\0")
        where = cache_root() / "train-emu" / self.target.name / key.hexdigest()[:20]
        elf = where / "firmware.elf"
        if not elf.exists():
            where.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix="build-", dir=where.parent))
            try:
                src = tmp / "src"
                src.mkdir()
                for fname, text in build.files.items():
                    # the training glue replaces the inference harness header
                    if fname == "harness_model.h":
                        continue
                    out = "harness_model.h" if fname == "harness_train.h" else fname
                    (src / out).write_text(text)
                n = build.name
                sources = [src / f"{n}.c", src / f"{n}_train.c"]
                build_firmware(self.target, sources, [src], tmp, defines)
                if where.exists():
                    shutil.rmtree(where)
                os.replace(tmp, where)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        self.elf = elf

    def run(
        self, samples: list[tuple[np.ndarray, Any]], count: bool = False, timeout_s: float = 300.0
    ) -> tuple[list[np.float32], list[bytes], list[int] | None]:
        """Train on `samples` in order from the initial weights: the loss of every step, the
        weights after every step and, with `count`, the executed instructions of every step
        (train step plus weight export)."""
        from edgekit.runners.emulated import run_firmware

        dt = np.dtype(self.build.spec.dtype)
        inputs = [
            [np.asarray(x).reshape(-1).astype(dt), _target_array(self.build, t)] for x, t in samples
        ]
        specs = [((1,), np.float32), ((weight_bytes(self.build.spec),), np.uint8)]
        res = run_firmware(
            self.target, self.elf, inputs, specs, timeout_s=timeout_s,
            count_instructions=count, per_layer=False,
        )  # fmt: skip
        losses = [np.float32(o[0][0]) for o in res.outputs]
        weights = [o[1].tobytes() for o in res.outputs]
        return losses, weights, res.instructions
