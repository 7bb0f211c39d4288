"""Hostile SNN-delays (DCLS) checkpoints and configs through `edgekit convert`.

Every case ends in exit code 2 with one message naming the file, no traceback and no output:
truncated and corrupt zips, .npy headers declaring huge or negative shapes, data shorter than
its header, object and string arrays, NaN positions and weights, wrong ranks and shapes,
compressed members that inflate to the limits or lie about their size, pickles that would run
code, legacy (non-zip) torch files and stride-0 views declaring a billion elements. The huge
cases also run in a child process with a 1 GB address-space limit, so a reader that allocated
what the file declares would fail with MemoryError rather than pass by luck.
"""

from __future__ import annotations

import io
import json
import pickle
import resource
import struct
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from edgekit.cli import main
from edgekit.snn.synthetic import SHD_CONFIG, random_state_dict

CFG = {**SHD_CONFIG, "n_inputs": 12, "n_hidden_layers": 1, "n_hidden_neurons": 10,
       "n_outputs": 3, "max_delay": 5}  # fmt: skip


def _state() -> dict[str, np.ndarray]:
    return random_state_dict(CFG, seed=3)


def _npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, arr, allow_pickle=True)
    return buf.getvalue()


def _npy_header(shape: object, descr: str = "<f4") -> bytes:
    """A .npy header with any shape literal, as a hostile writer would emit it."""
    text = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}"
    text += " " * (-(len(text) + 11) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text.encode()


def _npz(members: dict[str, bytes], compress: bool = False) -> bytes:
    buf = io.BytesIO()
    mode = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(buf, "w", mode) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def _good_members(**override: bytes) -> dict[str, bytes]:
    members = {f"{k}.npy": _npy(v) for k, v in _state().items()}
    members.update({f"{k}.npy": v for k, v in override.items()})
    return members


def _with(key: str, edit: Callable[[np.ndarray], np.ndarray]) -> bytes:
    sd = _state()
    sd[key] = edit(sd[key])
    return _npz({f"{k}.npy": _npy(v) for k, v in sd.items()})


def _lying_size() -> bytes:
    """A deflated member whose central directory declares fewer bytes than it inflates to."""
    data = bytearray(_npz(_good_members(), compress=True))
    at = data.rfind(b"PK\x01\x02")  # the last member's central directory entry
    (size,) = struct.unpack_from("<I", data, at + 24)
    struct.pack_into("<I", data, at + 24, size // 2)
    return bytes(data)


def _first_weight_key() -> str:
    return next(k for k in _state() if k.endswith(".weight") and _state()[k].ndim == 3)


def _first_p_key() -> str:
    return next(k for k in _state() if k.endswith(".P"))


def _npz_cases() -> dict[str, bytes]:
    good = _npz(_good_members())
    w, p = _first_weight_key(), _first_p_key()
    bn_var = next(k for k in _state() if k.endswith("running_var"))
    zeros = np.zeros((1 << 24) + 1, np.uint8)  # 16 MB of zeros deflate to ~16 KB
    return {
        "truncated": good[: len(good) // 2],
        "empty": b"",
        "not_a_zip": b"\x93NUMPY" + b"\x00" * 100,
        "huge_declared_shape": _npz(_good_members(**{w: _npy_header(f"({1 << 40},)")})),
        "huge_declared_dims": _npz(_good_members(**{w: _npy_header("(65536, 65536, 65536)")})),
        "negative_dim": _npz(_good_members(**{w: _npy_header("(-1, 12, 1)")})),
        "rank_7_header": _npz(_good_members(**{w: _npy_header("(1, 1, 1, 1, 1, 1, 1)")})),
        "data_shorter_than_header": _npz(_good_members(**{w: _npy_header("(10, 12, 1)") + b"\0"})),
        "object_array": _npz(_good_members(**{w: _npy(np.array([{"a": 1}], dtype=object))})),
        "string_array": _npz(_good_members(**{w: _npy(np.array(["x"] * 120))})),
        "structured_array": _npz(
            _good_members(**{w: _npy(np.zeros((10, 12, 1), [("a", "<f4"), ("b", "<f4")]))})
        ),
        "complex_weights": _with(w, lambda a: a.astype(np.complex64)),
        "nan_positions": _with(p, lambda a: np.where(np.arange(a.size).reshape(a.shape) == 3,
                                                     np.nan, a).astype(a.dtype)),  # fmt: skip
        "inf_weights": _with(w, lambda a: np.full_like(a, np.inf)),
        "p_wrong_rank": _with(p, lambda a: a.reshape(a.shape[1:])),
        "weight_wrong_rank": _with(w, lambda a: a.reshape(1, *a.shape)),
        "bn_wrong_shape": _with(bn_var, lambda a: np.concatenate([a, a])),
        "bn_negative_variance": _with(bn_var, lambda a: -np.abs(a) - 1.0),
        "not_npy_member": _npz({**_good_members(), "evil.txt": b"hello"}),
        "bomb_within_limits": _npz(_good_members(**{w: _npy(zeros)}), compress=True),
        "bomb_past_limits": _npz(
            _good_members(**{w: _npy_header(f"({1 << 26},)", "|u1") + bytes(1 << 26)}),
            compress=True,
        ),
        "lying_member_size": _lying_size(),
    }


NPZ_CASES = _npz_cases()


def _convert(tmp_path: Path, name: str, data: bytes, cfg: dict | None = None) -> tuple[int, str]:
    ckpt = tmp_path / name
    ckpt.write_bytes(data)
    config = tmp_path / "model.json"
    config.write_text(json.dumps(cfg or CFG))
    out = tmp_path / f"{name}.ekir"
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, str(ckpt), str(config), str(out)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert not out.exists(), name
    assert "Traceback" not in proc.stderr and "MemoryError" not in proc.stderr, proc.stderr
    return proc.returncode, proc.stderr


# the CLI in a child limited to 1 GB of address space beyond what it starts with
_CHILD = """
import resource, sys
from edgekit.cli import main
import numpy  # noqa: F401 (loaded before the limit: library code is not the input's)
try:
    import torch  # noqa: F401
except ImportError:
    pass
soft, hard = resource.getrlimit(resource.RLIMIT_AS)
with open("/proc/self/statm") as f:
    used = int(f.read().split()[0]) * resource.getpagesize()
resource.setrlimit(resource.RLIMIT_AS, (used + (1 << 30), hard))
sys.exit(main(["convert", sys.argv[1], "--config", sys.argv[2], "-o", sys.argv[3],
               "--samples", "2", "--steps", "8"]))
"""
assert resource  # the child uses it


def test_the_good_checkpoint_converts(tmp_path: Path) -> None:
    data = _npz(_good_members())
    assert main(["convert", str(_write(tmp_path, "ok.npz", data)), "--config",
                 str(_write(tmp_path, "m.json", json.dumps(CFG).encode())), "-o",
                 str(tmp_path / "ok.ekir"), "--samples", "2", "--steps", "8"]) == 0  # fmt: skip
    assert (tmp_path / "ok.ekir").is_file()


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    (tmp_path / name).write_bytes(data)
    return tmp_path / name


# the reason, where it is a limit or a declaration checked before reading
REASONS = {
    "huge_declared_shape": "1,099,511,627,776 elements, more than 16,777,216",
    "huge_declared_dims": "more than 16,777,216",
    "rank_7_header": "rank 7, more than 6",
    "data_shorter_than_header": "holds 1 data bytes, its header declares 480",
    "object_array": "not a plain number type",
    "bomb_past_limits": "67,108,864 elements, more than 16,777,216",
    "nan_positions": "NaN or infinite",
    "inf_weights": "NaN or infinite",
    "bn_negative_variance": "running_var + eps must be positive",
    "stride0_view_of_a_billion": "1,073,741,824 elements, more than 16,777,216",
    "deflated_records": "compressed members",
    "legacy_pickle": "not a readable zip container",
}


@pytest.mark.parametrize("case", sorted(NPZ_CASES))
def test_hostile_npz_is_one_clean_error(case: str, tmp_path: Path) -> None:
    code, err = _convert(tmp_path, f"{case}.npz", NPZ_CASES[case])
    assert code == 2, err
    assert err.startswith("edgekit: error:") and f"{case}.npz" in err, err
    assert REASONS.get(case, "") in err


torch = pytest.importorskip("torch")


class _Evil:
    def __reduce__(self) -> tuple:
        return (open, (str(Path("/tmp") / "edgekit-dcls-pwned"), "w"))


def _pt(obj: object) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def _tensors() -> dict:
    return {k: torch.as_tensor(v) for k, v in _state().items()}


def _restore(data: bytes, compress: bool) -> bytes:
    """The same .pt with its records deflated."""
    src = zipfile.ZipFile(io.BytesIO(data))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED) as z:
        for name in src.namelist():
            z.writestr(name, src.read(name))
    return buf.getvalue()


def _pt_cases() -> dict[str, bytes]:
    w = _first_weight_key()
    huge_view = _tensors()
    sig = next(k for k in huge_view if k.endswith(".SIG"))
    # 4 bytes stored, a billion elements declared; SIG is only reduced (|SIG|.max()), so only a
    # check of the declared size stops that from allocating 4 GB
    huge_view[sig] = torch.zeros(1).expand(1 << 30)
    nan = _tensors()
    nan[_first_p_key()] = torch.full_like(nan[_first_p_key()], float("nan"))
    good = _pt(_tensors())
    return {
        "truncated": good[: len(good) // 2],
        "legacy_pickle": pickle.dumps({w: np.zeros(3)}),
        "code_in_pickle": _pt({**_tensors(), "x": _Evil()}),
        "stride0_view_of_a_billion": _pt(huge_view),
        "deflated_records": _restore(good, compress=True),
        "nan_positions": _pt(nan),
        "not_a_state_dict": _pt([1, 2, 3]),
        "complex_tensor": _pt({**_tensors(), w: torch.zeros(10, 12, 1, dtype=torch.complex64)}),
    }


@pytest.mark.parametrize("case", sorted(_pt_cases()))
def test_hostile_pt_is_one_clean_error(case: str, tmp_path: Path) -> None:
    marker = Path("/tmp") / "edgekit-dcls-pwned"
    marker.unlink(missing_ok=True)
    code, err = _convert(tmp_path, f"{case}.pt", _pt_cases()[case])
    assert code == 2, err
    assert err.startswith("edgekit: error:") and f"{case}.pt" in err, err
    assert REASONS.get(case, "") in err
    assert not marker.exists(), "unpickling ran code from the file"


@pytest.mark.parametrize(
    "edit",
    [
        {"max_delay": "abc"},
        {"max_delay": 10**40},
        {"n_inputs": 1e12},
        {"n_inputs": 12.5},
        {"n_hidden_layers": -1},
        {"n_hidden_neurons": True},
        {"time_step": float("nan")},
        {"time_step": 0},
        {"v_threshold": "1"},
        {"use_batchnorm": "yes"},
        {"kernel_count": "2"},
    ],
    ids=lambda e: "-".join(f"{k}={v!r}" for k, v in e.items())[:40],
)
def test_hostile_config_is_one_clean_error(edit: dict, tmp_path: Path) -> None:
    code, err = _convert(tmp_path, "ok.npz", _npz(_good_members()), {**CFG, **edit})
    assert code == 2, err
    assert err.startswith("edgekit: error:") and "model.json" in err, err
