"""Calibration data: .npz files, folders of .npy/.npz files, or Python iterables -> float batches.

Arrays are in the layout of the source model: NCHW for an ONNX image input. They are transposed
to the IR's NHWC here, using the permutation the frontend recorded in `graph.meta["layout"]`.
Arrays already in the IR shape are accepted as they are. Each array is one sample or a batch.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.ir.graph import Graph

Batch = list[np.ndarray]  # one float32 array (N, *IR shape) per graph input
Source = str | Path | Iterable[Any]


def _as_batch(arr: np.ndarray, ir_shape: tuple[int, ...], perm: Sequence[int] | None,
              where: str) -> np.ndarray:
    """(N, *IR shape) float32 from one sample or a batch in source or IR layout."""
    a = np.asarray(arr)
    if a.dtype.kind not in "fiub":
        raise EdgekitError(f"calibration array has dtype {a.dtype}, expected numbers", where)
    shapes: list[tuple[tuple[int, ...], Sequence[int] | None]] = []
    if perm is not None and list(perm) != list(range(len(perm))):
        src = [0] * len(ir_shape)
        for i, p in enumerate(perm):
            src[p] = ir_shape[i]
        shapes.append((tuple(src), perm))
    shapes.append((tuple(ir_shape), None))
    for shape, p in shapes:
        for batched in _batch_forms(a, shape):
            if p is not None:
                batched = batched.transpose(0, *(q + 1 for q in p))
            return np.ascontiguousarray(batched, dtype=np.float32)
    raise EdgekitError(
        f"calibration array of shape {list(a.shape)} fits neither one input "
        f"{list(shapes[0][0])} nor a batch of them",
        where,
        "arrays are [N, *input_shape] or one input, in the source model's layout",
    )


def _batch_forms(a: np.ndarray, shape: tuple[int, ...]) -> list[np.ndarray]:
    if a.shape == shape:
        return [a[None]]
    if a.shape[1:] == shape:
        return [a]
    # a model shape with a leading batch of 1: one sample without it, or samples stacked on it
    if shape and shape[0] == 1:
        if a.shape == shape[1:]:
            return [a.reshape((1, *shape))]
        if a.ndim == len(shape) and a.shape[1:] == shape[1:]:
            return [a.reshape((a.shape[0], *shape))]
    return []


class Calibration:
    """An iterable of batches, each at most `chunk` samples, with the sample count when known."""

    def __init__(self, graph: Graph, source: Source, chunk: int = 32,
                 limit: int | None = None) -> None:
        self.graph = graph
        self.chunk = max(1, chunk)
        self.limit = limit
        self._source = source
        self.where = str(source) if isinstance(source, str | Path) else "<calibration data>"
        layout = graph.meta.get("layout", {}).get("inputs", {})
        self._perms = [layout.get(n) for n in graph.inputs]
        self._cached: list[Batch] | None = None
        self._shapes = [graph.tensor(n).shape for n in graph.inputs]
        self.total = self._count()

    def _items(self) -> Iterator[Any]:
        src = self._source
        if isinstance(src, str | Path):
            p = Path(src)
            if p.is_dir():
                files = sorted(f for f in p.iterdir() if f.suffix in (".npy", ".npz"))
                if not files:
                    raise EdgekitError("folder holds no .npy or .npz files", str(p))
                for f in files:
                    yield _load_file(f, self.graph)
            elif p.is_file():
                yield _load_file(p, self.graph)
            else:
                raise EdgekitError("calibration data not found", str(p))
        else:
            yield from src

    def _count(self) -> int | None:
        """Samples in a single file source (read now and kept); unknown for streams."""
        if isinstance(self._source, str | Path) and Path(self._source).is_file():
            self._cached = list(self._samples())
            n = sum(b[0].shape[0] for b in self._cached)
            return n if self.limit is None else min(n, self.limit)
        return None

    def _samples(self) -> Iterator[Batch]:
        """Every item as a batch, in IR layout."""
        n_in = len(self.graph.inputs)
        for item in self._items():
            arrays: list[Any]
            if isinstance(item, dict):
                missing = [n for n in self.graph.inputs if n not in item]
                arrays = list(item.values()) if missing else [item[n] for n in self.graph.inputs]
            elif isinstance(item, list | tuple):
                arrays = list(item)
            else:
                arrays = [item]
            if len(arrays) != n_in:
                raise EdgekitError(
                    f"a calibration item holds {len(arrays)} arrays, the model has {n_in} inputs",
                    self.where,
                )
            batch = [_as_batch(a, s, p, self.where)
                     for a, s, p in zip(arrays, self._shapes, self._perms, strict=True)]
            if len({b.shape[0] for b in batch}) != 1:
                raise EdgekitError("inputs of one calibration item differ in sample count",
                                   self.where)
            yield batch

    def __iter__(self) -> Iterator[Batch]:
        """Chunks of exactly `chunk` samples (the last may be short), whatever the item sizes,
        so that results do not depend on how the data was split into files."""
        seen = 0
        pending: list[Batch] = []
        held = 0
        for batch in self._cached if self._cached is not None else self._samples():
            if self.limit is not None:
                batch = [b[: max(0, self.limit - seen - held)] for b in batch]
            pending.append(batch)
            held += batch[0].shape[0]
            while held >= self.chunk:
                merged = [np.concatenate(parts) for parts in zip(*pending, strict=True)]
                yield [m[: self.chunk] for m in merged]
                rest = [m[self.chunk :] for m in merged]
                seen += self.chunk
                held -= self.chunk
                pending = [rest] if held else []
            if self.limit is not None and seen + held >= self.limit:
                break
        if held:
            yield [np.concatenate(parts) for parts in zip(*pending, strict=True)]
            seen += held
        if seen == 0:
            raise EdgekitError("the calibration data holds no samples", self.where)


def _load_file(path: Path, graph: Graph) -> Any:
    try:
        loaded = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise EdgekitError(f"cannot read calibration data: {exc}", str(path),
                           "use .npz or .npy files") from None
    if hasattr(loaded, "files"):
        with loaded:
            return {k: loaded[k] for k in loaded.files} if any(
                k in graph.inputs for k in loaded.files
            ) else [loaded[k] for k in loaded.files]
    return loaded
