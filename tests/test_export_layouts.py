"""`edgekit export --as`: each integration layout is built the way its users would build it.

The CMake layout is configured and built with cmake and the host compiler, linked into a small
main that runs inferences, and its outputs are compared byte for byte with the host runner
(cffi). The Zephyr and PlatformIO layouts are checked through their manifests (parsed, every
listed file present) and the sources they list are cross-compiled for a Cortex-M4 with the
include folders those manifests declare, under -Wall -Wextra -Werror.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml

from edgekit.cli import main
from edgekit.models.dscnn import build_dscnn_kws, build_tiny_mlp
from edgekit.pipeline import compile_file
from edgekit.runners.host import HostModel
from edgekit.verify import random_inputs

ARM_GCC = shutil.which("arm-none-eabi-gcc")
ARM_FLAGS = ["-mcpu=cortex-m4", "-mthumb", "--specs=picolibc.specs"]
STRICT = ["-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-pedantic"]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("models")
    out = {"dscnn": d / "dscnn.tflite", "mlp": d / "mlp.tflite"}
    out["dscnn"].write_bytes(build_dscnn_kws(0))
    out["mlp"].write_bytes(build_tiny_mlp(0))
    return out


def _export(model: Path, layout: str, out: Path, *extra: str) -> None:
    assert main(["export", str(model), "--as", layout, "-o", str(out), *extra]) == 0


def _generated_sources(model: Path, name: str, target: str = "host") -> dict[str, str]:
    return compile_file(model, target, name).generated.files


MAIN_C = """\
/* Reads whole inputs from stdin until EOF, writes each output to stdout. */
#include <stdio.h>
#include "{name}.h"

