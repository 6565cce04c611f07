"""The split stage's draw (`split_parquet`): stratified, disjoint, seeded, with exact counts per class, a row
group at a time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from softmax_regression.data.split import split_parquet
from softmax_regression.errors import DataError

from conftest import write_table

NAMES = ("train", "val", "test")


def split(tmp_path: Path, y: np.ndarray, test_size: float, seed: int, val_size: float = 0.0,
          group_rows: int = 65_536, names: list[str] | None = None) -> tuple[list[str], list[np.ndarray]]:
    """The classes and the row numbers (train, validation, test) that split_parquet sends to each file, for
    labels y (class codes, named by `names`) written in row groups of `group_rows`."""
    names = names or [chr(ord("a") + c) for c in range(y.max() + 1)]
    table = pd.DataFrame({"row": np.arange(len(y)), "kind": np.asarray(names)[y]})
    source = write_table(table, tmp_path / "in.parquet", row_group=group_rows)
    outputs = tuple(tmp_path / f"{name}.parquet" for name in NAMES)
    classes, sizes = split_parquet(source, "kind", test_size, val_size, seed, outputs)
    parts = [pd.read_parquet(out)["row"].to_numpy() for out in outputs]
    assert sizes == [len(rows) for rows in parts]
    return classes, parts


def test_labels_are_coded_in_the_sorted_order_of_their_names(tmp_path):
    y = np.array([1, 0, 2, 0] * 5)
    classes, _ = split(tmp_path, y, 0.2, seed=0, names=["b", "a", "c"])  # code 0 is "b"
    assert classes == ["a", "b", "c"]
    table = pd.concat([pd.read_parquet(tmp_path / f"{name}.parquet") for name in NAMES]).sort_values("row")
    assert table["kind"].tolist() == [{1: 0, 0: 1, 2: 2}[c] for c in y], "b -> 1, a -> 0, c -> 2"


def test_split_is_stratified_disjoint_and_reproducible(tmp_path):
    y = np.repeat([0, 1, 2], [50, 30, 20])
    _, (train, val, test) = split(tmp_path, y, 0.2, seed=1, val_size=0.1)
    assert np.bincount(y[test]).tolist() == [10, 6, 4]
    assert np.bincount(y[val]).tolist() == [5, 3, 2]
    assert sorted(np.concatenate([train, val, test]).tolist()) == list(range(100)), "disjoint, and every row"
    files = [(tmp_path / f"{name}.parquet").read_bytes() for name in NAMES]
    _, again = split(tmp_path, y, 0.2, seed=1, val_size=0.1)
    assert [(tmp_path / f"{name}.parquet").read_bytes() for name in NAMES] == files, "the same seed, the same bytes"
    _, other = split(tmp_path, y, 0.2, seed=2, val_size=0.1)
    assert not np.array_equal(test, other[2]) and not np.array_equal(val, other[1])


@pytest.mark.parametrize("group_rows", [65_536, 7])
def test_the_test_rows_do_not_depend_on_the_validation_size(tmp_path, group_rows):
    y = np.random.default_rng(0).permutation(np.repeat([0, 1, 2], [50, 30, 20]))
    tests = [split(tmp_path, y, 0.2, 1, v, group_rows)[1][2] for v in (0, 0.1, 0.3)]
    assert all(np.array_equal(tests[0], t) for t in tests[1:])


def test_drawn_a_group_at_a_time_the_split_has_exact_counts_spread_over_the_file(tmp_path):
    y = np.random.default_rng(0).permutation(np.repeat([0, 1, 2], [5000, 3000, 2000]))
    _, (train, val, test) = split(tmp_path, y, 0.2, 1, 0.1, group_rows=64)
    assert np.bincount(y[test]).tolist() == [1000, 600, 400] and np.bincount(y[val]).tolist() == [500, 300, 200]
    assert sorted(np.concatenate([train, val, test]).tolist()) == list(range(10_000))
    # Each tenth of the file, 1000 rows, gives about a fifth to test and a tenth to validation: not the
    # first groups' rows only, as a draw that filled the quotas in file order would
    for part, share in ((test, 0.2), (val, 0.1)):
        tenths = np.bincount(part // 1000, minlength=10) / 1000
        assert np.all(np.abs(tenths - share) < 0.05), tenths


def test_no_validation_rows_with_val_size_0(tmp_path):
    y = np.repeat([0, 1], [10, 2])
    _, (train, val, test) = split(tmp_path, y, 0.2, seed=0)
    assert len(val) == 0 and np.bincount(y[test]).tolist() == [2, 1] and np.bincount(y[train]).tolist() == [8, 1]


def test_a_small_class_keeps_a_row_in_each_part(tmp_path):
    y = np.repeat([0, 1], [20, 3])
    _, parts = split(tmp_path, y, 0.5, seed=0, val_size=0.4)
    assert [np.bincount(y[part], minlength=2).tolist()[1] for part in parts] == [1, 1, 1]


@pytest.mark.parametrize("rows,val_size,needed", [(1, 0, 2), (2, 0.2, 3)])
def test_split_names_a_class_too_small_to_split(tmp_path, rows, val_size, needed):
    y = np.array([0] * 10 + [1] * rows)
    with pytest.raises(DataError, match=rf"class 'rare' has {rows} rows?; the stratified split needs at least "
                                        rf"{needed} per class"):
        split(tmp_path, y, 0.2, seed=0, val_size=val_size, names=["common", "rare"])


def test_the_split_files_keep_every_column_in_row_groups_and_code_the_labels_as_integers(tmp_path):
    rng = np.random.default_rng(0)
    labels = rng.choice(["a", "b", "c", "d"], size=1000, p=[0.5, 0.3, 0.15, 0.05])
    table = pd.DataFrame({"x": np.arange(1000.0), "z": rng.normal(size=1000), "kind": labels})
    source = write_table(table, tmp_path / "in.parquet", row_group=64)
    outputs = tuple(tmp_path / f"{name}.parquet" for name in NAMES)
    classes, sizes = split_parquet(source, "kind", 0.2, 0.1, 7, outputs)
    assert classes == ["a", "b", "c", "d"] and sum(sizes) == 1000
    codes = {name: i for i, name in enumerate(classes)}
    for out in outputs:
        got = pd.read_parquet(out)
        assert list(got.columns) == ["x", "z", "kind"] and got["kind"].dtype == np.int64
        original = table.set_index("x").loc[got["x"]]
        assert got["kind"].tolist() == original["kind"].map(codes).tolist(), f"{out.name}: the labels, coded"
        np.testing.assert_array_equal(got["z"].to_numpy(), original["z"].to_numpy())
        assert got["x"].is_monotonic_increasing, f"{out.name}: the rows in file order"
