"""Parquet tables on disk, in row groups of ROW_GROUP rows that a rank can read alone, read back as numpy
arrays a row group at a time."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from softmax_regression.errors import DataError

ROW_GROUP = 65_536  # rows per Parquet row group: a rank reads the groups its shard overlaps, not the file


def parquet_rows(path: str | Path) -> int:
    """The number of rows, from the file's footer."""
    return pq.read_metadata(path).num_rows


def row_blocks(path: str | Path, label: str, features: list[str] | None = None, rows: tuple[int, int] | None = None,
               size: int = ROW_GROUP) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """A split file's rows [start, stop) (default: all) in blocks of `size` rows from the start (the last one
    shorter): X (r, d) float64 from the feature columns (default: every column but the label) and y (r,) int64.

    Only the row groups that hold the rows are read, one at a time: the peak is a row group and a block."""
    with pq.ParquetFile(path) as f:
        features = columns_of(f, path, label, features)
        start, stop = (0, f.metadata.num_rows) if rows is None else rows
        pending: list[tuple[np.ndarray, np.ndarray]] = []
        offset = 0  # the group's first row in the file
        for g in range(f.num_row_groups):
            count = f.metadata.row_group(g).num_rows
            lo, hi = max(start, offset), min(stop, offset + count)
            offset += count
            if lo >= hi:
                continue
            group = f.read_row_group(g, columns=[*features, label]).slice(lo - (offset - count), hi - lo)
            columns = np.empty((len(features), hi - lo))  # filled a column at a time: contiguous writes
            for j, name in enumerate(features):
                columns[j] = group.column(name).to_numpy()
            pending.append((columns.T.copy(), group.column(label).to_numpy().astype(np.int64)))  # one transposing copy
            while sum(len(y) for _, y in pending) >= size:
                block, pending = _take(pending, size)
                yield block
        if pending:
            yield _take(pending, sum(len(y) for _, y in pending))[0]


def _take(pending: list[tuple[np.ndarray, np.ndarray]], size: int) -> tuple[tuple[np.ndarray, np.ndarray], list]:
    """The first `size` rows of the pending pieces, and the pieces left."""
    if len(pending[0][1]) == size:
        return pending[0], pending[1:]
    X, y = np.concatenate([X for X, _ in pending]), np.concatenate([y for _, y in pending])
    return (X[:size], y[:size]), [(X[size:], y[size:])] if len(y) > size else []


def columns_of(f: pq.ParquetFile, path: str | Path, label: str, features: list[str] | None) -> list[str]:
    """The feature columns asked for (default: every column but the label), all of them in the file."""
    names = f.schema_arrow.names
    features = [c for c in names if c != label] if features is None else features
    missing = [c for c in [*features, label] if c not in names]
    if missing:
        raise DataError(f"{path}: column {missing[0]!r} is missing; columns are: {', '.join(names)}")
    return features


def read_matrix(path: str | Path, label: str, features: list[str] | None = None, rows: tuple[int, int] | None = None,
                dtype: type = np.float64, transform: Callable[[np.ndarray], np.ndarray] | None = None
                ) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(features, X, y) of a split file: X (m, d) in `dtype` from the feature columns (default: every column but
    the label), each block `transform`ed from float64 first if given (a standardisation), and y (m,) int64, for
    rows [start, stop) (default: all). The peak is X plus a row group and a block."""
    with pq.ParquetFile(path) as f:
        features = columns_of(f, path, label, features)
        start, stop = (0, f.metadata.num_rows) if rows is None else rows
    X, y = np.empty((stop - start, len(features)), dtype=dtype), np.empty(stop - start, dtype=np.int64)
    at = 0
    for Xb, yb in row_blocks(path, label, features, (start, stop)):
        X[at:at + len(yb)] = transform(Xb) if transform else Xb
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
        X = X.astype(np.float64, copy=False)
        size = np.abs(X).max(axis=0) if len(X) else np.zeros(X.shape[1])
        V = X / np.where(size > 0, size, 1.0)
        mean = V.mean(axis=0) if len(X) else np.zeros(X.shape[1])
        return Moments(len(X), size, mean, np.square(V - mean).sum(axis=0))

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
