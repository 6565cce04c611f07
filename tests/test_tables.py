"""Parquet tables read back as numpy arrays: any rows, across row groups, without reading the whole file, in
blocks that do not depend on the file's row groups; the moments of blocks added up."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from softmax_regression.data import tables
from softmax_regression.data.tables import Moments, moments, parquet_rows, read_matrix, row_blocks
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


@pytest.mark.parametrize("tile", [3, 4_096])  # tiles across the row groups' and the blocks' edges, and whole groups
def test_row_blocks_start_at_the_first_row_asked_for_whatever_the_row_groups(tmp_path, monkeypatch, tile):
    monkeypatch.setattr(tables, "TILE", tile)
    table = pd.DataFrame({"a": np.arange(95.0), "b": -np.arange(95.0), "label": np.arange(95) % 3})
    path = write_table(table, tmp_path / "t.parquet", row_group=10)
    blocks = list(row_blocks(path, "label", rows=(3, 95), size=7))
    assert [len(y) for _, y in blocks] == [7] * 13 + [1]
    np.testing.assert_array_equal(np.concatenate([X for X, _ in blocks]), table[["a", "b"]].to_numpy()[3:])
    np.testing.assert_array_equal(np.concatenate([y for _, y in blocks]), np.arange(3, 95) % 3)
    assert all(X.flags.c_contiguous and X.dtype == np.float64 and y.dtype == np.int64 for X, y in blocks)


def test_read_matrix_scales_in_float64_then_stores_in_the_dtype(tmp_path):
    table = pd.DataFrame({"a": np.arange(25.0) * 1e10 + 3e10, "label": np.arange(25) % 2})
    path = write_table(table, tmp_path / "t.parquet", row_group=10)
    _, X, _ = read_matrix(path, "label", dtype=np.float32, scaling=(np.array([3e10]), np.array([1e10])))
    assert X.dtype == np.float32
    np.testing.assert_array_equal(X[:, 0], np.arange(25.0, dtype=np.float32))


def test_moments_of_blocks_are_those_of_all_rows_at_any_magnitude():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(1000, 4)) * np.array([1.0, 1e-200, 1e150, 1e300]) + np.array([5.0, 0.0, 1e151, 0.0])
    total = moments(X[lo:lo + 97] for lo in range(0, 1000, 97))  # blocks of unequal scales
    size = abs(X).max(axis=0)
    np.testing.assert_array_equal(total.size, size)
    np.testing.assert_allclose(total.mean, (X / size).mean(axis=0), rtol=0, atol=1e-15)  # on the features' scale
    np.testing.assert_allclose(np.sqrt(total.m2 / total.n) * total.size, (X / size).std(axis=0) * size, rtol=1e-12)
    assert total.n == 1000 and np.isfinite(total.m2).all()
    empty = Moments.of(np.empty((0, 4)))
    assert (empty + total).n == 1000 and np.array_equal((empty + total).mean, total.mean)
    with pytest.raises(DataError, match="no rows"):
        moments([])
