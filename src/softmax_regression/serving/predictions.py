"""A fitted model applied to a table: the one code path behind `make predict` and the served MLflow model.

Columns are matched by name, in any order; other columns are ignored. The answer is a table: `predicted`
(the class name) and `p(<class>)` for every class, in the order of classes.json.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from softmax_regression.errors import DataError, missing_features
from softmax_regression.training.model import Model, predict_proba


def prediction_table(model: Model, table: pd.DataFrame) -> pd.DataFrame:
    """`predicted` and one `p(<class>)` column per class, a row per row of `table` (raw features by name).

    A missing feature column, or a value that is missing or not a number, is a DataError naming the column
    and the row (the table's first row being row 1).
    """
    problem = missing_features(model.features, [str(c) for c in table.columns])
    if problem:
        raise DataError(problem)
    X = np.empty((len(table), len(model.features)))  # (n, d) float64, in the model's column order
    for j, name in enumerate(model.features):
        column = table[name]
        values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        bad = np.flatnonzero(~np.isfinite(values))
        if len(bad):
            value = column.iloc[bad[0]]
            what = "a missing value" if pd.isna(value) else f"a value {value!r} that is not a finite number"
            more = f" (and {len(bad) - 1} more rows)" if len(bad) > 1 else ""
            raise DataError(f"column {name!r} has {what} in row {bad[0] + 1}{more} (rows count from 1)")
        X[:, j] = values
    P = predict_proba(model, torch.from_numpy(X)).double().numpy()  # (n, k)
    out = pd.DataFrame(P, columns=[f"p({name})" for name in model.classes], index=table.index)
    out.insert(0, "predicted", np.asarray(model.classes, dtype=object)[P.argmax(axis=1)])
    return out
