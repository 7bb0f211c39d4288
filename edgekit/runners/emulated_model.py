"""A generated model built into firmware for an emulated target, cached like host builds."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from edgekit.ir.graph import DTYPES
from edgekit.pipeline import Compiled
from edgekit.runners.emulated import (
    EmulatedResult,
    build_firmware,
    elf_sizes,
    firmware_key,
    run_firmware,
)
from edgekit.runners.host import cache_root
from edgekit.targets import load_target


class EmulatedModel:
    """Cross-compiles `compiled` for its target once; runs batches under the emulator."""

    def __init__(self, compiled: Compiled) -> None:
        self.compiled = compiled
        self.target = load_target(compiled.target)
        gen = compiled.generated
        key = firmware_key(self.target)
        for fname, text in sorted(gen.files.items()):
            key.update(fname.encode() + b"\0" + text.encode() + b"\0")
        build = cache_root() / "emu" / self.target.name / key.hexdigest()[:20]
        elf = build / "firmware.elf"
        if not elf.exists():
            build.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix="build-", dir=build.parent))
            try:
                src = tmp / "src"
                src.mkdir()
                for fname, text in gen.files.items():
                    (src / fname).write_text(text)
                build_firmware(self.target, [src / f"{gen.name}.c"], [src], tmp)
                if build.exists():
                    shutil.rmtree(build)
                os.replace(tmp, build)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        self.elf = elf
        graph = compiled.graph
        self._specs = [
            (graph.tensor(t).shape, DTYPES[graph.tensor(t).dtype]) for t in graph.outputs
        ]

    def sizes(self) -> dict[str, int]:
        return elf_sizes(self.elf)

    def run(
        self,
        samples: list[list[np.ndarray]],
        count: bool = False,
        per_layer: bool = False,
        timeout_s: float = 300.0,
    ) -> EmulatedResult:
        return run_firmware(
            self.target,
            self.elf,
            samples,
            self._specs,
            timeout_s=timeout_s,
            count_instructions=count,
            per_layer=per_layer,
        )
