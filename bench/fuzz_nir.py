"""NIR seeds and mutations for bench/fuzz_readers.py (reader `nir`).

A NIR file is HDF5: groups for the graph and its nodes, one dataset per parameter (`type`,
`weight`, `tau`, `shape`, ...), the edges as an (n, 2) string dataset and a `version` string.
Mutants are made on that structure: the file is read into a flat {path: value} dict, edited
(hostile values, wrong lengths and ranks, wrong types, renamed node types, rewired or cyclic
edges, removed nodes and keys, unknown versions) and written back with h5py; or HDF5-level
hostility is planted that a dict cannot express (a dataset that declares terabytes while the
file stays small, external links and external storage that name other files, soft-link
cycles, deep group nesting); or the raw bytes are flipped, overwritten or truncated.
"""

from __future__ import annotations

import copy
import functools
import io
import math
import os
from collections.abc import Callable
from typing import Any

import numpy as np

from edgekit.errors import EdgekitError

NIR_SECONDS = 1e-3  # the time step every seed is written for (--dt of `snn convert`)

NIR_FLOATS = [0.0, -0.0, -1.0, math.nan, math.inf, -math.inf, 1e-45, 1e-300, 1e300, 3.4e38,
              1e-3, 2e-3, 0.5, 1.0, 2.0, -1e-3, 1.5e-3, 1e9]  # fmt: skip
NIR_INTS = [0, 1, -1, 2, 255, 256, 257, -(1 << 31), (1 << 31) - 1, 1 << 40, -(1 << 62), 1 << 62]
NIR_TYPES = ["Input", "Output", "Affine", "Linear", "LIF", "IF", "LI", "Delay", "CubaLIF",
             "Conv2d", "Flatten", "NIRGraph", "Threshold", "Integrator", "Scale", "", "x"]
NIR_NAMES = ["input", "output", "../../x", "/etc/passwd", "a/b", "new\nline", "*/ int x; /*",
             "q\"", "\u00e9", "", "x" * 300]  # fmt: skip


def _lif_params(rng: np.random.Generator, n: int, kind: str) -> dict[str, Any]:
    import nir

    tau = np.full(n, float(rng.choice([2e-3, 4e-3, 8e-3])))
    r = rng.uniform(0.5, 4.0, n)
    if kind == "IF":
        return {"node": nir.IF(r=r, v_threshold=np.full(n, 0.5), v_reset=np.zeros(n))}
    if kind == "LI":
        return {"node": nir.LI(tau=tau, r=r, v_leak=np.zeros(n))}
    return {
        "node": nir.LIF(tau=tau, r=r, v_leak=np.zeros(n), v_threshold=np.full(n, 0.5),
                        v_reset=np.zeros(n))  # fmt: skip
    }


def nir_seed(seed: int) -> bytes:
    """A small random feed-forward NIR chain that `snn convert --dt 0.001` accepts."""
    import nir

    rng = np.random.default_rng(seed)
    n_in = int(rng.integers(1, 9))
    nodes: dict[str, Any] = {"input": nir.Input(input_type={"input": np.array([n_in])})}
    n_layers = int(rng.integers(1, 4))
    n = n_in
    for k in range(n_layers):
        if rng.random() < 0.4:
            nodes[f"din{k}"] = nir.Delay(rng.integers(0, 4, n) * NIR_SECONDS)
        n_out = int(rng.integers(1, 9))
        w = rng.uniform(-1, 1, (n_out, n))
        if rng.random() < 0.5:
            nodes[f"fc{k}"] = nir.Affine(weight=w, bias=rng.uniform(-0.2, 0.2, n_out))
        else:
            nodes[f"fc{k}"] = nir.Linear(weight=w)
        if rng.random() < 0.4:
            nodes[f"dout{k}"] = nir.Delay(rng.integers(0, 4, n_out) * NIR_SECONDS)
        last = k == n_layers - 1
        kind = str(rng.choice(["LIF", "IF", "LI"] if last else ["LIF", "IF"]))
        nodes[f"n{k}"] = _lif_params(rng, n_out, kind)["node"]
        n = n_out
    nodes["output"] = nir.Output(output_type={"output": np.array([n])})
    order = list(nodes)
    graph = nir.NIRGraph(nodes=nodes, edges=list(zip(order[:-1], order[1:], strict=True)))
    buf = io.BytesIO()
    nir.write(buf, graph)
    return buf.getvalue()


