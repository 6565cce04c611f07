"""A split file as tensors: what train and evaluate work on."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from softmax_regression.data import read_parquet
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
    df = read_parquet(table, rows)
    features = features if features is not None else [c for c in df.columns if c != label]
    missing = [c for c in features if c not in df.columns]
    if missing:
        raise DataError(f"{table}: feature column {missing[0]!r} of the model is missing")
    X = torch.tensor(df[features].to_numpy(dtype="float64"))
    y = torch.tensor(df[label].to_numpy(dtype="int64"))
    return Dataset(X, y, features, classes, label)
