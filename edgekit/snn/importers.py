"""Spiking networks in: SNN-delays (DCLS) checkpoints with their config, and NIR graphs.

SNN-delays keeps its layers in one nn.Sequential, so a checkpoint's state dict has, per
synaptic layer, `model.<i>.weight` [out, in, 1], `.P` [1, out, in, 1] and `.SIG` (Dcls1d, plus
`.bias` when configured) and, with batch norm, a BatchNorm1d at a later index with `weight`,
`bias`, `running_mean`, `running_var`. Layers are found by their keys, not by fixed indices, so
dropout, PLIF (`.w`) and synapse-filter modules may sit in between.

Dcls1d builds a kernel of D = dilated_kernel_size taps with the weight at tap k = P + D // 2, and
the model pads D - 1 zeros on the left of time before correlating, so output step t reads input
step t + k - (D - 1): the synapse's delay is d = D - 1 - k (D // 2 - round(P) for odd D). At
inference SIG is 0 and P is rounded, so each synapse has exactly one tap.
"""

from __future__ import annotations

import json
import math
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.ir.graph import MAX_RANK
from edgekit.snn.model import FloatLayer, FloatSnn
from edgekit.snn.nir_check import MAX_DATASET_ELEMENTS, MAX_NIR_BYTES, MAX_TOTAL_ELEMENTS

CONFIG_DEFAULTS: dict[str, Any] = {
    "time_step": 10.0,
    "init_tau": 10.0,
    "v_threshold": 1.0,
    "output_v_threshold": 1e9,
    "use_batchnorm": True,
    "bias": False,
    "spiking_neuron_type": "lif",
    "bn_eps": 1e-5,
}
CONFIG_REQUIRED = ("n_inputs", "n_hidden_layers", "n_hidden_neurons", "n_outputs", "max_delay")
# a readout threshold at or above this is SNN-delays' "never spike" (it uses 1e9)
UNREACHABLE_THRESHOLD = 1e6
_CONFIG_INTS = (
    ("n_inputs", 1, 1 << 24),
    ("n_hidden_layers", 0, 64),
    ("n_hidden_neurons", 1, 1 << 24),
    ("n_outputs", 1, 1 << 24),
    ("max_delay", 1, 256),  # FloatLayer's range
)
_CONFIG_FLOATS = ("time_step", "init_tau", "v_threshold", "output_v_threshold", "bn_eps")


