"""`edgekit demo`: the whole pipeline on a model the project builds itself.

Builds a small int8 DS-CNN keyword spotter, writes it as .tflite with edgekit's own writer,
generates C, compiles it on the host, runs random inputs and checks them byte for byte against
TFLite Micro. Needs nothing but the Python dependencies and a C compiler.
"""

from __future__ import annotations

import time
from pathlib import Path

from edgekit.models.dscnn import build_dscnn_kws
from edgekit.pipeline import compile_file, write_output
from edgekit.progress import paint, status, track
from edgekit.reference.tflm import run_tflm
from edgekit.report import build_report, format_report
from edgekit.runners.host import HostModel
from edgekit.verify import compare, format_result, random_inputs


def run_demo(out_dir: Path, samples: int = 200, seed: int = 0) -> int:
    t0 = time.monotonic()
    out_dir.mkdir(parents=True, exist_ok=True)
    model_path = out_dir / "dscnn_kws.tflite"
    model_bytes = build_dscnn_kws(seed)
    model_path.write_bytes(model_bytes)
    print(f"[1/4] built the demo DS-CNN keyword spotter: {model_path} ({len(model_bytes):,} B)")

    with status("compiling the model to C"):
        compiled = compile_file(model_path, "host", "dscnn_kws")
    report = build_report(compiled, {"target": "host", "name": "dscnn_kws"})
    c_dir = write_output(compiled, out_dir / "c", report, force=False)
    print(f"[2/4] generated C in {c_dir}/\n")
    print(format_report(report))

    with status("compiling the C on the host"):
        model = HostModel(compiled)
    inputs = random_inputs(compiled.graph, samples, seed)
    ours = [model.run(sample) for sample in track(inputs, "running the generated code")]
    print(f"\n[3/4] compiled with -std=c99 -Wall -Wextra -Werror and ran {samples} random inputs")

    with status(f"running {samples} samples through TFLite Micro"):
        reference = run_tflm(model_bytes, inputs)
    result = compare(compiled, ours, reference)
    print("[4/4] compared with TFLite Micro:\n")
    text = format_result(result, "host")
    verdict = "bit-exact:" if result.ok else "MISMATCH"
    print(text.replace(verdict, paint(verdict, "ok" if result.ok else "bad"), 1))
    print(f"\ndone in {time.monotonic() - t0:.1f} s")
    return 0 if result.ok else 1
