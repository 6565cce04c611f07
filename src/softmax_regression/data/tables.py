"""Parquet tables on disk, in row groups of ROW_GROUP rows that a rank can read alone, read back as numpy
arrays a row group at a time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from softmax_regression.errors import DataError

ROW_GROUP = 65_536  # rows per Parquet row group: a rank reads the groups its shard overlaps, not the file


def parquet_rows(path: str | Path) -> int:
    """The number of rows, from the file's footer."""
    return pq.read_metadata(path).num_rows


def read_matrix(path: str | Path, label: str, features: list[str] | None = None,
                rows: tuple[int, int] | None = None) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(features, X, y) of a split file: X (m, d) float64 from the feature columns (default: every column
    but the label), y (m,) int64, for rows [start, stop) (default: all).

    Filled one row group at a time, reading only the groups that hold the rows: the peak is X plus one
    row group, not the table twice over (Arrow's and pandas' copies).
    """
    with pq.ParquetFile(path) as f:
        names = f.schema_arrow.names
        features = [c for c in names if c != label] if features is None else features
        missing = [c for c in [*features, label] if c not in names]
        if missing:
            raise DataError(f"{path}: column {missing[0]!r} is missing; columns are: {', '.join(names)}")
        start, stop = (0, f.metadata.num_rows) if rows is None else rows
        X, y = np.empty((stop - start, len(features))), np.empty(stop - start, dtype=np.int64)
        largest = max((f.metadata.row_group(g).num_rows for g in range(f.num_row_groups)), default=0)
        buffer = np.empty((len(features), min(largest, stop - start)))  # one column per row, reused
        offset = 0  # the group's first row in the file
        for g in range(f.num_row_groups):
            size = f.metadata.row_group(g).num_rows
            lo, hi = max(start, offset), min(stop, offset + size)
            if lo < hi:
                group = f.read_row_group(g, columns=[*features, label]).slice(lo - offset, hi - lo)
                columns = buffer[:, :hi - lo]  # filled a column at a time: contiguous writes
                for j, name in enumerate(features):
                    columns[j] = group.column(name).to_numpy()
                X[lo - start:hi - start] = columns.T  # one transposing copy, twice as fast as strided writes
                y[lo - start:hi - start] = group.column(label).to_numpy()
            offset += size
    return features, X, y
