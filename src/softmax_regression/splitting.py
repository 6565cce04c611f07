"""Label encoding and the stratified, seeded split into train, validation and test rows. numpy and pandas
only."""

from __future__ import annotations

import numpy as np
import pandas as pd

from softmax_regression.errors import DataError


def encode_labels(labels: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Map class names to contiguous integers 0..k-1, in sorted order of the names."""
    classes = sorted(labels.unique().tolist())
    index = {name: i for i, name in enumerate(classes)}
    return labels.map(index).to_numpy(dtype=np.int64), classes


def stratified_split(y: np.ndarray, classes: list[str], test_size: float, seed: int, val_size: float = 0.0
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row indices (train, validation, test), disjoint and sorted: round(test_size · n_c) rows of each class c
    for test and round(val_size · n_c) for validation, the rest for training.

    Each class keeps at least one row in train and in test, and in validation when val_size > 0. The test
    rows are drawn first, so they do not depend on val_size. Same y, sizes and seed give the same split.
    """
    rng = np.random.default_rng(seed)
    parts: tuple[list[np.ndarray], ...] = ([], [], [])
    needed = 3 if val_size > 0 else 2
    for c, name in enumerate(classes):
        rows = np.flatnonzero(y == c)
        if len(rows) < needed:
            sides = "train, validation and test" if val_size > 0 else "train and test"
            raise DataError(f"class {name!r} has {len(rows)} row{'s' * (len(rows) != 1)}; the stratified split "
                            f"needs at least {needed} per class (one each for {sides})")
        n_test = min(max(round(test_size * len(rows)), 1), len(rows) - needed + 1)
        n_val = min(max(round(val_size * len(rows)), 1), len(rows) - n_test - 1) if val_size > 0 else 0
        rows = rng.permutation(rows)
        parts[2].append(rows[:n_test])
        parts[1].append(rows[n_test:n_test + n_val])
        parts[0].append(rows[n_test + n_val:])
    train, val, test = (np.sort(np.concatenate(part)) for part in parts)
    return train, val, test