def nir_seed_models(count: int = 12) -> list[tuple[str, bytes]]:
    return [(f"nir_chain{k}", nir_seed(k)) for k in range(count)]


# --- the file as a flat dict --------------------------------------------------------------------


@functools.lru_cache(maxsize=64)  # seeds only: every structural mutant starts from a copy
def _read_tree(data: bytes) -> dict[str, Any]:
    import h5py

    out: dict[str, Any] = {}
    with h5py.File(io.BytesIO(data), "r") as f:

        def visit(name: str, obj: Any) -> None:
            if isinstance(obj, h5py.Dataset):
                out[name] = obj[()]

        f.visititems(visit)
    return out


def _write_tree(tree: dict[str, Any]) -> bytes:
    import h5py

    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        for name, value in tree.items():
            try:
                if isinstance(value, str):
                    f.create_dataset(name, data=value)
                else:
                    f.create_dataset(name, data=value)
            except (TypeError, ValueError, KeyError):
                continue  # a value h5py cannot store (e.g. a path below a dataset): drop it
    return buf.getvalue()


def _node_groups(tree: dict[str, Any]) -> list[str]:
    return sorted({k.rsplit("/", 1)[0] for k in tree if k.startswith("node/nodes/")})


def _pick(rng: np.random.Generator, items: list[Any]) -> Any:
    return items[int(rng.integers(len(items)))]


def _param_keys(tree: dict[str, Any]) -> list[str]:
    return [k for k in tree if k.startswith("node/nodes/") and not k.endswith("/type")]


def _mut_value(rng: np.random.Generator, tree: dict[str, Any]) -> None:
    """A parameter's elements set to hostile values (NaN, inf, 0, negative, enormous)."""
    key = _pick(rng, _param_keys(tree))
    arr = np.array(tree[key], dtype=np.float64, copy=True)
    if arr.size == 0:
        return
    if rng.random() < 0.5:
        arr.reshape(-1)[:] = _pick(rng, NIR_FLOATS)
    else:
        arr.reshape(-1)[int(rng.integers(arr.size))] = _pick(rng, NIR_FLOATS)
    if key.endswith("/shape"):
        tree[key] = np.array([_pick(rng, NIR_INTS) for _ in range(arr.size)], dtype=np.int64)
    else:
        tree[key] = arr


def _mut_shape(rng: np.random.Generator, tree: dict[str, Any]) -> None:
    """A parameter resized, reshaped to another rank, emptied, or made a scalar."""
    key = _pick(rng, _param_keys(tree))
    arr = np.asarray(tree[key])
    choice = int(rng.integers(6))
    if choice == 0:
        tree[key] = arr.reshape(-1)[: max(0, arr.size - int(rng.integers(1, 3)))]
    elif choice == 1:
        tree[key] = np.concatenate([arr.reshape(-1), arr.reshape(-1)[: int(rng.integers(1, 4))]])
    elif choice == 2:
        tree[key] = arr.reshape(1, *arr.shape)
    elif choice == 3:
        tree[key] = arr.reshape(-1)[:1].reshape(()) if arr.size else np.float64(1.0)
    elif choice == 4:
        tree[key] = np.zeros((0,) * int(rng.integers(1, 3)))
    else:
        tree[key] = np.ones([int(rng.integers(1, 4))] * int(rng.integers(3, 8)))


def _mut_dtype(rng: np.random.Generator, tree: dict[str, Any]) -> None:
    """A parameter stored as another type: string, bool, int, complex, or an object array."""
    key = _pick(rng, list(tree))
    arr = np.asarray(tree[key])
    tree[key] = _pick(
        rng,
        [
            b"not a number",
            "text",
            arr.astype(np.bool_) if arr.dtype.kind in "fiu" else np.bool_(True),
            arr.astype(np.int8) if arr.dtype.kind in "fiu" else np.int8(-1),
            arr.astype(np.complex64) if arr.dtype.kind in "fiu" else np.complex64(1j),
            np.array([b"a", b"b"]),
            np.float16(np.nan),
        ],
    )


