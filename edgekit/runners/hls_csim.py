"""Host C simulation of a generated HLS project, without vendor tools.

The project's synthesizable C++ and its csim entry point (csim/<name>_csim_api.cpp) are built
with a host C++ compiler against edgekit's own ap_int.h and hls_stream.h (csim/include) into a
shared library that ctypes loads. Builds are cached by a hash of the sources, flags and compiler,
like HostModel's. run_testbench() builds and runs the project's testbench, the same program
Vitis runs for csim and co-simulation.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.runners.host import cache_root

# What the generated C++ promises to compile cleanly with (docs/hls.md).
CXX_FLAGS = ["-std=c++14", "-O1", "-Wall", "-Wextra", "-Werror"]


@cache
def cxx_compiler() -> tuple[str, tuple[str, ...]]:
    """The host C++ compiler and the flags it needs beyond CXX_FLAGS.

    GCC before 13 cannot silence -Wunknown-pragmas from a header (GCC bug 53431), so for it the
    HLS pragmas are silenced on the command line; clang and newer GCC take CXX_FLAGS as they are.
    """
    cxx = os.environ.get("CXX") or shutil.which("g++") or shutil.which("clang++")
    if not cxx:
        raise EdgekitError(
            "no C++ compiler found for the HLS C simulation",
            hint="install one: apt-get install g++ (or set CXX)",
        )
    version = subprocess.run([cxx, "--version"], capture_output=True, text=True).stdout
    extra: tuple[str, ...] = ()
    if "clang" not in version.lower():
        dump = subprocess.run([cxx, "-dumpversion"], capture_output=True, text=True).stdout
        major = int((dump.strip().split(".") or ["0"])[0] or 0)
        if major < 13:
            extra = ("-Wno-unknown-pragmas",)
    return cxx, extra


def _write(files: dict[str, str], root: Path) -> None:
    for fname, text in files.items():
        dest = root / fname
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(text)


def _run_all(commands: list[list[str]], what: str) -> None:
    """Run compiler commands side by side; any failure is an edgekit bug with its message."""
    procs = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for cmd in commands
    ]
    errors = []
    for proc in procs:
        _, err = proc.communicate()
        if proc.returncode != 0:
            errors.append(err)
    if errors:
        raise EdgekitError(
            f"the generated HLS C++ failed to compile for {what}",
            hint="this is an edgekit bug; please report it with the model. Compiler said:\n"
            + "\n".join(errors)[-4000:],
        )


@dataclass(frozen=True)
class CsimBuild:
    library: Path  # the model and its csim entry point, for ctypes
    testbench: Path  # the project's testbench program


def build_csim(files: dict[str, str], name: str) -> CsimBuild:
    """Compile a project once (cached): the model object is shared by library and testbench."""
    cxx, extra = cxx_compiler()
    sources = {f: t for f, t in files.items() if f.endswith((".h", ".cpp"))}
    key = hashlib.sha256()
    for fname, text in sorted(sources.items()):
        key.update(fname.encode() + b"\0" + text.encode() + b"\0")
    key.update(" ".join([cxx, *CXX_FLAGS, *extra]).encode())
    final = cache_root() / "hls" / key.hexdigest()[:20]
    result = CsimBuild(final / f"lib{name}_csim.so", final / f"{name}_tb")
    if result.library.exists() and result.testbench.exists():
        return result
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="build-", dir=final.parent))
    try:
        src = tmp / "src"
        _write(sources, src)
        cc = [cxx, *CXX_FLAGS, *extra, "-fPIC", f"-I{src}", f"-I{src / 'csim' / 'include'}"]
        objects = {
            "model": (src / f"{name}.cpp", tmp / "model.o"),
            "api": (src / "csim" / f"{name}_csim_api.cpp", tmp / "api.o"),
            "tb": (src / f"{name}_tb.cpp", tmp / "tb.o"),
        }
        _run_all([[*cc, "-c", str(c), "-o", str(o)] for c, o in objects.values()], name)
        model, api, tb = (str(o) for _, o in objects.values())
        _run_all(
            [
                [cxx, "-shared", model, api, "-o", str(tmp / result.library.name)],
                [cxx, model, tb, "-o", str(tmp / result.testbench.name)],
            ],
            name,
        )
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return result


class HlsCsimModel:
    """A generated HLS project, C-simulated in this process."""

    def __init__(self, files: dict[str, str], name: str, inputs: list[tuple[int, ...]],
                 outputs: list[tuple[int, ...]]) -> None:
        self.name = name
        self.input_shapes = [tuple(s) for s in inputs]
        self.output_shapes = [tuple(s) for s in outputs]
        self.build = build_csim(files, name)
        lib = ctypes.CDLL(str(self.build.library))
        self._run = getattr(lib, f"{name}_csim_run")
        self._run.restype = ctypes.c_int
        self._run.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]

    @classmethod
    def from_project(cls, project: Any) -> HlsCsimModel:
        g = project.graph
        return cls(
            project.files,
            project.name,
            [g.tensor(t).shape for t in g.inputs],
            [g.tensor(t).shape for t in g.outputs],
        )

    def run_batch(self, samples: list[list[np.ndarray]]) -> list[list[np.ndarray]]:
        """Several inferences in one call; each sample is one array per input, in model order."""
        n = len(samples)
        if n == 0:
            return []
        ins = []
        for k, shape in enumerate(self.input_shapes):
            size = int(np.prod(shape, dtype=np.int64))
            batch = np.empty((n, size), dtype=np.int8)
            for s, sample in enumerate(samples):
                a = np.asarray(sample[k])
                if a.size != size:
                    raise EdgekitError(f"input {k} needs {size} values {list(shape)}, got {a.size}")
                batch[s] = a.astype(np.int8, copy=False).reshape(-1)
            ins.append(batch)
        outs = [np.empty((n, *shape), dtype=np.int8) for shape in self.output_shapes]
        in_ptrs = (ctypes.c_void_p * len(ins))(*[a.ctypes.data for a in ins])
        out_ptrs = (ctypes.c_void_p * len(outs))(*[a.ctypes.data for a in outs])
        errors = self._run(n, in_ptrs, out_ptrs)
        if errors:
            raise EdgekitError(
                f"the HLS C simulation reported {errors} stream error(s) (see stderr)",
                self.name,
                "this is an edgekit bug: a layer read or left a different number of words",
            )
        return [[o[s] for o in outs] for s in range(n)]

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        return self.run_batch([inputs])[0]


@dataclass
class TestbenchResult:
    ok: bool
    output: str
    executable: Path


def run_testbench(files: dict[str, str], name: str, timeout: float = 600.0) -> TestbenchResult:
    """Build the project's testbench with the host compiler and run it on its golden vectors."""
    exe = build_csim(files, name).testbench
    proc = subprocess.run([str(exe)], capture_output=True, text=True, timeout=timeout)
    return TestbenchResult(proc.returncode == 0, (proc.stdout + proc.stderr).strip(), exe)


