"""The CLI as a daily tool: clean output off a terminal, progress and colours on one, one JSON
document per --json, shell completion, examples in every --help, and docs/cli.md in sync."""

from __future__ import annotations

import argparse
import io
import json
import os
import pty
import re
import select
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edgekit.cli import build_parser
from edgekit.completion import command_tree, completion_script
from edgekit.models.dscnn import build_dscnn_kws, build_tiny_mlp
from edgekit.progress import Progress, interactive, paint

REPO = Path(__file__).resolve().parents[1]
ANSI = re.compile(r"\x1b\[")


def edgekit(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edgekit.cli", *args], capture_output=True,
                          text=True, env=env, timeout=600)


def on_a_terminal(*args: str, no_color: bool = False, command: list[str] | None = None,
                  stdout_too: bool = False) -> tuple[str, str]:
    """Run edgekit (or `command`) with stderr on a pseudo-terminal and stdout on a pipe (or on
    the same terminal with `stdout_too`, when the returned stdout is empty)."""
    env = {k: v for k, v in os.environ.items() if k not in {"NO_COLOR", "TERM"}}
    env["TERM"] = "xterm-256color"
    if no_color:
        env["NO_COLOR"] = "1"
    master, slave = pty.openpty()
    proc = subprocess.Popen(command or [sys.executable, "-m", "edgekit.cli", *args],
                            stdout=slave if stdout_too else subprocess.PIPE, stderr=slave,
                            env=env)
    os.close(slave)
    err = b""
    while True:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            err += chunk
        elif proc.poll() is not None:
            break
    os.close(master)
    out = proc.stdout.read().decode() if proc.stdout else ""
    assert proc.wait(timeout=60) == 0, err.decode(errors="replace")
    return out, err.decode(errors="replace")


def parsers() -> list[tuple[str, argparse.ArgumentParser]]:
    """Every (command path, parser) of the CLI, the top level included as ""."""
    out: list[tuple[str, argparse.ArgumentParser]] = []

    def walk(p: argparse.ArgumentParser, path: str) -> None:
        out.append((path, p))
        for a in p._actions:
            if isinstance(a, argparse._SubParsersAction):
                for name, sub in a.choices.items():
                    walk(sub, f"{path} {name}".strip())

    walk(build_parser(), "")
    return out


def has_option(p: argparse.ArgumentParser, flag: str) -> bool:
    return any(flag in a.option_strings for a in p._actions)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("ux-models")
    paths = {"dscnn": root / "dscnn.tflite", "mlp": root / "mlp.tflite"}
    paths["dscnn"].write_bytes(build_dscnn_kws(0))
    paths["mlp"].write_bytes(build_tiny_mlp(0))
    return paths


# --- off a terminal: no escape codes, no carriage returns, no progress -------------------------