def load_config(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    try:
        raw = json.loads(p.read_text())
    except FileNotFoundError:
        raise EdgekitError("config file not found", str(p)) from None
    except json.JSONDecodeError as exc:
        raise EdgekitError(f"config is not valid JSON: {exc}", str(p)) from None
    if not isinstance(raw, dict):
        raise EdgekitError("config must be a JSON object", str(p))
    return check_config(raw, str(p))


def check_config(raw: dict[str, Any], where: str = "config") -> dict[str, Any]:
    missing = [k for k in CONFIG_REQUIRED if k not in raw]
    if missing:
        raise EdgekitError(
            f"config lacks {', '.join(missing)}",
            where,
            hint="keys: " + ", ".join([*CONFIG_REQUIRED, *CONFIG_DEFAULTS]),
        )
    cfg = {**CONFIG_DEFAULTS, **raw}
    if cfg["spiking_neuron_type"] not in ("lif", "plif", "heaviside"):
        raise EdgekitError(
            f"spiking_neuron_type '{cfg['spiking_neuron_type']}' is not supported", where,
            hint="lif, plif or heaviside",
        )  # fmt: skip
    if cfg.get("kernel_count", 1) != 1:
        raise EdgekitError("only kernel_count = 1 (one delay per synapse) is supported", where)
    # a config is JSON from anywhere: types and ranges before any of it sizes an array
    for key, lo, hi in _CONFIG_INTS:
        v = cfg[key]
        whole = isinstance(v, int) or (isinstance(v, float) and v.is_integer())
        if isinstance(v, bool) or not whole or not lo <= v <= hi:
            raise EdgekitError(f"config {key} must be a whole number in [{lo}, {hi:,}]", where)
        cfg[key] = int(v)
    for key in _CONFIG_FLOATS:
        v = cfg[key]
        if isinstance(v, bool) or not isinstance(v, int | float) or not -1e300 < v < 1e300:
            raise EdgekitError(f"config {key} must be a finite number, not {v!r}", where)
        cfg[key] = float(v)
    if cfg["time_step"] <= 0 or cfg["bn_eps"] < 0:
        raise EdgekitError("config time_step must be positive and bn_eps not negative", where)
    for key in ("use_batchnorm", "bias"):
        if not isinstance(cfg[key], bool):
            raise EdgekitError(f"config {key} must be true or false", where)
    return cfg


def tau_steps(cfg: dict[str, Any]) -> float:
    """The membrane time constant in steps.

    SNN-delays writes init_tau in ms and divides by time_step; a config dumped after that holds
    steps. A tau in ms is never below one step, so a value >= time_step is taken as ms unless
    init_tau_unit says otherwise.
    """
    tau, dt = float(cfg["init_tau"]), float(cfg["time_step"])
    unit = cfg.get("init_tau_unit") or ("ms" if tau >= dt else "steps")
    if unit not in ("ms", "steps"):
        raise EdgekitError(f"init_tau_unit must be ms or steps, not '{unit}'")
    steps = (tau + 1e-9) / dt if unit == "ms" else tau
    if steps < 1.0 - 1e-6:
        raise EdgekitError(f"init_tau of {steps:g} steps is below one time step")
    return max(steps, 1.0)


_MAX_CKPT_RANK = MAX_RANK  # the IR's limit; SNN-delays needs 4 (P is [1, out, in, 1])
_MAX_CKPT_ENTRIES = 4096  # an SNN-delays state dict has a few dozen
_NPY_HEADER_BYTES = 1 << 16  # a .npy header is a short dict literal; numpy's own cap is 10,000
_NUMERIC = "biuf"  # bool, signed, unsigned, float


def _bad(what: str, where: str, hint: str | None = None) -> EdgekitError:
    return EdgekitError(f"malformed checkpoint: {what}", where, hint)


def _check_array_decl(
    key: str, shape: tuple[int, ...], dtype: np.dtype, where: str, total: list[int]
) -> int:
    """The element count of one declared array, after the limits the NIR reader applies."""
    if dtype.kind not in _NUMERIC or dtype.hasobject or dtype.fields is not None:
        raise _bad(f"'{key}' has type {dtype}, not a plain number type", where)
    if len(shape) > _MAX_CKPT_RANK:
        raise _bad(f"'{key}' has rank {len(shape)}, more than {_MAX_CKPT_RANK}", where)
    if any(type(d) is not int or d < 0 for d in shape):
        raise _bad(f"'{key}' declares the shape {list(shape)}", where)
    n = math.prod(shape)
    if n > MAX_DATASET_ELEMENTS:
        raise _bad(
            f"'{key}' declares {n:,} elements, more than {MAX_DATASET_ELEMENTS:,}", where
        )
    total[0] += n
    if total[0] > MAX_TOTAL_ELEMENTS:
        raise _bad(f"the arrays declare more than {MAX_TOTAL_ELEMENTS:,} elements", where)
    return n


def _zip_members(p: Path, where: str) -> list[zipfile.ZipInfo]:
    """The members of a zip container, checked from its central directory before any is read."""
    try:
        size = p.stat().st_size
    except OSError as exc:
        raise EdgekitError(f"cannot read the checkpoint ({exc.strerror})", where) from None
    if size > MAX_NIR_BYTES:
        raise _bad(f"the file is larger than {MAX_NIR_BYTES >> 20} MB", where)
    try:
        with zipfile.ZipFile(p) as z:
            infos = z.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise _bad(f"not a readable zip container ({exc})", where) from None
    if len(infos) > _MAX_CKPT_ENTRIES:
        raise _bad(f"{len(infos):,} members, more than {_MAX_CKPT_ENTRIES:,}", where)
    # the uncompressed sizes are what reading allocates; zipfile stops at the declared size and
    # checks the CRC, so a member that inflates past its declaration is an error, not a bomb
    limit = MAX_TOTAL_ELEMENTS * 8 + len(infos) * _NPY_HEADER_BYTES
    if sum(i.file_size for i in infos) > limit:
        raise _bad(f"the members unpack to more than {limit >> 20} MB", where)
    return infos


def _read_npz(p: Path, where: str) -> dict[str, np.ndarray]:
    infos = _zip_members(p, where)
    out: dict[str, np.ndarray] = {}
    total = [0]
    try:
        with zipfile.ZipFile(p) as z:
            for info in infos:
                if not info.filename.endswith(".npy") or info.is_dir():
                    raise _bad(f"member '{info.filename}' is not a .npy array", where)
                key = info.filename[: -len(".npy")]
                with z.open(info) as f:
                    version = np.lib.format.read_magic(f)
                    header = (
                        np.lib.format.read_array_header_1_0
                        if version == (1, 0)
                        else np.lib.format.read_array_header_2_0
                    )
                    shape, fortran, dtype = header(f, max_header_size=_NPY_HEADER_BYTES)
                    start = f.tell()
                n = _check_array_decl(key, tuple(shape), np.dtype(dtype), where, total)
                if info.file_size != start + n * np.dtype(dtype).itemsize:
                    raise _bad(
                        f"'{key}' holds {info.file_size - start:,} data bytes, its header "
                        f"declares {n * np.dtype(dtype).itemsize:,}",
                        where,
                    )
                with z.open(info) as f:
                    arr = np.lib.format.read_array(
                        f, allow_pickle=False, max_header_size=_NPY_HEADER_BYTES
                    )
                out[key] = np.asarray(arr)
    except EdgekitError:
        raise
    except Exception as exc:  # zipfile, zlib and numpy raise many types on a corrupt member
        raise _bad(f"{type(exc).__name__}: {exc}", where) from None
    return out


def _read_pt(p: Path, where: str) -> dict[str, np.ndarray]:
    infos = _zip_members(p, where)
    if not any(i.filename.endswith("data.pkl") for i in infos):
        raise _bad(
            "not a zip-format torch file (no data.pkl)",
            where,
            hint="save it with torch.save from torch >= 1.6, or as .npz",
        )
    if any(i.compress_type != zipfile.ZIP_STORED for i in infos):
        # torch.save stores every record uncompressed; a compressed one could inflate in C
        raise _bad("compressed members (torch.save writes them uncompressed)", where)
    try:
        import torch
    except ImportError:
        raise EdgekitError(
            "reading a .pt checkpoint needs torch",
            where,
            hint="pip install torch, or save the state dict as .npz "
            "(numpy.savez(path, **{k: v.numpy() for k, v in sd.items()}))",
        ) from None
    try:
        # weights_only: a restricted unpickler (tensors, containers, numbers), never arbitrary
        # code; torch checks each storage against its record's size
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad file
        raise EdgekitError(f"torch could not read the checkpoint: {exc}", where) from None
    for key in ("state_dict", "model_state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict):
        raise EdgekitError("the checkpoint is not a state dict", where)
    if len(obj) > _MAX_CKPT_ENTRIES:
        raise _bad(f"{len(obj):,} entries, more than {_MAX_CKPT_ENTRIES:,}", where)
    out: dict[str, np.ndarray] = {}
    total = [0]
    for k, v in obj.items():
        if not isinstance(v, torch.Tensor):
            continue
        key = str(k)
        try:
            # a view may declare far more elements than its storage holds (stride 0): the
            # declared shape is checked before anything is copied out of it
            dtype = np.dtype(torch.empty((), dtype=v.dtype).numpy().dtype)
        except Exception:
            raise _bad(f"'{key}' has type {v.dtype}, not a plain number type", where) from None
        _check_array_decl(key, tuple(int(d) for d in v.shape), dtype, where, total)
        try:
            out[key] = np.array(v.detach().cpu().numpy(), copy=True)
        except Exception as exc:  # sparse, quantized or meta tensors have no plain array
            raise _bad(f"'{key}' is not a dense tensor ({exc})", where) from None
    return out


def load_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """A checkpoint's tensors as numpy arrays: .npz directly, .pt/.pth through torch.

    Both are zip files. Before anything is unpacked, the member sizes are checked; every
    declared shape is checked (rank, elements per array and in all, numeric type) before its
    data is read; a .npy's data must be exactly as long as its header says. The limits are the
    NIR reader's (edgekit/snn/nir_check.py). Every problem is one EdgekitError naming the file.
    """
    p = Path(path)
    where = str(p)
    if not p.is_file():
        raise EdgekitError("checkpoint not found", where)
    if p.suffix == ".npz":
        return _read_npz(p, where)
    return _read_pt(p, where)


def dcls_delays(positions: np.ndarray, max_delay: int) -> np.ndarray:
    """Integer delays of a Dcls1d with kernel_count 1: d = D - 1 - clip(round(P) + D // 2)."""
    tap = np.clip(np.round(positions) + max_delay // 2, 0, max_delay - 1)
    return (max_delay - 1 - tap).astype(np.int64)


def _modules(sd: dict[str, np.ndarray], prefix: str) -> dict[int, dict[str, np.ndarray]]:
    pat = re.compile(rf"^{re.escape(prefix)}(\d+)\.(\w+)$")
    mods: dict[int, dict[str, np.ndarray]] = {}
    for k, v in sd.items():
        m = pat.match(k)
        if m:
            mods.setdefault(int(m.group(1)), {})[m.group(2)] = np.asarray(v)
    return mods


def from_snn_delays(
    sd: dict[str, np.ndarray], cfg: dict[str, Any], where: str = "checkpoint"
) -> FloatSnn:
    cfg = check_config(cfg, where)
    prefix = "model." if any(k.startswith("model.") for k in sd) else ""
    mods = _modules(sd, prefix)
    dcls = sorted(i for i, m in mods.items() if "P" in m and "weight" in m)
    n_layers = int(cfg["n_hidden_layers"]) + 1
    if len(dcls) != n_layers:
        raise EdgekitError(
            f"found {len(dcls)} Dcls1d layers ({prefix}<i>.P), the config says {n_layers}", where
        )
    dmax = int(cfg["max_delay"])
    tau = tau_steps(cfg)
    kind = cfg["spiking_neuron_type"]
    sizes = [int(cfg["n_inputs"])] + [int(cfg["n_hidden_neurons"])] * (n_layers - 1)
    sizes.append(int(cfg["n_outputs"]))
    layers: list[FloatLayer] = []
    max_sig = 0.0
    for k, idx in enumerate(dcls):
        m = mods[idx]
        n_out, n_in = sizes[k + 1], sizes[k]
        what = f"{where}: {prefix}{idx}"
        if m["weight"].shape != (n_out, n_in, 1) or m["P"].shape != (1, n_out, n_in, 1):
            raise EdgekitError(
                f"{what}: weight {list(m['weight'].shape)} / P {list(m['P'].shape)}, expected "
                f"[{n_out}, {n_in}, 1] / [1, {n_out}, {n_in}, 1] (kernel_count 1)"
            )
        # NaN positions or weights would pass every later range check (and NaN -> int64 is
        # undefined): every number read from the checkpoint must be real and finite
        w, pos = _real(m["weight"], what, "weight"), _real(m["P"], what, "P")
        if "SIG" in m:
            max_sig = max(max_sig, float(np.abs(_real(m["SIG"], what, "SIG")).max(initial=0.0)))
        nxt = min([i for i in dcls if i > idx] + [max(mods) + 1])
        between = [mods[i] for i in sorted(mods) if idx < i < nxt]
        gain = np.ones(n_out)
        offset = _vector(m, "bias", n_out, what, 0.0)
        bn = next((b for b in between if "running_mean" in b), None)
        if cfg["use_batchnorm"] and k < n_layers - 1 and bn is None:
            raise EdgekitError(f"{what}: use_batchnorm is set but no BatchNorm1d follows")
        if bn is not None:
            eps = float(cfg["bn_eps"])
            gamma = _vector(bn, "weight", n_out, what + " BatchNorm1d", 1.0)
            beta_bn = _vector(bn, "bias", n_out, what + " BatchNorm1d", 0.0)
            var = _vector(bn, "running_var", n_out, what + " BatchNorm1d", None) + eps
            if not np.all(var > 0):
                raise EdgekitError(f"{what} BatchNorm1d: running_var + eps must be positive")
            scale = gamma / np.sqrt(var)
            mean = _vector(bn, "running_mean", n_out, what + " BatchNorm1d", None)
            offset = (offset - mean) * scale + beta_bn
            gain = scale
            if not (np.all(np.isfinite(gain)) and np.all(np.isfinite(offset))):
                raise EdgekitError(f"{what} BatchNorm1d: the folded scale or offset overflows")
        plif = next((b["w"] for b in between if "w" in b and b["w"].size == 1), None)
        if kind == "plif" and plif is not None:
            w_plif = float(_real(plif, what, "PLIF w").reshape(-1)[0])
            beta = 1.0 - 1.0 / (1.0 + math.exp(-max(-700.0, min(700.0, w_plif))))
        elif kind == "heaviside":
            beta = 0.0
        else:
            beta = 1.0 - 1.0 / tau
        last = k == n_layers - 1
        thr = float(cfg["output_v_threshold"] if last else cfg["v_threshold"])
        neuron = "li" if last and (thr >= UNREACHABLE_THRESHOLD or kind == "heaviside") else "lif"
        layers.append(
            FloatLayer(
                weight=w[:, :, 0],
                delay=dcls_delays(pos[0, :, :, 0], dmax),
                max_delay=dmax,
                neuron=neuron,
                beta=np.full(n_out, beta),
                gain=gain,
                offset=offset,
                v_threshold=np.full(n_out, thr if neuron != "li" else 0.0),
                reset="zero",
            )
        )
    meta = {"source_format": "snn-delays", "max_abs_sig": max_sig, "tau_steps": tau}
    net = FloatSnn(sizes[0], layers, float(cfg["time_step"]), meta)
    try:
        net.check()
    except ValueError as exc:
        raise EdgekitError(f"invalid network: {exc}", where) from None
    return net


def _vector(
    module: dict[str, np.ndarray], key: str, n: int, what: str, default: float | None
) -> np.ndarray:
    """A per-neuron parameter of shape (n,), real and finite; `default` when absent (None:
    required)."""
    if key not in module:
        if default is None:
            raise EdgekitError(f"{what}: {key} is missing")
        return np.full(n, default)
    arr = _real(module[key], what, key)
    if arr.shape != (n,):
        raise EdgekitError(f"{what}: {key} has shape {list(arr.shape)}, expected [{n}]")
    return arr


def read_snn_delays(ckpt: str | Path, config: str | Path | dict[str, Any]) -> FloatSnn:
    cfg = load_config(config) if not isinstance(config, dict) else config
    return from_snn_delays(load_state_dict(ckpt), cfg, str(ckpt))


# --- NIR ---------------------------------------------------------------------------------------


def _nir_chain(graph: Any, where: str) -> list[Any]:
    import nir

    succ: dict[str, list[str]] = {}
    for a, b in graph.edges:
        succ.setdefault(a, []).append(b)
    starts = [k for k, n in graph.nodes.items() if isinstance(n, nir.Input)]
    if len(starts) != 1:
        raise EdgekitError(f"the NIR graph needs exactly one Input node, has {len(starts)}", where)
    chain, at, seen = [], starts[0], set()
    while True:
        node = graph.nodes[at]
        if isinstance(node, nir.NIRGraph):
            raise EdgekitError(f"nested NIR graph '{at}' is not supported", where)
        chain.append((at, node))
        seen.add(at)
        nxt = succ.get(at, [])
        if isinstance(node, nir.Output):
            break
        if len(nxt) != 1 or nxt[0] in seen:
            raise EdgekitError(
                f"NIR node '{at}' must have exactly one successor (a feed-forward chain)", where
            )
        at = nxt[0]
    return chain


def _real(value: Any, what: str, name: str) -> np.ndarray:
    """`value` as float64, refused unless it is real, numeric and finite: NaN or inf would pass
    every later range check (all comparisons with NaN are false)."""
    arr = np.asarray(value)
    if arr.dtype.kind not in "biuf":
        raise EdgekitError(f"{what}: {name} must be real numbers, not {arr.dtype}")
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise EdgekitError(f"{what}: {name} holds NaN or infinite values")
    return arr


_MAX_DELAY_STEPS = 255  # a layer's max_delay is at most 256 (snn/model.py)


def _steps(delay_s: np.ndarray, dt: float, what: str) -> np.ndarray:
    with np.errstate(over="ignore"):
        steps = _real(delay_s, what, "delay") / dt
    # checked before rounding and the int cast: a finite delay over a tiny dt is inf, which
    # every comparison below lets through and astype(int64) turns into garbage
    if not np.all(np.abs(steps) <= _MAX_DELAY_STEPS):
        worst = float(np.max(np.abs(steps)))
        raise EdgekitError(
            f"{what}: a delay of {worst:.4g} time steps of {dt:g} s; at most "
            f"{_MAX_DELAY_STEPS} steps are supported"
        )
    rounded = np.round(steps)
    if np.any(np.abs(steps - rounded) > 1e-6 * np.maximum(1.0, np.abs(steps))):
        raise EdgekitError(f"{what}: delays are not whole multiples of the time step {dt:g} s")
    if np.any(rounded < 0):
        raise EdgekitError(f"{what}: negative delay")
    return rounded.astype(np.int64)


def from_nir(graph: Any, dt: float, where: str = "nir") -> FloatSnn:
    """A NIR chain Input, ([Delay] Affine|Linear|Conv1d [Delay] LIF|IF|LI|CubaLIF)+, Output (with
    Flatten anywhere), at time step dt (s).

    Neurons are discretised with forward Euler at dt: LIF v <- (1 - dt/tau) v + dt/tau (v_leak +
    r I), IF v <- v + dt r I, LI like LIF without spikes; CubaLIF first its current
    I <- (1 - dt/tau_syn) I + dt/tau_syn w_in S, then the membrane as LIF from the new current
    (snnTorch's Synaptic neuron steps in this order). NIR fires on v > v_threshold and resets to
    v_reset, which must be 0. A Delay before the weights delays each input, one after them each
    output; a synapse's delay is the sum, in whole steps. Conv1d (over channels x positions, at
    every step) becomes the equivalent dense weight matrix.
    """
    import nir

    if not dt > 0:
        raise EdgekitError("the NIR import needs a positive time step", where, hint="--dt SECONDS")
    chain = _nir_chain(graph, where)
    shape = np.asarray(chain[0][1].input_type["input"]).reshape(-1)
    n_inputs = int(np.prod(shape))
    layers: list[FloatLayer] = []
    pending_in: np.ndarray | None = None
    weight: np.ndarray | None = None
    bias: np.ndarray | None = None
    pending_out: np.ndarray | None = None
    for name, node in chain[1:]:
        what = f"{where}: node '{name}'"
        if isinstance(node, nir.Output):
            break
        if isinstance(node, nir.Delay):
            d = _steps(node.delay, dt, what).reshape(-1)
            if weight is None:
                pending_in = d if pending_in is None else pending_in + d
            else:
                pending_out = d if pending_out is None else pending_out + d
        elif isinstance(node, nir.Affine | nir.Linear):
            if weight is not None:
                raise EdgekitError(f"{what}: two weight nodes without a neuron in between")
            weight = _real(node.weight, what, "weight")
            if weight.ndim != 2:
                raise EdgekitError(f"{what}: weight must be 2-D")
            bias = (
                _real(node.bias, what, "bias").reshape(-1)
                if isinstance(node, nir.Affine)
                else np.zeros(weight.shape[0])
            )
        elif isinstance(node, nir.Conv1d):
            if weight is not None:
                raise EdgekitError(f"{what}: two weight nodes without a neuron in between")
            n_prev = layers[-1].n_out if layers else n_inputs
            weight, bias = conv1d_matrix(node, n_prev, what)
        elif isinstance(node, nir.Flatten):
            pass  # vectors are already flat, in C order, which is how Conv1d outputs are laid out
        elif isinstance(node, nir.LIF | nir.IF | nir.LI | nir.CubaLIF):
            if weight is None:
                raise EdgekitError(f"{what}: a neuron node needs a weight node before it")
            n_out, n_in = weight.shape
            d = np.zeros((n_out, n_in), np.int64)
            if pending_in is not None:
                d = d + pending_in.reshape(1, -1)
            if pending_out is not None:
                d = d + pending_out.reshape(-1, 1)
            assert bias is not None
            layers.append(_nir_layer(node, weight, bias, d, dt, what))
            weight = bias = pending_in = pending_out = None
        else:
            raise EdgekitError(f"{what}: NIR {type(node).__name__} is not supported here")
    if weight is not None:
        raise EdgekitError(f"{where}: the last weight node has no neuron after it")
    net = FloatSnn(n_inputs, layers, dt * 1000.0, {"source_format": "nir"})
    try:
        net.check()
    except ValueError as exc:
        raise EdgekitError(f"invalid network: {exc}", where) from None
    return net


def _per_neuron(value: Any, n: int, what: str, name: str) -> np.ndarray:
    arr = _real(value, what, name).reshape(-1)
    if arr.size == 1:
        return np.full(n, float(arr[0]))
    if arr.size != n:
        raise EdgekitError(f"{what}: {name} has {arr.size} values for {n} neurons")
    return arr


def _int_param(value: Any, what: str, name: str) -> int:
    arr = np.asarray(value).reshape(-1)
    if (
        arr.size != 1
        or arr.dtype.kind not in "iu"
        and not (arr.dtype.kind == "f" and np.isfinite(arr[0]) and float(arr[0]).is_integer())
    ):
        raise EdgekitError(f"{what}: Conv1d {name} must be one integer")
    return int(arr[0])


def conv1d_matrix(node: Any, n_prev: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    """A NIR Conv1d as (dense weight [C_out * L_out, C_in * L_in], bias [C_out * L_out]).

    Input element (c, l) is c * L_in + l and output (o, m) is o * L_out + m (C order, the way NIR
    flattens). Output (o, m) = bias_o + sum over c in o's group and taps k of
    w[o, c', k] x[c, m * stride - pad + k * dilation], positions outside the input being zero
    (PyTorch's Conv1d; 'same' pads dilation * (K - 1) // 2 on the left). Every product lands in
    exactly one matrix entry, so the dense layer computes the same sums.
    """
    w = _real(node.weight, what, "weight")
    if w.ndim != 3:
        raise EdgekitError(f"{what}: Conv1d weight must be [C_out, C_in / groups, K]")
    c_out, c_in_g, k_size = w.shape
    stride = _int_param(node.stride, what, "stride")
    dilation = _int_param(node.dilation, what, "dilation")
    groups = _int_param(node.groups, what, "groups")
    if stride < 1 or dilation < 1 or groups < 1 or c_out % groups:
        raise EdgekitError(f"{what}: Conv1d needs stride, dilation, groups >= 1, groups | C_out")
    c_in = c_in_g * groups
    if node.input_shape is not None:
        l_in = _int_param(node.input_shape, what, "input_shape")
    elif c_in and n_prev % c_in == 0:
        l_in = n_prev // c_in
    else:
        raise EdgekitError(
            f"{what}: Conv1d's {c_in} input channels do not divide its {n_prev} inputs"
        )
    if l_in < 1 or c_in * l_in != n_prev:
        raise EdgekitError(
            f"{what}: Conv1d takes {c_in} channels x {l_in} positions, its input has {n_prev}"
        )
    span = dilation * (k_size - 1)
    if isinstance(node.padding, str):
        if node.padding == "same" and stride != 1:
            raise EdgekitError(f"{what}: Conv1d padding 'same' needs stride 1")
        pad_l = span // 2 if node.padding == "same" else 0
        pad_total = span if node.padding == "same" else 0
    else:
        pad_l = _int_param(node.padding, what, "padding")
        pad_total = 2 * pad_l
    if pad_l < 0:
        raise EdgekitError(f"{what}: negative Conv1d padding")
    l_out = (l_in + pad_total - span - 1) // stride + 1
    if l_out < 1:
        raise EdgekitError(f"{what}: Conv1d kernel is longer than its padded input")
    if c_out * l_out * n_prev > 1 << 24:
        raise EdgekitError(f"{what}: Conv1d as a dense matrix would exceed 16M weights")
    dense = np.zeros((c_out, l_out, c_in, l_in))
    per_group = c_out // groups
    for o in range(c_out):
        g = o // per_group
        for m in range(l_out):
            for k in range(k_size):
                pos = m * stride - pad_l + k * dilation
                if 0 <= pos < l_in:
                    dense[o, m, g * c_in_g : (g + 1) * c_in_g, pos] += w[o, :, k]
    b = getattr(node, "bias", None)
    bias = np.zeros(c_out) if b is None else _per_neuron(b, c_out, what, "bias")
    return dense.reshape(c_out * l_out, c_in * l_in), np.repeat(bias, l_out)


def _nir_layer(
    node: Any, weight: np.ndarray, bias: np.ndarray, d: np.ndarray, dt: float, what: str
) -> FloatLayer:
    import nir

    n_out = weight.shape[0]
    r = _per_neuron(node.r, n_out, what, "r")
    syn_beta = syn_offset = None
    if isinstance(node, nir.CubaLIF):
        tau_syn = _per_neuron(node.tau_syn, n_out, what, "tau_syn")
        tau_mem = _per_neuron(node.tau_mem, n_out, what, "tau_mem")
        if np.any(tau_syn < dt) or np.any(tau_mem < dt):
            raise EdgekitError(f"{what}: a time constant below the time step makes Euler unstable")
        ks, km = dt / tau_syn, dt / tau_mem
        w_in = _per_neuron(node.w_in, n_out, what, "w_in")
        # the membrane sees km r I; carrying J = km r I as the state folds km r into the weights
        gain = km * r * ks * w_in
        syn_beta, syn_offset = 1.0 - ks, gain * bias
        beta, offset = 1.0 - km, km * _per_neuron(node.v_leak, n_out, what, "v_leak")
        neuron = "cuba"
    elif isinstance(node, nir.IF):
        beta, gain, offset = np.ones(n_out), dt * r, dt * r * bias
        neuron = "if"
    else:
        tau = _per_neuron(node.tau, n_out, what, "tau")
        if np.any(tau < dt):
            raise EdgekitError(f"{what}: tau below the time step makes Euler unstable")
        k = dt / tau
        leak = _per_neuron(node.v_leak, n_out, what, "v_leak")
        beta, gain, offset = 1.0 - k, k * r, k * (leak + r * bias)
        neuron = "li" if isinstance(node, nir.LI) else "lif"
    thr = np.zeros(n_out)
    if neuron != "li":
        thr = _per_neuron(node.v_threshold, n_out, what, "v_threshold")
        v_reset = getattr(node, "v_reset", None)
        if v_reset is not None and np.any(_per_neuron(v_reset, n_out, what, "v_reset") != 0):
            raise EdgekitError(f"{what}: only v_reset = 0 is supported")
    dmax = int(d.max(initial=0)) + 1
    return FloatLayer(
        weight, d, dmax, neuron, beta, gain, offset, thr, "zero", True, syn_beta, syn_offset
    )


def read_nir(path: str | Path, dt: float) -> FloatSnn:
    try:
        import nir
    except ImportError:
        raise EdgekitError(
            "reading NIR needs the nir package", str(path), "pip install nir"
        ) from None
    from edgekit.snn.nir_check import read_nir_dict

    # sizes, links and nesting are checked on the HDF5 metadata, and the file is read, in a
    # time- and memory-limited child process (nir_check.py); nodes are built here as nir.read does
    data = read_nir_dict(path)
    try:
        if "type_check" in data:
            raise ValueError("the graph holds a 'type_check' key")
        data["type_check"] = True
        graph = nir.dict2NIRNode(data)
    except Exception as exc:  # nir raises many types for a bad graph
        raise EdgekitError(f"could not read the NIR file: {exc}", str(path)) from None
    try:
        return from_nir(graph, dt, str(path))
    except EdgekitError as exc:
        if exc.where is None and str(path) not in exc.what:  # name the file once
            raise EdgekitError(exc.what, str(path), exc.hint) from None
        raise
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, ArithmeticError) as exc:
        # nir.read builds nodes from whatever the file holds (any dtype, any rank, missing
        # keys); what from_nir's checks do not name is still one error for this file
        raise EdgekitError(
            f"the NIR graph is malformed ({type(exc).__name__}: {exc})", str(path)
        ) from None
