"""Helium (MVE-F, Cortex-M55) float kernels: see fp16_arm for the shared design."""

from __future__ import annotations

from codegen.families.fp16_arm import register_isa


def register_variants() -> None:
    register_isa("mve", ["mve-f"])