def test_piped_output_has_no_progress_or_colour(models: dict[str, Path], tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    env["TERM"] = "xterm-256color"  # a capable terminal type, but the streams are pipes
    for args in (["verify", str(models["dscnn"]), "--samples", "20"],
                 ["generate", str(models["mlp"]), "-o", str(tmp_path / "g")],
                 ["report", str(models["mlp"]), "--plot", str(tmp_path / "p.html")],
                 ["report", str(tmp_path / "missing.tflite")]):
        r = edgekit(*args, env=env)
        for stream in (r.stdout, r.stderr):
            assert not ANSI.search(stream) and "\r" not in stream, (args, stream[-300:])
    assert "edgekit: error:" in r.stderr and r.returncode == 2


def test_a_reader_that_goes_away_is_no_internal_error(models: dict[str, Path]) -> None:
    # `edgekit inspect m.tflite | head -1`: the pipe closes before edgekit has written
    proc = subprocess.Popen([sys.executable, "-m", "edgekit.cli", "inspect", str(models["dscnn"])],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141 and err == ""


def test_progress_and_colour_on_a_terminal_and_not_with_no_color(models: dict[str, Path]) -> None:
    args = ["verify", str(models["dscnn"]), "--samples", "40", "--json"]
    out, err = on_a_terminal(*args)
    assert json.loads(out)["ok"] is True  # stdout stays one clean document
    assert "running the generated code" in err and ANSI.search(err)
    out, err = on_a_terminal(*args, no_color=True)
    assert json.loads(out)["ok"] is True
    assert err == ""


def test_the_verdict_is_coloured_on_a_terminal_only(models: dict[str, Path]) -> None:
    args = ["verify", str(models["mlp"]), "--samples", "3"]
    _, both = on_a_terminal(*args, stdout_too=True)
    assert "\x1b[1;32mbit-exact:\x1b[0m every output byte" in both
    _, both = on_a_terminal(*args, stdout_too=True, no_color=True)
    assert "bit-exact: every output byte" in both and not ANSI.search(both)
    assert "bit-exact: every output byte" in edgekit(*args).stdout  # piped: plain


def test_a_bar_inside_a_spinner_stays_silent_on_a_terminal() -> None:
    # rich allows one live display at a time: a calibration bar inside a `quantize --search`
    # spinner must neither raise nor draw over it
    prog = ("from edgekit.progress import Progress, status, track\n"
            "with status('outer'):\n"
            "    assert sum(track(range(50), 'inner')) == 1225\n"
            "    with status('nested'):\n"
            "        pass\n"
            "for _ in track(range(5), 'after'):\n"
            "    pass\n"
            "print('ok')\n")
    out, err = on_a_terminal(command=[sys.executable, "-c", prog])
    assert out == "ok\n" and "outer" in err and "after" in err
    assert "inner" not in err and "nested" not in err


def test_paint_and_interactive_follow_tty_no_color_and_dumb(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    assert interactive(Tty()) and paint("x", "ok", Tty()) == "\x1b[1;32mx\x1b[0m"
    assert not interactive(io.StringIO()) and paint("x", "ok", io.StringIO()) == "x"
    monkeypatch.setenv("NO_COLOR", "1")
    assert paint("x", "ok", Tty()) == "x"
    monkeypatch.delenv("NO_COLOR")
    monkeypatch.setenv("TERM", "dumb")
    assert paint("x", "ok", Tty()) == "x"


def test_forced_progress_off_a_terminal_is_plain_text(capsys: pytest.CaptureFixture[str]) -> None:
    bar = Progress("calibrating", None, enabled=True, unit="samples")
    bar.update(4, final=True)
    err = capsys.readouterr().err
    assert err == "\rcalibrating: 4 samples\n"  # no rich escape codes in a captured stream
    bar = Progress("running", 10)  # not a terminal: nothing at all
    bar.update(10)
    assert capsys.readouterr().err == ""


# --- --json: exactly one JSON document on stdout -----------------------------------------------

# commands with --json that this file does not run, and why
NOT_RUN_HERE = {
    "snn convert": "needs an SNN-delays checkpoint; its --json is run in tests/test_snn.py",
    "snn bench": "counts instructions under QEMU (slow); same printer as snn verify",
}


def json_cases(models: dict[str, Path], tmp: Path) -> dict[str, list[str]]:
    from edgekit.ir import serialize
    from edgekit.snn.quantize import quantize as quantize_snn
    from tests.test_snn import _random_net

    snn = tmp / "snn.ekir"
    serialize.save(quantize_snn(_random_net(9, [12, 16, 4], 4), "ux"), snn)
    mlp, dscnn = str(models["mlp"]), str(models["dscnn"])
    return {
        "generate": ["generate", mlp, "-o", str(tmp / "gen")],
        "verify": ["verify", dscnn, "--samples", "5"],
        "run": ["run", mlp, "--input", str(tmp / "x.npy"), "-o", str(tmp / "y.npy")],
        "report": ["report", mlp, "--plot", str(tmp / "plot.html")],
        "bench": ["bench", mlp, "--samples", "2"],
        "targets": ["targets"],
        "inspect": ["inspect", str(tmp / "gen" / "model.ekir"), "--constants"],  # after generate
        "doctor": ["doctor"],
        "export": ["export", mlp, "--as", "cmake", "-o", str(tmp / "lib")],
        "quantize": ["quantize", str(snn), "-o", str(tmp / "snn_q.ekir")],
        "snn quantize": ["snn", "quantize", str(snn), "-o", str(tmp / "snn_q2.ekir")],
        "hls generate": ["hls", "generate", mlp, "-o", str(tmp / "hls")],
        "hls verify": ["hls", "verify", mlp, "--samples", "3"],
        "hls report": ["hls", "report", mlp],
        "snn generate": ["snn", "generate", str(snn), "-o", str(tmp / "snn")],
        "snn verify": ["snn", "verify", str(snn), "--steps", "32"],
        "boards": ["boards"],
        "build": ["build", mlp, "--board", "qemu-mps2-an386", "-o", str(tmp / "fw")],
        # after build: the firmware on the virtual board, over its emulated UART
        "bench-board": ["bench-board", str(tmp / "fw"), "--qemu", "--samples", "1", "--runs", "1"],
    }


def test_every_json_command_prints_one_document(models: dict[str, Path], tmp_path: Path) -> None:
    import numpy as np

    with_json = {path for path, p in parsers() if has_option(p, "--json")}
    cases = json_cases(models, tmp_path)
    if not (shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm")):
        for path in ("build", "bench-board"):
            with_json.discard(path)  # the Cortex-M toolchain or QEMU is not installed here
    # a new command with --json must be run here (or say above why not)
    assert with_json - set(NOT_RUN_HERE) <= set(cases), with_json - set(NOT_RUN_HERE) - set(cases)
    np.save(tmp_path / "x.npy", np.zeros((3, 1, 32), np.int8))
    for path, args in cases.items():
        if path not in with_json:
            continue  # a command of another version of the CLI
        r = edgekit(*args, "--json")
        assert r.returncode == 0, (path, r.stderr[-500:])
        doc = json.loads(r.stdout)  # raises on a second document or any text around it
        assert isinstance(doc, dict | list) and doc, path


def test_inspect_json_is_the_graph(models: dict[str, Path],
                                   capsys: pytest.CaptureFixture[str]) -> None:
    from edgekit.cli import main
    from edgekit.pipeline import load_model

    graph, _ = load_model(models["mlp"])
    assert main(["inspect", str(models["mlp"]), "--json", "--constants"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [op["kind"] for op in doc["ops"]] == [op.kind for op in graph.ops]
    tensors = {t["name"]: t for t in doc["tensors"]}
    x = tensors[graph.inputs[0]]
    assert x["shape"] == [1, 32] and x["dtype"] == "int8" and not x["const"]
    assert x["quant"]["zero_point"] == [graph.tensor(graph.inputs[0]).quant.scalar_zero_point()]
    for name, t in graph.tensors.items():
        if t.is_const:
            assert tensors[name]["data"] == t.data.reshape(-1).tolist()


def test_a_mistyped_command_names_the_closest_ones() -> None:
    r = edgekit("genrate", "m.tflite")
    assert r.returncode == 2 and r.stdout == ""
    assert "unknown command 'genrate'; did you mean `edgekit generate`?" in r.stderr
    assert "did you mean" not in edgekit("xyzzy").stderr


def test_a_failing_json_command_prints_nothing_on_stdout(tmp_path: Path) -> None:
    bad = tmp_path / "missing.tflite"
    for args in (["report", str(bad)], ["verify", str(bad)], ["generate", str(bad), "-o",
                 str(tmp_path / "out")], ["export", str(bad), "--as", "cmake", "-o",
                 str(tmp_path / "lib")], ["hls", "report", str(bad)]):
        r = edgekit(*args, "--json")
        assert r.returncode == 2 and r.stdout == "", (args, r.stdout)
        assert r.stderr.startswith("edgekit: error:") and "Traceback" not in r.stderr
    assert not (tmp_path / "out").exists() and not (tmp_path / "lib").exists()


# --- completion --------------------------------------------------------------------------------


def _bash_complete(script: Path, words: list[str]) -> list[str]:
    """What the generated bash function offers after `words` (the last one being typed)."""
    quoted = " ".join("'" + w + "'" for w in words)
    prog = (f"source {script}\nCOMP_WORDS=({quoted}); COMP_CWORD={len(words) - 1}\n"
            f"_edgekit edgekit '{words[-1]}' '{words[-2]}'\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"")
    r = subprocess.run(["bash", "-c", prog], capture_output=True, text=True, cwd=script.parent)
    assert r.returncode == 0, r.stderr
    return r.stdout.split()


def test_bash_completion_follows_the_parser(tmp_path: Path) -> None:
    r = edgekit("completion", "bash")
    assert r.returncode == 0 and "complete -o filenames" in r.stdout
    script = tmp_path / "edgekit.bash"
    script.write_text(r.stdout)
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    top = {w for w in _bash_complete(script, ["edgekit", ""])}
    assert {"generate", "verify", "hls", "snn", "quantize", "completion"} <= top
    assert _bash_complete(script, ["edgekit", "hls", ""]) == ["generate", "verify", "report"]
    assert _bash_complete(script, ["edgekit", "hls", "generate", "--i"]) == ["--io"]
    assert _bash_complete(script, ["edgekit", "report", "m.tflite", "--precision", ""]) == [
        "int8", "fp16", "fp32"]
    assert "cortex-m4" in _bash_complete(script, ["edgekit", "verify", "--target", "cortex"])
    build = dict(parsers()).get("build")
    if build is not None and has_option(build, "--board"):
        assert "nucleo-l4r5zi" in _bash_complete(script, ["edgekit", "build", "--board", "nuc"])
    # option values are skipped: `--input-range LO HI` takes two, so `2` is no subcommand
    opts = _bash_complete(script, ["edgekit", "quantize", "--input-range", "1", "2", "--ch"])
    assert opts == ["--check"]
    assert _bash_complete(script, ["edgekit", "completion", "f"]) == ["fish"]
    (tmp_path / "kws.tflite").write_bytes(b"")
    assert _bash_complete(script, ["edgekit", "generate", "kw"]) == ["kws.tflite"]


def test_completion_aliases_are_the_spellings_route_rewrites(tmp_path: Path) -> None:
    from edgekit.cli import route
    from edgekit.completion import ALIASES

    for alias, target in ALIASES.items():
        assert route([alias, "x"]) == [*target.split(), "x"]
    script = tmp_path / "edgekit.bash"
    script.write_text(completion_script("bash", build_parser()))
    assert _bash_complete(script, ["edgekit", "convert", "ckpt.pt", "--con"]) == ["--config"]


def test_every_option_is_in_the_completion_tree() -> None:
    tree = {c.path: c for c in command_tree(build_parser())}
    for path, p in parsers():
        flags = {f for a in p._actions for f in a.option_strings}
        assert flags == {f for o in tree[path].options for f in o.flags}, path


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed")
def test_zsh_completion_parses_and_answers(tmp_path: Path) -> None:
    script = tmp_path / "_edgekit"
    script.write_text(completion_script("zsh", build_parser()))
    assert subprocess.run(["zsh", "-n", str(script)]).returncode == 0
    # zsh arrays count from 1; the walk over the words must not care
    prog = (f"source {script} 2>/dev/null\nCOMP_WORDS=(edgekit hls generate --)\nCOMP_CWORD=3\n"
            "_edgekit edgekit -- generate\nprint -l -- $COMPREPLY")
    r = subprocess.run(["zsh", "-f", "-c", prog], capture_output=True, text=True)
    assert "--part" in r.stdout.split() and "--snn-kernel" not in r.stdout.split(), r.stderr


@pytest.mark.skipif(shutil.which("fish") is None, reason="fish is not installed")
def test_fish_completion_parses_and_answers(tmp_path: Path) -> None:
    script = tmp_path / "edgekit.fish"
    script.write_text(completion_script("fish", build_parser()))
    assert subprocess.run(["fish", "-n", str(script)]).returncode == 0

    def complete(line: str) -> list[str]:
        r = subprocess.run(["fish", "-c", f"source {script}; complete -C '{line}'"],
                           capture_output=True, text=True)
        return [w.split("\t")[0] for w in r.stdout.splitlines()]

    assert complete("edgekit hls ") == ["generate", "report", "verify"]
    assert complete("edgekit export x --as ") == ["cmake", "platformio", "zephyr-module"]
    assert "--reuse" in complete("edgekit hls report m.tflite --")
    assert "--reuse" not in complete("edgekit report m.tflite --")


# --- --help teaches: every command has examples ------------------------------------------------


def test_every_command_help_has_examples_and_every_option_a_help_text() -> None:
    for path, p in parsers():
        assert p.epilog and re.search(r"^examples?:", p.epilog, re.M), f"`{path}` has no examples"
        assert re.search(r"^ +edgekit \S", p.epilog, re.M), f"`{path}`: no example command line"
        for a in p._actions:
            if a.option_strings and a.help != argparse.SUPPRESS:
                assert a.help, f"`edgekit {path}` {a.option_strings[0]} has no help text"


# --- docs/cli.md is in sync with the parser ----------------------------------------------------


def test_docs_cli_md_documents_every_command_and_option() -> None:
    text = (REPO / "docs" / "cli.md").read_text()
    sections = [(part.splitlines()[0], part) for part in re.split(r"(?m)^(?=#{2,3} )", text)
                if part.startswith("#")]
    for path, p in parsers():
        if not path:
            continue
        first = path.split()[0]
        # a command's sections: headings that name it (`edgekit hls ...` covers hls generate)
        own = [body for head, body in sections
               if f"edgekit {first}" in head or f"`{first}`" in head]
        assert own, f"docs/cli.md has no section for `edgekit {path}`"
        if len(path.split()) > 1:
            assert any(path.split()[1] in head for head, _ in sections
                       if f"edgekit {first}" in head), f"no heading names `edgekit {path}`"
        body = "\n".join(own)
        for a in p._actions:
            for flag in a.option_strings:
                if flag in ("-h", "--help"):
                    continue
                assert re.search(rf"`[^`]*{re.escape(flag)}(?![\w-])", body), \
                    f"docs/cli.md: the section of `edgekit {path}` does not mention `{flag}`"
