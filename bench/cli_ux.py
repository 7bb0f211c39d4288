"""CLI experience figures: start-up, completion scripts, the cost of progress bars, plot rendering.

    python3 bench/cli_ux.py [--repeat 5]

Prints a markdown table. Wall-clock figures (medians of --repeat runs) depend on the machine;
they answer "is it fast enough to use every day", not "is it faster than before". Models: the
built-in DS-CNN (no downloads) and, when ../shared/models/mlperf-tiny exists, KWS and VWW.
"""

from __future__ import annotations

import argparse
import os
import pty
import select
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MLPERF = REPO.parent / "shared" / "models" / "mlperf-tiny"
CLI = [sys.executable, "-m", "edgekit.cli"]


def wall(cmd: list[str], repeat: int, **kw: object) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, **kw)  # type: ignore[call-overload]
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def wall_on_tty(cmd: list[str], repeat: int) -> tuple[float, int]:
    """Median wall time with stderr on a pseudo-terminal, and the bytes of progress drawn."""
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    env["TERM"] = "xterm-256color"
    times, drawn = [], 0
    for _ in range(repeat):
        master, slave = pty.openpty()
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=slave, env=env)
        os.close(slave)
        n = 0
        while True:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                n += len(chunk)
            elif proc.poll() is not None:
                break
        proc.wait()
        times.append(time.perf_counter() - t0)
        os.close(master)
        drawn = n
    return statistics.median(times), drawn


def bash_completion_ms(script: Path, repeat: int) -> float:
    words = "edgekit hls generate m.tflite --re"
    prog = (f"source {script}\nCOMP_WORDS=({words}); COMP_CWORD=4\n"
            "s=$(date +%s%N); for i in $(seq 20); do _edgekit edgekit --re m.tflite; done\n"
            "e=$(date +%s%N); echo $(( (e - s) / 20 ))")
    ns = [int(subprocess.run(["bash", "-c", prog], capture_output=True, text=True,
                             check=True).stdout) for _ in range(repeat)]
    return statistics.median(ns) / 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    n = ap.parse_args().repeat
    from edgekit.models.dscnn import build_dscnn_kws

    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        dscnn = t / "dscnn.tflite"
        dscnn.write_bytes(build_dscnn_kws(0))
        rows.append(("`edgekit --help` (start-up)", f"{wall([*CLI, '--help'], n) * 1e3:.0f} ms"))
        for shell in ("bash", "zsh", "fish"):
            text = subprocess.run([*CLI, "completion", shell], capture_output=True, text=True,
                                  check=True).stdout
            ms = wall([*CLI, "completion", shell], n) * 1e3
            rows.append((f"`edgekit completion {shell}`", f"{ms:.0f} ms, {len(text):,} bytes, "
                         f"{text.count(chr(10)):,} lines"))
        script = t / "edgekit.bash"
        script.write_text(subprocess.run([*CLI, "completion", "bash"], capture_output=True,
                                         text=True, check=True).stdout)
        rows.append(("one bash completion (`edgekit hls generate m.tflite --re<TAB>`)",
                     f"{bash_completion_ms(script, n):.1f} ms"))
        verify = [*CLI, "verify", str(dscnn), "--samples", "200"]
        piped = wall(verify, n)
        on_tty, drawn = wall_on_tty(verify, n)
        rows.append(("`verify` DS-CNN, 200 samples, stderr piped (no progress)", f"{piped:.2f} s"))
        rows.append(("same, stderr on a terminal (rich progress)",
                     f"{on_tty:.2f} s ({(on_tty / piped - 1) * 100:+.0f}%), "
                     f"{drawn:,} bytes of progress drawn"))
        for key, name in (("kws", "kws_ref_model.tflite"), ("vww", "vww_96_int8.tflite")):
            model = MLPERF / name
            if not model.is_file():
                continue
            for suffix in ("html", "png"):
                out = t / f"{key}.{suffix}"
                base = wall([*CLI, "report", str(model)], n)
                s = wall([*CLI, "report", str(model), "--plot", str(out)], n)
                rows.append((f"`report --plot {key}.{suffix}` ({name})",
                             f"{(s - base) * 1e3:.0f} ms over `report`, "
                             f"{out.stat().st_size:,} bytes"))
    print("| what | figure |\n|---|---|")
    for what, fig in rows:
        print(f"| {what} | {fig} |")


if __name__ == "__main__":
    main()
