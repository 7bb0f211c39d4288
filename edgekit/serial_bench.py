"""Host side of the benchmark firmware's serial protocol (boards/common/app/ek_bench_main.c).

`edgekit bench DIR --port PORT` opens the board's serial port with pyserial (a device such as
/dev/ttyACM0, or any pyserial URL: socket://127.0.0.1:5555 reaches a QEMU board whose UART is
served on TCP), loads input tensors, runs timed inferences, reads the per-layer timings and
the outputs, and compares the outputs byte for byte with the host build of the same generated
C. The protocol is documented in docs/boards.md.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.firmware import load_manifest
from edgekit.progress import track

DB_BYTES = 64  # bytes per "db" line, both directions


def _serial() -> Any:
    try:
        import serial
    except ImportError:
        raise EdgekitError(
            "pyserial is not installed", hint="install it with: pip install pyserial"
        ) from None
    return serial


class NoAnswer(EdgekitError):
    """The board stayed silent for the whole timeout."""


@dataclass
class BoardLink:
    """One line-based conversation with the firmware."""

    port: Any
    where: str
    timeout_s: float
    transcript: list[str]

    def send(self, line: str) -> None:
        self.port.write((line + "\n").encode())
        self.port.flush()

    def line(self) -> str:
        """The next non-empty line; EK err lines become errors."""
        deadline = time.monotonic() + self.timeout_s
        buf = b""
        while time.monotonic() < deadline:
            chunk = self.port.readline()
            if not chunk:
                continue
            buf += chunk
            if not buf.endswith(b"\n"):
                continue
            text = buf.decode(errors="replace").strip()
            buf = b""
            if not text:
                continue
            self.transcript.append(text)
            if text.startswith("EK err"):
                raise EdgekitError(f"the board answered: {text[7:]}", self.where)
            if text.startswith("EK exit") or text.startswith("EK_FAULT"):
                raise EdgekitError(f"the firmware stopped: {text}", self.where,
                                   hint="a fault report; pc names the instruction (objdump -d)")
            return text
        tail = "\n".join(self.transcript[-5:]) or "(nothing)"
        raise NoAnswer(
            f"no answer from the board within {self.timeout_s:g} s", self.where,
            hint="is the firmware flashed (edgekit flash DIR) and the port right? "
            f"last lines:\n{tail}",
        )

    def expect(self, prefix: str) -> list[str]:
        """Lines up to and including the first that starts with `prefix`."""
        seen = []
        while True:
            text = self.line()
            seen.append(text)
            if text.startswith(prefix):
                return seen


def open_link(url: str, baud: int, timeout_s: float, connect_s: float = 10.0) -> BoardLink:
    """Open a serial device or pyserial URL; TCP URLs are retried while QEMU starts."""
    serial = _serial()
    deadline = time.monotonic() + connect_s
    while True:
        try:
            port = serial.serial_for_url(url, baudrate=baud, timeout=0.2, do_not_open=True)
            # DTR/RTS stay released: on boards with auto-reset wiring (ESP32 DevKits) asserting
            # them on open would hold the chip in reset or send it to its ROM bootloader.
            port.dtr = False
            port.rts = False
            port.open()
            break
        except (serial.SerialException, OSError, ValueError) as exc:
            if not url.startswith("socket://") or time.monotonic() > deadline:
                raise EdgekitError(
                    f"cannot open serial port: {exc}", url,
                    hint="check the port name (ls /dev/ttyACM* /dev/ttyUSB*) and permissions "
                    "(user in group dialout)",
                ) from None
            time.sleep(0.1)
    return BoardLink(port, url, timeout_s, [])


def _hex_lines(data: bytes) -> list[str]:
    return [data[i : i + DB_BYTES].hex() for i in range(0, len(data), DB_BYTES)]


def _info(link: BoardLink) -> dict[str, str]:
    """Ask until the board answers: it may still be booting (or resetting as the port opens)."""
    deadline = time.monotonic() + link.timeout_s
    patience, link.timeout_s = link.timeout_s, 1.0
    try:
        while True:
            link.send("")
            link.send("info")
            try:
                line = link.expect("EK info")[-1]
                break
            except NoAnswer as exc:
                if time.monotonic() > deadline:
                    exc.what = f"no answer from the board within {patience:g} s"
                    raise NoAnswer(exc.what, exc.where, exc.hint) from None
    finally:
        link.timeout_s = patience
    link.expect("EK ok")
    return dict(p.split("=", 1) for p in line.split()[2:] if "=" in p)


def _load(link: BoardLink, index: int, data: bytes) -> None:
    link.send(f"load {index}")
    ready = link.expect("EK ready")[-1]
    if int(ready.split()[2]) != len(data):
        raise EdgekitError(f"input {index}: board expects {ready.split()[2]} bytes, "
                           f"host has {len(data)}", link.where)
    for chunk in _hex_lines(data):
        link.send("db " + chunk)
        link.expect("EK ok")  # one line in flight at a time: no UART FIFO overrun


def _results(link: BoardLink, index: int) -> bytes:
    link.send(f"results {index}")
    head = link.expect("EK out")[-1].split()
    n = int(head[3])
    data = b""
    while True:
        text = link.line()
        if text.startswith("EK db"):
            data += bytes.fromhex(text.split()[2])
        elif text.startswith("EK ok"):
            break
    if len(data) != n:
        raise EdgekitError(f"output {index}: got {len(data)} of {n} bytes", link.where)
    return data


def _infer(link: BoardLink, runs: int, warmup: int) -> list[int]:
    link.send(f"infer {runs} {warmup}")
    ticks = []
    while True:
        text = link.line()
        if text.startswith("EK run"):
            ticks.append(int(text.split()[3]))
        elif text.startswith("EK ok"):
            return ticks


def _layers(link: BoardLink) -> dict[str, Any]:
    link.send("layers")
    out: dict[str, Any] = {"layers": [], "mismatch": False}
    while True:
        parts = link.line().split()
        if parts[1] == "load":
            out["load"] = int(parts[2])
        elif parts[1] == "layer":
            out["layers"].append(int(parts[3]))
        elif parts[1] == "store":
            out["store"] = int(parts[2])
        elif parts[1] == "mismatch":
            out["mismatch"] = True
        elif parts[1] == "ok":
            return out


def host_model(build_dir: Path, manifest: dict[str, Any]) -> tuple[Any, str, Any]:
    """The host build of the very C files in build_dir/model, a description of it, and the
    board's compiled model (graph and layer list, from model.ekir).

    Kernels written with target intrinsics that have no portable fallback (MVE's arm_mve.h)
    do not compile on the host; then the reference is the host-target build of the same
    source model (model.ekir keeps the target's kernel choice), which the kernel tests hold
    bit-exact to every target's kernels.
    """
    import dataclasses

    from edgekit.pipeline import compile_file
    from edgekit.runners.host import HostModel

    model_dir = Path(build_dir) / "model"
    precision = manifest.get("precision", "int8")
    compiled = compile_file(model_dir / "model.ekir", manifest["target"], manifest["model"],
                            precision)
    files = {}
    for fname in compiled.generated.files:
        if not (model_dir / fname).is_file():
            raise EdgekitError(f"model/{fname} is missing", str(build_dir),
                               hint="rebuild with edgekit build")
        files[fname] = (model_dir / fname).read_text()
    on_disk = dataclasses.replace(
        compiled, generated=dataclasses.replace(compiled.generated, files=files))
    try:
        return HostModel(on_disk), "the host build of the same generated C", compiled
    except EdgekitError as exc:
        source = Path(manifest["source"])
        if not source.is_file():
            raise EdgekitError(
                f"the {manifest['target']} kernels do not compile on the host and the source "
                "model is gone", str(source), hint="put the model back at that path",
            ) from exc
        host = compile_file(source, "host", manifest["model"], precision)
        reference = f"the host build (portable kernels) of {source.name}"
        return HostModel(host), reference, compiled


def _inputs(graph: Any, samples: int, seed: int, input_file: Path | None) -> list[list[np.ndarray]]:
    from edgekit.verify import random_inputs

    if input_file is None:
        return random_inputs(graph, samples, seed)
    from edgekit.ir.graph import DTYPES

    arr = np.load(input_file)
    t = graph.tensor(graph.inputs[0])
    if len(graph.inputs) != 1:
        raise EdgekitError("--input gives one tensor; this model has several inputs",
                           str(input_file))
    arr = np.asarray(arr, dtype=DTYPES[t.dtype])
    batch = arr.reshape((-1, *t.shape)) if arr.size % max(1, int(np.prod(t.shape))) == 0 else None
    if batch is None:
        raise EdgekitError(f"--input has {arr.size} values, not a multiple of the input's "
                           f"{int(np.prod(t.shape))}", str(input_file))
    return [[x] for x in batch]


def run_bench(
    build_dir: Path,
    port: str,
    samples: int = 1,
    runs: int = 10,
    warmup: int = 1,
    per_layer: bool = True,
    seed: int = 0,
    input_file: Path | None = None,
    timeout_s: float = 20.0,
) -> dict[str, Any]:
    """Benchmark the firmware in build_dir on the board behind `port`; see the module doc."""
    m = load_manifest(build_dir)
    host, reference, compiled = host_model(build_dir, m)
    graph = host.compiled.graph
    inputs = _inputs(graph, samples, seed, input_file)
    link = open_link(port, m["baud"] or 115200, timeout_s, connect_s=min(10.0, timeout_s))
    try:
        info = _info(link)
        want_in = ",".join(str(t["bytes"]) for t in m["inputs"])
        want_out = ",".join(str(t["bytes"]) for t in m["outputs"])
        if info.get("model") != m["model"] or info.get("in") != want_in or \
                info.get("out") != want_out:
            raise EdgekitError(
                f"the board runs model {info.get('model')} (inputs {info.get('in')}, outputs "
                f"{info.get('out')}), not this build's {m['model']}", port,
                hint=f"flash it first: edgekit flash {build_dir}",
            )
        all_ticks: list[list[int]] = []
        mismatches: list[int] = []
        layer_report = None
        for s, sample in enumerate(track(inputs, f"benchmarking on {info.get('board', port)}")):
            for i, arr in enumerate(sample):
                _load(link, i, np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<"))
                      .tobytes())
            all_ticks.append(_infer(link, runs, warmup))
            expected = host.run(sample)
            for o, exp in enumerate(expected):
                got = _results(link, o)
                want = np.ascontiguousarray(exp).astype(exp.dtype.newbyteorder("<")).tobytes()
                if got != want:
                    mismatches.append(s)
                    break
            if per_layer and s == 0:
                layer_report = _layers(link)
    finally:
        link.port.close()
    result = _summarise(m, info, compiled, all_ticks, mismatches, layer_report, port)
    result["reference"] = reference
    return result


def _summarise(
    m: dict[str, Any], info: dict[str, str], compiled: Any, all_ticks: list[list[int]],
    mismatches: list[int], layer_report: dict[str, Any] | None, port: str,
) -> dict[str, Any]:
    tick_hz = int(info.get("tick_hz", m["tick_hz"]))
    clock_hz = m["clock_hz"]
    flat = [t for ticks in all_ticks for t in ticks]
    med = statistics.median(flat)
    per_insn = m.get("ticks_per_instruction")

    def convert(ticks: float) -> dict[str, Any]:
        d: dict[str, Any] = {"ticks": ticks}
        if per_insn:  # QEMU -icount: ticks are a fixed multiple of executed instructions
            d["instructions"] = round(ticks / per_insn)
        else:
            d["cycles"] = round(ticks * clock_hz / tick_hz)
            d["ms"] = round(1e3 * ticks / tick_hz, 4)
        return d

    result: dict[str, Any] = {
        "board": m["board"],
        "board_kind": m["board_kind"],
        "model": m["model"],
        "port": port,
        "clock_hz": clock_hz,
        "tick_hz": tick_hz,
        "counter_overhead_ticks": int(info.get("overhead", 0)),
        "samples": len(all_ticks),
        "runs_per_sample": len(all_ticks[0]) if all_ticks else 0,
        "ticks": all_ticks,
        "median": convert(med),
        "min": convert(min(flat)),
        "max": convert(max(flat)),
        "bit_exact": not mismatches,
        "mismatched_samples": mismatches,
        # a counter the machine does not implement reads 0 (QEMU has no DWT): say so, not 0 ms
        "counter_advanced": max(flat) > 0,
    }
    if layer_report is not None:
        layers = [layer for layer in compiled.generated.layers if not layer.noop]
        rows = []
        for layer, ticks in zip(layers, layer_report["layers"], strict=False):
            rows.append({"index": layer.index, "kind": layer.op.kind,
                         "kernel": layer.variant.family, "macs": layer.macs, **convert(ticks)})
        result["layers"] = rows
        result["layer_load"] = convert(layer_report.get("load", 0))
        result["layer_store"] = convert(layer_report.get("store", 0))
        result["layerwise_matches_whole_run"] = not layer_report["mismatch"]
        if layer_report["mismatch"]:
            result["bit_exact"] = False
    return result


def format_serial_bench(r: dict[str, Any]) -> str:
    unit = "instructions" if "instructions" in r["median"] else "cycles"
    lines = []
    if "layers" in r:
        total = max(1, sum(row[unit] for row in r["layers"]))
        lines.append(f"{'#':>3}  {'layer':18s} {'kernel':9s} {'MACs':>11s} {unit:>13s}"
                     + ("" if unit == "instructions" else f" {'ms':>9s}") + "  share")
        for row in r["layers"]:
            lines.append(
                f"{row['index']:>3}  {row['kind']:18s} {row['kernel']:9s} {row['macs']:>11,} "
                f"{row[unit]:>13,}" + ("" if unit == "instructions" else f" {row['ms']:>9.3f}")
                + f"  {100 * row[unit] / total:4.1f}%"
            )
        lines.append("")
    med = r["median"]
    where = (f"{r['board']} (QEMU -icount: executed instructions)" if unit == "instructions"
             else f"{r['board']} at {r['clock_hz'] / 1e6:g} MHz")
    lines.append(f"model          {r['model']} on {where}")
    lines.append(f"inference      {med[unit]:,} {unit}"
                 + (f" = {med['ms']:.3f} ms" if "ms" in med else "")
                 + f"  (median of {r['samples']} x {r['runs_per_sample']} runs; "
                 f"min {r['min'][unit]:,}, max {r['max'][unit]:,})")
    verdict = "bit-exact" if r["bit_exact"] else (
        f"MISMATCH in samples {r['mismatched_samples']}" if r["mismatched_samples"]
        else "MISMATCH between the layer-by-layer and the whole-model run")
    lines.append(f"outputs        {verdict} against {r['reference']}")
    if not r["counter_advanced"]:
        lines.append(f"warning        the {unit} counter never advanced: this machine does not "
                     "implement it (e.g. DWT under QEMU); timings are meaningless")
    return "\n".join(lines)
