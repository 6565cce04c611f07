"""A split file as tensors, what train and evaluate work on: read from Parquet a row group at a time,
only the rows asked for (a rank's shard), straight into the dtype and scaling the model takes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from softmax_regression.data.tables import moments, read_matrix, row_blocks
from softmax_regression.files import read_json
from softmax_regression.parallel.ranks import ONE, Ranks
from softmax_regression.training.model import feature_scaling


@dataclass(frozen=True)
class Dataset:
    X: Tensor  # (n, d) features: raw, float64, unless read with a dtype and a scaling
    y: Tensor  # (n,) class indices
    features: list[str]
    classes: list[str]
    label: str = "label"  # the name of y's column


def read_dataset(table: str | Path, classes_file: str | Path, features: list[str] | None = None,
                 rows: tuple[int, int] | None = None, dtype: torch.dtype = torch.float64,
                 scaling: tuple[Tensor, Tensor] | None = None) -> Dataset:
    """A split file as tensors. `features` picks and orders the columns (a model's), default all;
    `rows` (start, stop) reads only those rows (a rank's shard), default all.

    X is in `dtype`, and with `scaling` (mean, scale) it is (x − mean) / scale: each block is scaled in
    float64 as it is read, the same bits as `model.standardize`, so that no float64 copy of X is ever whole.
    """
    meta = read_json(classes_file)
    label, classes = meta["label"], sorted(meta["classes"], key=meta["classes"].get)
    target = torch.empty((), dtype=dtype).numpy().dtype
    features, X, y = read_matrix(table, label, features, rows, dtype=target,
                                 scaling=None if scaling is None else (scaling[0].numpy(), scaling[1].numpy()))
    return Dataset(torch.from_numpy(X), torch.from_numpy(y), features, classes, label)


def read_scaling(table: str | Path, classes_file: str | Path, rows: tuple[int, int] | None = None,
                 ranks: Ranks = ONE) -> tuple[Tensor, Tensor]:
    """`model.feature_scaling` of a split file's rows (this rank's shard, on every rank), in one pass that
    holds a block at a time: the same bits as `model.scaling_of` of the rows in memory."""
    label = read_json(classes_file)["label"]
    return feature_scaling(moments(X for X, _ in row_blocks(table, label, rows=rows)), ranks)