def _mut_type(rng: np.random.Generator, tree: dict[str, Any]) -> None:
    """A node's `type` changed to another (known, unknown or empty) NIR node type."""
    groups = _node_groups(tree)
    tree[f"{_pick(rng, groups)}/type"] = _pick(rng, NIR_TYPES).encode()


def _mut_remove(rng: np.random.Generator, tree: dict[str, Any]) -> None:
    """A key, or a whole node, removed."""
    if rng.random() < 0.5:
        del tree[_pick(rng, list(tree))]
    else:
        group = _pick(rng, _node_groups(tree))
        for k in [k for k in tree if k.startswith(group + "/")]:
            del tree[k]


def _mut_edges(rng: np.random.Generator, tree: dict[str, Any]) -> None:
    """Edges rewired: cycles, self-loops, unknown nodes, duplicates, none at all, wrong shape."""
    if "node/edges" not in tree:
        return
    edges = [[bytes(a), bytes(b)] for a, b in np.asarray(tree["node/edges"]).reshape(-1, 2)]
    names = [g.rsplit("/", 1)[1].encode() for g in _node_groups(tree)] + [b"ghost", b""]
    choice = int(rng.integers(7))
    if choice == 0 and edges:
        edges.append([edges[-1][1], edges[0][0]])  # back to the start: a cycle
    elif choice == 1:
        n = _pick(rng, names)
        edges.append([n, n])
    elif choice == 2 and edges:
        edges[int(rng.integers(len(edges)))][int(rng.integers(2))] = _pick(rng, names)
    elif choice == 3 and edges:
        edges.append(list(edges[int(rng.integers(len(edges)))]))
    elif choice == 4:
        edges = []
    elif choice == 5 and edges:
        edges.reverse()
        edges = [[b, a] for a, b in edges]
    else:
        tree["node/edges"] = np.array([b"a", b"b", b"c"])
        return
    tree["node/edges"] = np.array(edges, dtype=object).astype("S") if edges else np.zeros((0, 2))


def _mut_version(rng: np.random.Generator, tree: dict[str, Any]) -> None:
    """An unknown, empty or non-string version."""
    tree["version"] = _pick(rng, [b"99.0.0", b"0.0.1", b"", b"x", np.int64(2), b"1.0.8\x00"])


def _mut_name(rng: np.random.Generator, tree: dict[str, Any]) -> None:
    """A node renamed to a hostile name (path separators, comment terminators, newline)."""
    group = _pick(rng, _node_groups(tree))
    new = _pick(rng, NIR_NAMES).replace("/", "_") or "_"
    old = group.rsplit("/", 1)[1]
    for k in [k for k in tree if k.startswith(group + "/")]:
        tree[k.replace(group, f"node/nodes/{new}", 1)] = tree.pop(k)
    if "node/edges" in tree:
        e = np.asarray(tree["node/edges"]).astype("S")
        tree["node/edges"] = np.where(e == old.encode(), new.encode(), e)


TREE_MUTATIONS: list[Callable[[np.random.Generator, dict[str, Any]], None]] = [
    _mut_value, _mut_value, _mut_shape, _mut_shape, _mut_dtype, _mut_type, _mut_remove,
    _mut_edges, _mut_edges, _mut_version, _mut_name,
]  # fmt: skip


# --- HDF5-level hostility -----------------------------------------------------------------------


HDF5_PLANTS = ["huge_declared_shape", "external_link", "soft_link_cycle", "external_storage",
               "deep_nesting", "huge_string"]  # fmt: skip


