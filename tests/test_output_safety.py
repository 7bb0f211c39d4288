"""Names inside model files never become paths, and the generated C stays valid C.

Tensor and model names are attacker-controlled text: path separators, quotes, newlines, comment
terminators, trigraphs, control bytes, non-ASCII, thousands of characters, and names of headers the
generated code includes. They may only reach the output as escaped comments, escaped string
literals or sanitised identifiers. Also: output is written all or nothing, and identical inputs
give byte-identical files from separate processes with different hash seeds.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from codegen.render import C_IDENT_MAX
from edgekit import __version__
from edgekit.errors import EdgekitError
from edgekit.frontends.tflite import read_tflite
from edgekit.frontends.tflite_writer import TFLiteBuilder
from edgekit.ir import serialize
from edgekit.models.dscnn import build_tiny_mlp
from edgekit.pipeline import MARKER, compile_graph, write_output
from edgekit.resources import resource_dir

HOSTILE_NAMES = [
    "../../escaped",
    "/abs/olute",
    'quote" \\ back',
    "new\nline\r\ttab",
    "*/ int pwned = 1; /*",
    "//x\\",
    "??/ ??= ??( trigraphs",
    "caf\u00e9 \u2603 \U0001f600",
    "nul\x00byte",
    "\x1b[31mansi",
    "%s%n%x",
    "long" * 1500,
]
STRICT = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"]
SAFE_FILE = re.compile(r"[a-z0-9_]+\.(c|h)")


def _model(names: list[str]) -> bytes:
    """A one-layer FC whose input, output, weight and bias tensors carry the given names."""
    b = TFLiteBuilder()
    x = b.tensor(names[0], [1, 4], np.int8, 0.1, 3)
    w = b.const(names[2], np.arange(-8, 8, dtype=np.int8).reshape(4, 4), 0.02, 0)
    bias = b.const(names[3], np.array([1, -2, 3, -4], np.int32), 0.002, 0)
    y = b.tensor(names[1], [1, 4], np.int8, 0.2, -1)
    b.op("FULLY_CONNECTED", [x, w, bias], [y])
    b.inputs([x])
    b.outputs([y])
    return b.finish()


def _compile_and_print_names(out: Path, stem: str, tmp: Path) -> bytes:
    """Build the generated model with a main printing its input and output names; their bytes."""
    main = tmp / "names_main.c"
    main.write_text(
        f'#include <stdio.h>\n#include <string.h>\n#include "{stem}.h"\n'
        "int main(void)\n{\n"
        f"    const char *a = {stem}_input_info(0)->name;\n"
        f"    const char *b = {stem}_output_info(0)->name;\n"
        "    fwrite(a, 1, strlen(a) + 1, stdout);\n"
        "    fwrite(b, 1, strlen(b) + 1, stdout);\n"
        "    return 0;\n}\n"
    )
    exe = tmp / "names"
    cc = shutil.which("gcc") or shutil.which("cc") or "cc"
    subprocess.run([cc, *STRICT, "-I", str(out), str(main), str(out / f"{stem}.c"), "-o", str(exe)],
                   check=True, capture_output=True, text=True)  # fmt: skip
    return subprocess.run([str(exe)], check=True, capture_output=True).stdout


def _c_view(name: str) -> bytes:
    """What a C string holding the name can show: its UTF-8, at most 255 bytes, up to a NUL."""
    return name.encode("utf-8")[:255].split(b"\0")[0]


@pytest.mark.parametrize("k", range(0, len(HOSTILE_NAMES), 4))
def test_hostile_tensor_names_stay_inside_comments_and_strings(k: int, tmp_path: Path) -> None:
    names = [HOSTILE_NAMES[(k + i) % len(HOSTILE_NAMES)] for i in range(4)]
    compiled = compile_graph(read_tflite(_model(names), "hostile", "hostile"))
    out = write_output(compiled, tmp_path / "out", {"k": k})
    written = sorted(p.name for p in out.iterdir())
    assert all(SAFE_FILE.fullmatch(f) for f in written if f not in ("model.ekir", "report.json",
                                                                     MARKER)), written  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    for f in out.iterdir():
        if f.suffix in (".c", ".h"):
            assert f.read_bytes().isascii(), f.name
    printed = _compile_and_print_names(out, compiled.generated.name, tmp_path)
    assert printed == _c_view(names[0]) + b"\0" + _c_view(names[1]) + b"\0"
    # the report and the IR keep the names intact
    report = json.loads((out / "report.json").read_text())
    assert report == {"k": k}
    assert names[0] in serialize.load(out / "model.ekir").inputs


@pytest.mark.parametrize("compiler", ["gcc", "clang"])
def test_hostile_names_compile_strictly(compiler: str, tmp_path: Path) -> None:
    if not shutil.which(compiler):
        pytest.skip(f"{compiler} is not installed")
    compiled = compile_graph(read_tflite(_model(HOSTILE_NAMES[3:7]), "m", "m"))
    out = write_output(compiled, tmp_path / "out", {})
    proc = subprocess.run([compiler, *STRICT, "-Wtrigraphs", "-c", str(out / "m.c"), "-o",
                           str(tmp_path / "m.o")], capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 0, proc.stderr


MODEL_NAMES = ["../../evil", "/etc/passwd", "string", "stdint", "math", "ek", "ek_arena",
               "edgekit_runtime", "harness_model", "9lives", "int", "main", "x" * 300,
               "\u540d\u524d", "", "__init__"]  # fmt: skip


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_model_names_become_safe_distinct_identifiers(name: str, tmp_path: Path) -> None:
    graph = read_tflite(build_tiny_mlp(0), "m", "m")
    graph.name = name
    compiled = compile_graph(graph)
    stem = compiled.generated.name
    assert re.fullmatch(r"[a-z][a-z0-9_]*", stem) and len(stem) <= C_IDENT_MAX
    out = write_output(compiled, tmp_path / "out", {})
    # no generated file replaces a runtime header or shadows a standard one
    shipped = {p.name for p in out.glob("edgekit_*.h")}
    assert {"edgekit_runtime.h", "edgekit_fixedpoint.h"} <= shipped
    for header in resource_dir("csrc").glob("edgekit_*.h"):
        if header.name in shipped:
            assert (out / header.name).read_text() == header.read_text()
    assert {f"{stem}.c", f"{stem}.h", f"{stem}_weights.h", "harness_model.h"} <= {
        p.name for p in out.iterdir()
    }
    assert not (out / "string.h").exists() and not (out / "stdint.h").exists()
    printed = _compile_and_print_names(out, stem, tmp_path)  # standard headers still resolve
    assert printed.count(b"\0") == 2


def test_cli_name_with_path_separators_writes_only_inside_the_output(tmp_path: Path) -> None:
    model = tmp_path / "m.tflite"
    model.write_bytes(build_tiny_mlp(0))
    proc = subprocess.run(
        [sys.executable, "-m", "edgekit.cli", "generate", str(model), "-o", str(tmp_path / "out"),
         "--name", "../../../escaped/x"],
        capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.tflite", "out"]
    assert all(p.is_file() for p in (tmp_path / "out").iterdir())


def test_failed_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    compiled = compile_graph(read_tflite(build_tiny_mlp(0), "m", "m"))

    def disk_full(graph: object, path: Path) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(serialize, "save", disk_full)
    with pytest.raises(EdgekitError, match="No space left"):
        write_output(compiled, tmp_path / "out", {})
    assert list(tmp_path.iterdir()) == []


def test_existing_file_or_foreign_folder_is_never_replaced(tmp_path: Path) -> None:
    compiled = compile_graph(read_tflite(build_tiny_mlp(0), "m", "m"))
    target = tmp_path / "precious"
    target.write_text("keep")
    with pytest.raises(EdgekitError):
        write_output(compiled, target, {})
    assert target.read_text() == "keep"
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "notes").write_text("keep")
    with pytest.raises(EdgekitError):
        write_output(compiled, folder, {})
    assert (folder / "notes").read_text() == "keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder", "precious"]


def test_symlinked_output_is_not_written_through(tmp_path: Path) -> None:
    """An output path that is a symlink to an edgekit folder: the folder it points at is kept."""
    compiled = compile_graph(read_tflite(build_tiny_mlp(0), "m", "m"))
    real = write_output(compiled, tmp_path / "real", {"first": True})
    (tmp_path / "link").symlink_to(real)
    before = {p.name: p.read_bytes() for p in real.iterdir()}
    # refusing is fine (see docs/reliability.md); writing through the link is not
    with contextlib.suppress(EdgekitError, OSError):
        write_output(compiled, tmp_path / "link", {"second": True})
    assert {p.name: p.read_bytes() for p in real.iterdir()} == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_unwritable_output_paths_are_clean_errors(tmp_path: Path) -> None:
    compiled = compile_graph(read_tflite(build_tiny_mlp(0), "m", "m"))
    (tmp_path / "afile").write_text("x")
    with pytest.raises(EdgekitError, match="cannot create the output folder"):
        write_output(compiled, tmp_path / "afile" / "sub", {})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


# --- reproducibility ---------------------------------------------------------------------------


def _generate(model: Path, out: Path, seed: str, cwd: Path) -> None:
    env = {**os.environ, "PYTHONHASHSEED": seed}
    proc = subprocess.run(
        [sys.executable, "-m", "edgekit.cli", "generate", str(model), "-o", str(out),
         "--name", "kws"],
        capture_output=True, text=True, env=env, cwd=cwd,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr


def test_two_processes_with_different_hash_seeds_write_identical_files(tmp_path: Path) -> None:
    from edgekit.models.dscnn import build_dscnn_kws

    model = tmp_path / "dscnn.tflite"
    model.write_bytes(build_dscnn_kws(0))
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    _generate(model, tmp_path / "a" / "out", "1", tmp_path / "a")
    _generate(model, tmp_path / "b" / "gen", "987654", tmp_path / "b")
    a, b = tmp_path / "a" / "out", tmp_path / "b" / "gen"
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir())
    for f in names:
        assert (a / f).read_bytes() == (b / f).read_bytes(), f
        assert str(tmp_path).encode() not in (a / f).read_bytes(), f"{f} holds an absolute path"
    report = json.loads((a / "report.json").read_text())
    assert report["edgekit_version"] == __version__
    assert report["source_sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()
    assert report["options"]["name"] == "kws" and report["options"]["target"] == "host"



def test_error_messages_escape_terminal_control_sequences() -> None:
    err = EdgekitError("tensor '\x1b[2Jboom' is bad", "m\x07.tflite", "rename it\nthen retry")
    text = str(err)
    assert "\x1b" not in text and "\x07" not in text
    assert "\\x1b[2Jboom" in text and "\n  hint: rename it\nthen retry" in text
