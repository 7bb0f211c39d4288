"""The kernel registry fills once, completely, before any thread selects from it."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

# Run in a fresh interpreter: the registry is process-wide and this suite has filled it long ago.
# Family imports are slowed down so a second thread asks while the first is still loading.
_SCRIPT = textwrap.dedent(
    """
    import importlib, threading, time
    import codegen.kernels as kernels

    real = importlib.import_module
    loading = threading.Event()

    def slow(name, *args, **kwargs):
        if name.startswith("codegen.families."):
            loading.set()
            time.sleep(0.02)
        return real(name, *args, **kwargs)

    importlib.import_module = slow
    first = threading.Thread(target=kernels._load_families)
    first.start()
    loading.wait(10)
    kernels._load_families()  # the second caller: must wait for the first to finish
    missing = [k for k in [("fp16", "fully_connected"), ("rvv", "conv2d"), ("dsp", "conv2d")]
               if k not in kernels._REGISTRY]
    first.join()
    print("MISSING", missing)
    """
)


def test_a_second_thread_waits_for_every_family_to_register() -> None:
    """An FP16 layer compiled in a second thread once got the int8 portable kernel (and a
    template error) because the first thread had marked the families loaded before importing
    them; the emulated FP16 tests build two models at once and hit it."""
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, "-c", _SCRIPT], cwd=root, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "MISSING []" in proc.stdout, proc.stdout
