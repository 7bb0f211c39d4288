"""Run a generated spiking model under QEMU with the stock firmware harness.

The generated harness_model.h makes one harness sample `harness_steps` consecutive steps
(input 0 a control word, input 1 the packed spikes), so edgekit.runners.emulated builds, runs
and counts it unchanged. Samples run in order in one firmware process: state carries from one
sample to the next unless its control word asks for a reset.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgekit.runners.emulated import build_firmware, elf_sizes, firmware_key, run_firmware
from edgekit.runners.host import cache_root
from edgekit.snn import ops
from edgekit.snn.compile import SnnCompiled
from edgekit.targets import load_target

RESET = 1
SNAPSHOT = 2


@dataclass
class SnnEmulatedResult:
    output: np.ndarray  # [n_samples * steps, n_out]: int32 readout, or bool spikes
    instructions: list[int] | None  # per sample (steps time steps each)
    layer_instructions: list[list[int]] | None  # per sample, per layer
    wall_time_s: float


class SnnEmulatedModel:
    def __init__(self, compiled: SnnCompiled) -> None:
        self.compiled = compiled
        self.target = load_target(compiled.target)
        gen = compiled.generated
        layers = ops.layers(compiled.graph)
        self.n_in, self.n_out = layers[0].n_in, layers[-1].n_out
        self.spiking_out = layers[-1].kind != ops.LI
        self.steps = compiled.harness_steps
        key = firmware_key(self.target)
        key.update(b"snn")
        for fname, text in sorted(gen.files.items()):
            key.update(fname.encode() + b"\0" + text.encode() + b"\0")
        build = cache_root() / "snn-emu" / self.target.name / key.hexdigest()[:20]
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

    def sizes(self) -> dict[str, int]:
        return elf_sizes(self.elf)

    def run(
        self,
        spikes: np.ndarray,
        reset_at: set[int] | None = None,
        count: bool = False,
        per_layer: bool = False,
        timeout_s: float = 300.0,
    ) -> SnnEmulatedResult:
        """spikes [n_samples * steps, n_in]; sample s first resets if s is in reset_at.

        The first sample always starts from reset (a fresh firmware process).
        """
        x = np.asarray(spikes)
        if x.ndim != 2 or x.shape[1] != self.n_in or x.shape[0] % self.steps:
            raise ValueError(f"spikes must be [k * {self.steps}, {self.n_in}]")
        packed = ops.pack_spikes(x).reshape(-1, self.steps * ops.io_bytes(self.n_in))
        resets = reset_at or set()
        samples = []
        for s, row in enumerate(packed):
            ctrl = (RESET if s in resets else 0) | (SNAPSHOT if per_layer else 0)
            samples.append([np.array([ctrl], dtype="<u4"), row])
        out_bytes = ops.io_bytes(self.n_out) if self.spiking_out else 4 * self.n_out
        spec = [((self.steps * out_bytes,), np.uint8)]
        res = run_firmware(
            self.target,
            self.elf,
            samples,
            spec,
            timeout_s=timeout_s,
            count_instructions=count,
            per_layer=per_layer,
        )
        if res.layerwise_mismatches:
            raise AssertionError(
                f"layer-by-layer replay differs from the step-by-step run on samples "
                f"{res.layerwise_mismatches}"
            )
        raw = np.concatenate([o[0] for o in res.outputs]).reshape(-1, out_bytes)
        if self.spiking_out:
            output = ops.unpack_spikes(raw, self.n_out)
        else:
            output = raw.view("<i4").astype(np.int32).reshape(-1, self.n_out)
        return SnnEmulatedResult(output, res.instructions, res.layer_instructions, res.wall_time_s)
