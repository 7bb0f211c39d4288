"""Checks on a NIR (HDF5) file before the nir package reads it.

`nir.read` loads every dataset of the file into memory as declared, follows HDF5 links, and
builds node objects from whatever types it finds. A file from a stranger can declare a dataset
of terabytes in a few hundred bytes (chunked, compressed, never written), link to another file
by path (external links, external raw-data storage), link into its own parents, or nest groups
thousands deep. Everything here is read from HDF5 metadata only: no dataset is loaded.
"""

from __future__ import annotations

from pathlib import Path

from edgekit.errors import EdgekitError

MAX_NIR_BYTES = 64 << 20  # the same file limit as .tflite/.ekir (pipeline.MAX_MODEL_BYTES)
MAX_DEPTH = 16  # a NIR file nests /node/nodes/<name>/<param>, and one level per subgraph
MAX_OBJECTS = 65_536  # groups, datasets and attributes together
MAX_DATASET_ELEMENTS = 1 << 24  # 128 MB as float64: far above any SNN a device runs
MAX_TOTAL_ELEMENTS = 1 << 25
MAX_ITEM_BYTES = 1 << 16  # one element (fixed-length strings included)
NUMERIC_KINDS = "biufSO"  # bool, ints, floats, byte strings and variable-length strings


def check_nir_file(path: str | Path) -> None:
    """Raise one EdgekitError naming `path` unless the file is an HDF5 file whose structure
    nir.read can load within the limits above."""
    p = Path(path)
    where = str(p)
    try:
        size = p.stat().st_size
    except OSError as exc:
        raise EdgekitError(f"cannot read the NIR file ({exc.strerror})", where) from None
    if size > MAX_NIR_BYTES:
        raise EdgekitError(f"NIR file is larger than {MAX_NIR_BYTES >> 20} MB", where)
    import h5py

    try:
        f = h5py.File(p, "r")
    except Exception as exc:  # h5py raises OSError, ValueError and others on a bad file
        raise EdgekitError(
            f"not a readable NIR (HDF5) file ({type(exc).__name__}: {exc})", where
        ) from None
    with f:
        try:
            _walk(f, where, 0, [0, 0])
        except EdgekitError:
            raise
        except Exception as exc:  # HDF5 metadata that h5py itself cannot decode
            raise EdgekitError(
                f"corrupt NIR (HDF5) structure ({type(exc).__name__}: {exc})", where
            ) from None


def _walk(group: object, where: str, depth: int, counts: list[int]) -> None:
    """counts = [objects seen, dataset elements declared]."""
    import h5py

    assert isinstance(group, h5py.Group)
    if depth > MAX_DEPTH:
        raise EdgekitError(f"NIR file nests groups deeper than {MAX_DEPTH} levels", where)
    counts[0] += 1 + len(group.attrs)
    for key in group:
        counts[0] += 1
        if counts[0] > MAX_OBJECTS:
            raise EdgekitError(f"NIR file has more than {MAX_OBJECTS} HDF5 objects", where)
        link = group.get(key, getlink=True)
        at = f"{group.name.rstrip('/')}/{key}"
        if not isinstance(link, h5py.HardLink):
            # soft links can form cycles; external links name other files by path
            raise EdgekitError(
                f"NIR file links '{at}' elsewhere ({type(link).__name__}); a NIR file keeps "
                "all its data in itself", where,
            )  # fmt: skip
        obj = group[key]
        if isinstance(obj, h5py.Group):
            _walk(obj, where, depth + 1, counts)
        elif isinstance(obj, h5py.Dataset):
            _check_dataset(obj, at, where, counts)
        else:
            raise EdgekitError(f"NIR file holds an unexpected HDF5 object at '{at}'", where)


def _check_dataset(ds: object, at: str, where: str, counts: list[int]) -> None:
    import h5py

    assert isinstance(ds, h5py.Dataset)
    counts[0] += len(ds.attrs)
    if ds.external or ds.is_virtual:
        raise EdgekitError(
            f"NIR dataset '{at}' keeps its data in another file; a NIR file keeps all its data "
            "in itself", where,
        )  # fmt: skip
    shape = ds.shape
    if shape is None:  # an HDF5 null dataspace
        raise EdgekitError(f"NIR dataset '{at}' has no data", where)
    elements = 1
    for d in shape:
        elements *= int(d)
    if elements > MAX_DATASET_ELEMENTS:
        raise EdgekitError(
            f"NIR dataset '{at}' declares {elements:,} elements (shape {tuple(shape)}); the "
            f"limit is {MAX_DATASET_ELEMENTS:,}", where,
        )  # fmt: skip
    counts[1] += elements
    if counts[1] > MAX_TOTAL_ELEMENTS:
        raise EdgekitError(
            f"NIR file declares more than {MAX_TOTAL_ELEMENTS:,} elements in all", where
        )
    dtype = ds.dtype
    if dtype.kind not in NUMERIC_KINDS or dtype.fields is not None:
        raise EdgekitError(f"NIR dataset '{at}' has an unsupported type {dtype}", where)
    if dtype.itemsize > MAX_ITEM_BYTES:
        raise EdgekitError(f"NIR dataset '{at}' has {dtype.itemsize}-byte elements", where)


# --- reading in a child process ------------------------------------------------------------------

READ_SECONDS = 10.0  # EDGEKIT_NIR_READ_SECONDS overrides (the fuzzer uses 3)
READ_MEMORY = 2 << 30
_CHILD = r"""
import pickle, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (int(sys.argv[2]), int(sys.argv[2])))
from edgekit.errors import EdgekitError
from edgekit.snn.nir_check import check_nir_file
path = sys.argv[1]
try:
    check_nir_file(path)
    import h5py
    from nir.serialization import hdf2dict
    with h5py.File(path, "r") as f:
        out = ("ok", hdf2dict(f["node"]))
except EdgekitError as exc:
    out = ("error", exc.what)
except Exception as exc:  # h5py raises many types for a corrupt file
    out = ("error", f"could not read the NIR file: {type(exc).__name__}: {exc}")
sys.stdout.buffer.write(pickle.dumps(out))
"""


def read_nir_dict(path: str | Path) -> dict:
    """The file's node tree as nir.read sees it, read in a child process.

    libhdf5 parses the file in C: a corrupted one can make it loop or crash where no Python
    timer or exception reaches (fuzzing found a bit flip that hangs a dataset read). The child
    checks the file (check_nir_file), reads it with a time and address-space limit, and sends
    back plain arrays and strings; a hang, crash or blow-up there is one EdgekitError here.
    """
    import os
    import pickle
    import subprocess
    import sys

    where = str(path)
    seconds = float(os.environ.get("EDGEKIT_NIR_READ_SECONDS", READ_SECONDS))
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _CHILD, where, str(READ_MEMORY)],
            capture_output=True, timeout=seconds,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        raise EdgekitError(
            f"reading the NIR (HDF5) file did not finish in {seconds:g} s; it is corrupt",
            where,
        ) from None
    if proc.returncode != 0 or not proc.stdout:
        raise EdgekitError(
            f"the HDF5 library failed on this NIR file (exit code {proc.returncode}); it is "
            "corrupt", where,
        )  # fmt: skip
    # our own child's output: plain containers, numpy arrays and strings it built
    status, value = pickle.loads(proc.stdout)  # noqa: S301
    if status != "ok":
        raise EdgekitError(str(value), where)
    if not isinstance(value, dict):
        raise EdgekitError("the NIR file has no graph", where)
    return value