class SnnCsimModel:
    """A generated spiking HLS project, C-simulated in this process one time step per call."""

    def __init__(self, files: dict[str, str], name: str, n_in: int, n_out: int) -> None:
        self.name = name
        self.n_in = n_in
        self.n_out = n_out
        self.build = build_csim(files, name)
        lib = ctypes.CDLL(str(self.build.library))
        self._run = getattr(lib, f"{name}_csim_run")
        self._run.restype = ctypes.c_int
        self._run.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]

    @classmethod
    def from_project(cls, project: Any) -> SnnCsimModel:
        return cls(project.files, project.name, project.design.n_in, project.design.n_out)

    def run(self, spikes: np.ndarray, resets: np.ndarray | None = None) -> np.ndarray:
        """Steps over spikes [T, n_in] (0/1), restarting from rest where `resets` is set.

        Returns [T, n_out] int32: 0/1 output spikes, or the readout membranes.
        """
        x = np.ascontiguousarray(np.asarray(spikes).astype(np.uint8))
        if x.ndim != 2 or x.shape[1] != self.n_in:
            raise EdgekitError(f"spikes must be [T, {self.n_in}], got {list(x.shape)}")
        t = x.shape[0]
        r = np.zeros(t, np.uint8) if resets is None else np.asarray(resets).astype(np.uint8)
        r = np.ascontiguousarray(r)
        out = np.zeros((t, self.n_out), np.int32)
        if t:
            errors = self._run(t, x.ctypes.data, r.ctypes.data, out.ctypes.data)
            if errors:
                raise EdgekitError(
                    f"the HLS C simulation reported {errors} stream error(s) (see stderr)",
                    self.name,
                    "this is an edgekit bug: a step read or left a different number of words",
                )
        return out