int main(void) {{
    static int8_t in[{NAME}_INPUT0_BYTES];
    static int8_t out[{NAME}_OUTPUT0_BYTES];
    while (fread(in, 1, sizeof in, stdin) == sizeof in) {{
        if ({name}_run(in, out) != 0) return 1;
        if (fwrite(out, 1, sizeof out, stdout) != sizeof out) return 1;
    }}
    return 0;
}}
"""

APP_CMAKE = """\
cmake_minimum_required(VERSION 3.13)
project(app LANGUAGES C)
add_subdirectory(vendor/{name})
add_executable(app main.c)
target_link_libraries(app PRIVATE edgekit::{name})
"""


@pytest.mark.skipif(shutil.which("cmake") is None, reason="cmake is not installed")
@pytest.mark.parametrize("key", ["dscnn", "mlp"])
def test_cmake_layout_builds_and_matches_host_runner(
    models: dict[str, Path], tmp_path: Path, key: str
) -> None:
    name = f"{key}_lib"
    app = tmp_path / "app"
    _export(models[key], "cmake", app / "vendor" / name, "--name", name)
    (app / "main.c").write_text(MAIN_C.format(name=name, NAME=name.upper()))
    (app / "CMakeLists.txt").write_text(APP_CMAKE.format(name=name))
    build = tmp_path / "build"
    for cmd in (
        ["cmake", "-S", str(app), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release"],
        ["cmake", "--build", str(build)],
    ):
        proc = subprocess.run(cmd, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    # the library target really compiled the model with the layout's strict flags
    cache = (build / "vendor" / name / "CMakeFiles").rglob("flags.make")
    flags = "".join(p.read_text() for p in cache)
    assert "-std=c99" in flags and "-Werror" in flags and "-Wextra" in flags

    compiled = compile_file(models[key], "host", name)
    assert len(compiled.graph.inputs) == 1 and len(compiled.graph.outputs) == 1
    inputs = random_inputs(compiled.graph, 16, 3)
    stdin = b"".join(np.ascontiguousarray(s[0]).tobytes() for s in inputs)
    proc = subprocess.run([str(build / "app")], input=stdin, capture_output=True)
    assert proc.returncode == 0, proc.stderr
    host = HostModel(compiled)
    expected = b"".join(host.run(s)[0].tobytes() for s in inputs)
    assert len(proc.stdout) == len(expected) > 0
    assert proc.stdout == expected


def test_layouts_hold_exactly_the_generated_sources(models: dict[str, Path],
                                                     tmp_path: Path) -> None:
    generated = _generated_sources(models["dscnn"], "kws")
    for layout in ("cmake", "zephyr-module", "platformio"):
        out = tmp_path / layout
        _export(models["dscnn"], layout, out, "--name", "kws")
        shipped = {p.name: p.read_text() for d in ("include", "src") for p in (out / d).iterdir()}
        assert shipped == {k: v for k, v in generated.items() if k != "harness_model.h"}
        assert (out / "include" / "kws.h").is_file() and (out / "src" / "kws.c").is_file()
        readme = (out / "README.md").read_text()
        assert "kws_run" in readme and "## Use it" in readme
        assert json.loads((out / "report.json").read_text())["model"]


def _arm_compile(sources: list[Path], include_dirs: list[Path], tmp: Path) -> None:
    for src in sources:
        cmd = [ARM_GCC, *ARM_FLAGS, *STRICT, *(f"-I{d}" for d in include_dirs), "-c", str(src),
               "-o", str(tmp / (src.stem + ".o"))]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        assert proc.returncode == 0, " ".join(map(str, cmd)) + "\n" + proc.stderr


def _cmake_call_args(text: str, fn: str) -> list[str]:
    calls = re.findall(rf"\b{fn}\(([^)]*)\)", text)
    return [a for call in calls for a in call.split()]


@pytest.mark.skipif(ARM_GCC is None, reason="arm-none-eabi-gcc is not installed")
@pytest.mark.parametrize("target", ["host", "cortex-m4"])
def test_zephyr_module_is_complete_and_cross_compiles(models: dict[str, Path], tmp_path: Path,
                                                      target: str) -> None:
    out = tmp_path / "mod"
    _export(models["dscnn"], "zephyr-module", out, "--name", "kws", "--target", target)
    manifest = yaml.safe_load((out / "zephyr" / "module.yml").read_text())
    assert manifest["name"]
    # paths in module.yml are relative to the module root (the folder holding zephyr/)
    cmake_dir = out / manifest["build"]["cmake"]
    kconfig = out / manifest["build"]["kconfig"]
    cmake = (cmake_dir / "CMakeLists.txt").read_text()
    kconfig_text = kconfig.read_text()
    options = re.findall(r"^config (\w+)$", kconfig_text, re.M)
    assert options == ["EDGEKIT_KWS"]
    assert re.search(r"^\tbool ", kconfig_text, re.M) and "\tdefault n" in kconfig_text
    assert f"if(CONFIG_{options[0]})" in cmake
    assert "zephyr_library" in cmake
    sources = [cmake_dir / s for s in _cmake_call_args(cmake, "zephyr_library_sources")]
    includes = [cmake_dir / d for fn in ("zephyr_include_directories",
                                         "zephyr_library_include_directories")
                for d in _cmake_call_args(cmake, fn)]
    assert sources and all(s.is_file() for s in sources)
    assert includes and all(d.is_dir() for d in includes)
    # every .c the layout ships is listed, so nothing is silently left out of the build
    assert sorted(sources) == sorted(out.rglob("*.c"))
    _arm_compile(sources, includes, tmp_path)


@pytest.mark.skipif(ARM_GCC is None, reason="arm-none-eabi-gcc is not installed")
@pytest.mark.parametrize("target", ["host", "cortex-m4"])
def test_platformio_library_is_complete_and_cross_compiles(models: dict[str, Path],
                                                           tmp_path: Path, target: str) -> None:
    out = tmp_path / "lib"
    _export(models["dscnn"], "platformio", out, "--name", "kws", "--target", target)
    manifest = json.loads((out / "library.json").read_text())
    assert manifest["name"] and manifest["version"]
    build = manifest["build"]
    src_dir, inc_dir = out / build["srcDir"], out / build["includeDir"]
    assert (inc_dir / "kws.h").is_file()
    sources = sorted(src_dir.rglob("*.c"))  # PlatformIO compiles every source under srcDir
    assert sources == sorted(out.rglob("*.c"))
    flags = [f for f in build["flags"] if f.startswith("-W") or f.startswith("-std")]
    assert "-std=c99" in flags
    # PlatformIO puts srcDir and includeDir on the library's include path
    for src in sources:
        cmd = [ARM_GCC, *ARM_FLAGS, *flags, "-Werror", "-pedantic", "-O2",
               f"-I{inc_dir}", f"-I{src_dir}", "-c", str(src), "-o", str(tmp_path / "x.o")]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr


def test_export_mode_errors_are_clean(models: dict[str, Path], tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "x"
    assert main(["export", str(models["mlp"]), "-o", str(out)]) == 2
    assert "--as" in capsys.readouterr().err
    assert main(["export", str(models["mlp"]), "-o", str(tmp_path / "m.tflite")]) == 2
    assert "--format tflite" in capsys.readouterr().err
    assert main(["export", str(models["mlp"]), "--as", "cmake", "--format", "tflite",
                 "-o", str(out)]) == 2
    assert "give one of them" in capsys.readouterr().err
    assert not out.exists() and not (tmp_path / "m.tflite").exists()
    # a reserved CMake name is refused before anything is written
    assert main(["export", str(models["mlp"]), "--as", "cmake", "--name", "test",
                 "-o", str(out)]) == 2
    assert "--name" in capsys.readouterr().err and not out.exists()
    # a folder edgekit did not write is not replaced, and is left as it was
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine")
    assert main(["export", str(models["mlp"]), "--as", "cmake", "-o", str(foreign)]) == 2
    assert "--force" in capsys.readouterr().err
    assert [p.name for p in foreign.iterdir()] == ["keep.txt"]
    # no temporary folders are left next to the outputs
    assert sorted(p.name for p in tmp_path.iterdir()) == ["foreign"]
    # re-exporting over edgekit's own folder is allowed
    _export(models["mlp"], "platformio", out)
    _export(models["mlp"], "cmake", out)
    assert (out / "CMakeLists.txt").is_file() and not (out / "library.json").exists()
