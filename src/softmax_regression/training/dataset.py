"""A split file as tensors, what train and evaluate work on: read from Parquet a row group at a time,
only the rows asked for (a rank's shard)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from softmax_regression.data.tables import read_matrix
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
