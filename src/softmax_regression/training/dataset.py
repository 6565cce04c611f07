"""A split file as tensors, what train and evaluate work on: read from Parquet a row group at a time,
only the rows asked for (a rank's shard)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch
from torch import Tensor

from softmax_regression.errors import DataError
from softmax_regression.files import read_json


@dataclass(frozen=True)
class Dataset:
    X: Tensor  # (n, d) raw features, float64
    y: Tensor  # (n,) class indices
    features: list[str]
    classes: list[str]
    label: str = "label"  # the name of y's column


def read_dataset(table: str | Path, classes_file: str | Path, features: list[str] | None = None,
                 rows: tuple[int, int] | None = None) -> Dataset:
    """A split file as tensors. `features` picks and orders the columns (a model's), default all;
    `rows` (start, stop) reads only those rows (a rank's shard), default all."""
    meta = read_json(classes_file)
    label, classes = meta["label"], sorted(meta["classes"], key=meta["classes"].get)
    features, X, y = read_matrix(table, label, features, rows)
    return Dataset(torch.from_numpy(X), torch.from_numpy(y), features, classes, label)


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