def _hdf5_plant(rng: np.random.Generator, data: bytes, applied: list[str]) -> bytes:
    """One piece of HDF5 hostility in a copy of the file, at a parameter's place."""
    import h5py

    buf = io.BytesIO(data)
    with h5py.File(buf, "r+") as f:
        keys: list[str] = []
        f.visititems(lambda n, o: keys.append(n) if isinstance(o, h5py.Dataset) else None)
        key = _pick(rng, [k for k in keys if k.startswith("node/nodes/")] or keys)
        del f[key]
        choice = int(rng.integers(6))
        applied.append(HDF5_PLANTS[choice])
        if choice == 0:  # terabytes declared, nothing stored: reading it allocates them
            side = int(_pick(rng, [1 << 16, 1 << 20, 1 << 24]))
            f.create_dataset(key, shape=(side, side), dtype="f8", chunks=(64, 64),
                             compression="gzip")  # fmt: skip
        elif choice == 1:  # a link into another file, by path
            target = _pick(rng, ["/etc/passwd", "../../x.nir", "net.nir", "/dev/zero"])
            f[key] = h5py.ExternalLink(target, "/x")
        elif choice == 2:  # a soft link that names itself, or its own group
            f[key] = h5py.SoftLink("/" + key if rng.random() < 0.5 else "/node")
        elif choice == 3:  # raw data kept in another file
            f.create_dataset(key, shape=(4,), dtype="f8",
                             external=[(_pick(rng, ["/dev/zero", "/etc/passwd", "w.bin"]), 0,
                                        h5py.h5f.UNLIMITED)])  # fmt: skip
        elif choice == 4:  # groups nested thousands deep
            depth = int(rng.integers(100, 3000))
            f.create_group(key + "/g" * depth)
        else:  # a huge variable-length string
            f.create_dataset(key, data=np.bytes_(b"x" * int(rng.integers(1 << 16, 1 << 22))))
    return buf.getvalue()


def _flip(rng: np.random.Generator, data: bytearray) -> None:
    for _ in range(int(rng.integers(1, 9))):
        data[int(rng.integers(len(data)))] ^= 1 << int(rng.integers(8))


def _overwrite(rng: np.random.Generator, data: bytearray) -> None:
    at = int(rng.integers(max(1, len(data) - 8)))
    data[at : at + 8] = int(_pick(rng, NIR_INTS) & ((1 << 64) - 1)).to_bytes(8, "little")


def _truncate(rng: np.random.Generator, data: bytearray) -> None:
    del data[int(rng.integers(len(data))) :]


def mutate_nir(rng: np.random.Generator, seed: bytes, applied: list[str]) -> bytes:
    """One mutant of a NIR seed: structural (2/3), HDF5-level (1/6) or byte-level (1/6). The
    names of the mutation classes used are appended to `applied`."""
    roll = rng.random()
    if roll < 2 / 3:
        tree = copy.deepcopy(_read_tree(seed))
        for _ in range(int(rng.integers(1, 4))):
            fn = _pick(rng, TREE_MUTATIONS)
            applied.append(fn.__name__.lstrip("_"))
            fn(rng, tree)
        return _write_tree(tree)
    if roll < 5 / 6:
        return _hdf5_plant(rng, seed, applied)
    data = bytearray(seed)
    for _ in range(int(rng.integers(1, 4))):
        fn = _pick(rng, [_flip, _flip, _overwrite, _truncate])
        applied.append(fn.__name__.lstrip("_"))
        fn(rng, data)
    return bytes(data)


def run_nir(path: Any, name: str = "nir") -> Any:
    """What `edgekit snn convert x.nir --dt 0.001` + `snn generate` do with a file: the oracle."""
    from edgekit.snn.compile import compile_snn
    from edgekit.snn.importers import read_nir
    from edgekit.snn.quantize import quantize

    # a corrupt file that hangs libhdf5 is cut off inside the execution's time limit
    os.environ.setdefault("EDGEKIT_NIR_READ_SECONDS", "3")
    net = read_nir(str(path), NIR_SECONDS)
    try:
        graph = quantize(net, name, {})
        return compile_snn(graph, "host", "auto")
    except EdgekitError as exc:
        # past the reader the network is in memory: these messages name a layer, not a file
        # (`snn convert` has one input file), so the oracle does not ask them to name it
        exc.after_reader = True  # type: ignore[attr-defined]
        raise
