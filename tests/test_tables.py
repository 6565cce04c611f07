"""Parquet tables read back as numpy arrays: any rows, across row groups, without reading the whole file."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from softmax_regression.data.tables import parquet_rows, read_matrix
from softmax_regression.errors import DataError

from conftest import write_table


@pytest.mark.parametrize("rows", [None, (0, 5), (7, 33), (20, 30), (90, 95), (40, 40), (0, 95)])
def test_read_matrix_reads_any_rows_across_row_groups(tmp_path, rows):
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"b": rng.normal(size=95), "label": np.arange(95) % 3, "a": np.arange(95.0),
                          "c": rng.integers(0, 9, 95)})
    path = write_table(table, tmp_path / "t.parquet", row_group=10)  # ten groups of 10 rows, the last of 5
    assert pq.ParquetFile(path).num_row_groups == 10 and parquet_rows(path) == 95
    start, stop = rows or (0, 95)
    features, X, y = read_matrix(path, "label", rows=rows)
    assert features == ["b", "a", "c"] and X.dtype == np.float64 and y.dtype == np.int64
    np.testing.assert_array_equal(X, table[["b", "a", "c"]].to_numpy(dtype=float)[start:stop])
    np.testing.assert_array_equal(y, table["label"].to_numpy()[start:stop])


def test_read_matrix_picks_and_orders_the_columns_asked_for(tmp_path):
    table = pd.DataFrame({"b": [1.0, 2.0], "label": [0, 1], "a": [3.0, 4.0], "c": [5, 6]})
    path = write_table(table, tmp_path / "t.parquet")
    features, X, _ = read_matrix(path, "label", ["c", "a"])
    assert features == ["c", "a"] and X.tolist() == [[5.0, 3.0], [6.0, 4.0]]
    with pytest.raises(DataError, match=r"t\.parquet: column 'z' is missing; columns are: b, label, a, c"):
        read_matrix(path, "label", ["a", "z"])
