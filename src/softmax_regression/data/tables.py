"""Parquet tables on disk, in row groups of at most ROW_GROUP rows that a rank can read alone, read back
as numpy arrays a row group at a time."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from softmax_regression.errors import DataError

ROW_GROUP = 65_536  # rows per Parquet row group at most: a rank reads the groups its shard overlaps, not the file


def parquet_rows(path: str | Path) -> int:
    """The number of rows, from the file's footer."""
    return pq.read_metadata(path).num_rows


def row_blocks(path: str | Path, label: str, features: list[str] | None = None, rows: tuple[int, int] | None = None,
               size: int = ROW_GROUP) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """A split file's rows [start, stop) (default: all) in blocks of `size` rows from the start (the last one
    shorter): X (r, d) float64 from the feature columns (default: every column but the label) and y (r,) int64.

    Only the row groups that hold the rows are read, one at a time, and moved into the blocks a tile at a
    time: the peak is a row group and a block."""
    with pq.ParquetFile(path) as f:
        features = columns_of(f, path, label, features)
        start, stop = (0, f.metadata.num_rows) if rows is None else rows
        tiles, pending = _tiles(f, features, label, start, stop), None
        for lo in range(start, stop, size):
            X, y = np.empty((min(size, stop - lo), len(features))), np.empty(min(size, stop - lo), dtype=np.int64)
            filled = 0
            while filled < len(y):
                columns, labels = pending or next(tiles)
                take = min(len(y) - filled, len(labels))
                X[filled:filled + take], y[filled:filled + take] = columns[:, :take].T, labels[:take]
                pending = (columns[:, take:], labels[take:]) if take < len(labels) else None
                filled += take
            yield X, y


TILE = 4_096  # rows at a time from a row group into a block: the transposing copy of a tile stays in cache


def _tiles(f: pq.ParquetFile, features: list[str], label: str, start: int, stop: int
           ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Rows [start, stop) as the features (d, t) and the labels (t,), t ≤ TILE rows at a time, reading one
    row group at a time."""
    offset = 0  # the group's first row in the file
    for g in range(f.num_row_groups):
        count = f.metadata.row_group(g).num_rows
        lo, hi = max(start, offset), min(stop, offset + count)
        if lo < hi:
            group = f.read_row_group(g, columns=[*features, label]).slice(lo - offset, hi - lo)
            for at in range(0, hi - lo, TILE):
                part = group.slice(at, TILE)
                yield np.stack([part.column(name).to_numpy() for name in features]), part.column(label).to_numpy()
        offset += count


def columns_of(f: pq.ParquetFile, path: str | Path, label: str, features: list[str] | None) -> list[str]:
    """The feature columns asked for (default: every column but the label), all of them in the file."""
    names = f.schema_arrow.names
    features = [c for c in names if c != label] if features is None else features
    missing = [c for c in [*features, label] if c not in names]
    if missing:
        raise DataError(f"{path}: column {missing[0]!r} is missing; columns are: {', '.join(names)}")
    return features


def read_matrix(path: str | Path, label: str, features: list[str] | None = None, rows: tuple[int, int] | None = None,
                dtype: type = np.float64, scaling: tuple[np.ndarray, np.ndarray] | None = None
                ) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(features, X, y) of a split file: X (m, d) in `dtype` from the feature columns (default: every column but
    the label), and y (m,) int64, for rows [start, stop) (default: all). With `scaling` (mean, scale), X is
    (x − mean) / scale, computed in float64 a block at a time. The peak is X plus a row group and a block."""
    with pq.ParquetFile(path) as f:
        features = columns_of(f, path, label, features)
        start, stop = (0, f.metadata.num_rows) if rows is None else rows
    X, y = np.empty((stop - start, len(features)), dtype=dtype), np.empty(stop - start, dtype=np.int64)
    at = 0
    for Xb, yb in row_blocks(path, label, features, (start, stop)):
        if scaling is not None:  # in place: the block is a copy of its own
            np.subtract(Xb, scaling[0], out=Xb)
            np.divide(Xb, scaling[1], out=Xb)
        with np.errstate(over="ignore"):  # too large for float32 is inf, which the trainer names
            X[at:at + len(yb)] = Xb
        y[at:at + len(yb)] = yb
        at += len(yb)
    return features, X, y


@dataclass(frozen=True)
class Moments:
    """Per feature: the rows counted, the largest |x| (`size`), and the mean and the sum of squared deviations
    of x / size. On that scale no feature overflows, whatever its magnitude (1e300 included)."""

    n: int
    size: np.ndarray  # (d,)
    mean: np.ndarray  # (d,)
    m2: np.ndarray  # (d,)

    @staticmethod
    def of(X: np.ndarray) -> Moments:
        """A block's, X (r, d), computed in float64 in two passes (the mean, then the deviations from it)."""
        if not len(X):
            return Moments(0, np.zeros(X.shape[1]), np.zeros(X.shape[1]), np.zeros(X.shape[1]))
        X = X.astype(np.float64, copy=False)
        size = np.maximum(X.max(axis=0), -X.min(axis=0))  # max |x|, with no |X| the size of X
        V = X / np.where(size > 0, size, 1.0)  # the one copy of the block: the rest is in place
        mean = V.mean(axis=0)
        return Moments(len(X), size, mean, np.square(np.subtract(V, mean, out=V), out=V).sum(axis=0))

    def on(self, size: np.ndarray) -> Moments:
        """The same moments on a scale `size` at least as large (Chan et al.'s, rescaled)."""
        ratio = np.divide(self.size, size, out=np.zeros_like(size), where=size > 0)
        return Moments(self.n, size, self.mean * ratio, self.m2 * ratio * ratio)

    def __add__(self, other: Moments) -> Moments:
        """The moments of both sets of rows together (Chan, Golub and LeVeque's pairwise update)."""
        size = np.maximum(self.size, other.size)
        a, b = self.on(size), other.on(size)
        n = a.n + b.n
        if n == 0:
            return a
        delta = b.mean - a.mean
        return Moments(n, size, a.mean + delta * (b.n / n), a.m2 + b.m2 + delta * delta * (a.n * b.n / n))


def moments(blocks: Iterable[np.ndarray]) -> Moments:
    """The moments of the blocks' rows together, added in block order (the same bits for the same blocks)."""
    total = None
    for X in blocks:
        total = Moments.of(X) if total is None else total + Moments.of(X)
    if total is None:
        raise DataError("no rows to compute the features' scaling on")
    return total
