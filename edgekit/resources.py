"""Locates the non-Python folders (csrc/, targets/, boards/) in a checkout or an installed wheel."""

from __future__ import annotations

from pathlib import Path

_PKG = Path(__file__).resolve().parent


def resource_dir(name: str) -> Path:
    """The folder `name` (csrc, targets, boards) beside the package, or inside the wheel."""
    for candidate in (_PKG.parent / name, _PKG / "_data" / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"edgekit installation is missing its '{name}' folder")
