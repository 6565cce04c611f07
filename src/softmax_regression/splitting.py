"""Label encoding and the stratified, seeded split. numpy and pandas only."""

from __future__ import annotations

import numpy as np
import pandas as pd

from softmax_regression.errors import DataError


def encode_labels(labels: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Map class names to contiguous integers 0..k-1, in sorted order of the names."""
    classes = sorted(labels.unique().tolist())
    index = {name: i for i, name in enumerate(classes)}
    return labels.map(index).to_numpy(dtype=np.int64), classes


def stratified_split(y: np.ndarray, classes: list[str], test_size: float, seed: int
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (train, test), holding out round(test_size · n_c) rows of each class c.

    Each class keeps at least one row on each side. Same y, test_size and seed give the same split.
    """
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c, name in enumerate(classes):
        rows = np.flatnonzero(y == c)
        if len(rows) < 2:
            raise DataError(f"class {name!r} has {len(rows)} row; the stratified split needs at least 2 "
                            f"per class (one to train on, one to test on)")
        n_test = min(max(round(test_size * len(rows)), 1), len(rows) - 1)
        rows = rng.permutation(rows)
        test.append(rows[:n_test])
        train.append(rows[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))
