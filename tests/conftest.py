"""Shared fixtures: where the reference models are, and an isolated build cache per session."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[1]
MLPERF_DIR = REPO.parent / "shared" / "models" / "mlperf-tiny"
MLPERF_INT8 = {
    "ad": "ad01_int8.tflite",
    "kws": "kws_ref_model.tflite",
    "ic": "pretrainedResnet_quant.tflite",
    "vww": "vww_96_int8.tflite",
}


def load_module(name: str, rel: str) -> ModuleType:
    """A repository file outside any package (bench scripts, other tests), imported once."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, REPO / rel)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def mlperf_model(key: str) -> Path:
    path = MLPERF_DIR / MLPERF_INT8[key]
    if not path.is_file():
        pytest.skip(f"MLPerf Tiny reference model not found at {path} (../shared/models is absent)")
    return path


@pytest.fixture(autouse=True, scope="session")
def _edgekit_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Keep host builds of one test session together and away from the user's cache."""
    import os

    os.environ.setdefault("EDGEKIT_CACHE", str(tmp_path_factory.mktemp("edgekit-cache")))
