"""Reading, validating, encoding and splitting tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from softmax_regression.data import raw

from softmax_regression.data import tables
from softmax_regression.training.dataset import read_matrix
from softmax_regression.errors import DataError
from softmax_regression.data.raw import ingest_csv, read_features, read_raw
from softmax_regression.data.split import encode_labels, split_parquet, stratified_split
from softmax_regression.data.tables import write_parquet

from conftest import IRIS


def write(tmp_path, text: str, name: str = "data.csv", encoding: str = "utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def test_iris_reads_as_four_float_features_and_a_label():
    table = read_raw(IRIS, "Species", ("Id",))
    assert list(table.columns) == ["SepalLengthCm", "SepalWidthCm", "PetalLengthCm", "PetalWidthCm", "Species"]
    assert len(table) == 150 and all(table[c].dtype == np.float64 for c in table.columns[:4])
    assert table["Species"].value_counts().tolist() == [50, 50, 50]


def test_crlf_bom_column_order_and_integers_are_fine(tmp_path):
    path = write(tmp_path, "\ufeffy,b,a\r\nyes,1,2.5\r\nno,3,4\r\n")
    table = read_raw(path, "y")
    assert list(table.columns) == ["b", "a", "y"]
    assert table["b"].tolist() == [1.0, 3.0] and table["y"].tolist() == ["yes", "no"]


@pytest.mark.parametrize("text,label,message", [
    ("", "y", r"the file is empty"),
    ("a,y\n", "y", r"header has no data rows"),
    ("a,b\n1,2\n", "y", r"label column 'y' not found \(set ingest\.label\); columns are: a, b"),
    ("a;y\n1;p\n", "y", r"contains ';': set ingest\.delimiter"),
    ("a,y\n1,p\nx,q\n", "y", r"column 'a' has a non-numeric value 'x' at line 3"),
    ("a,y\n1,p\n,q\n2,p\n", "y", r"column 'a' has missing values at line 3"),
    ("a,y\n1,p\ninf,q\n", "y", r"column 'a' has infinite values at line 3"),
    ("a,y\n1,p\n2,p\n", "y", r"label column 'y' has 1 class; at least 2"),
    ("a,a,y\n1,2,p\n", "y", r"column 'a' appears more than once"),
    ("a,y\n1,p\n2,\n", "y", r"column 'y' has missing labels at line 3"),
])
def test_bad_files_get_one_clear_line(tmp_path, text, label, message):
    with pytest.raises(DataError, match=message):
        read_raw(write(tmp_path, text), label)


def test_missing_file_names_the_param(tmp_path):
    with pytest.raises(DataError, match=r"file not found \(set ingest\.path"):
        read_raw(tmp_path / "nope.csv", "y")


def test_labels_encode_in_sorted_order():
    codes, classes = encode_labels(pd.Series(["b", "a", "c", "a"]))
    assert classes == ["a", "b", "c"] and codes.tolist() == [1, 0, 2, 0]


def test_split_is_stratified_disjoint_and_reproducible():
    y = np.repeat([0, 1, 2], [50, 30, 20])
    train, val, test = stratified_split(y, ["a", "b", "c"], 0.2, seed=1, val_size=0.1)
    assert np.bincount(y[test]).tolist() == [10, 6, 4]
    assert np.bincount(y[val]).tolist() == [5, 3, 2]
    assert sorted(np.concatenate([train, val, test]).tolist()) == list(range(100)), "disjoint, and every row"
    again = stratified_split(y, ["a", "b", "c"], 0.2, seed=1, val_size=0.1)
    assert all(np.array_equal(a, b) for a, b in zip((train, val, test), again, strict=True))
    other = stratified_split(y, ["a", "b", "c"], 0.2, seed=2, val_size=0.1)
    assert not np.array_equal(test, other[2]) and not np.array_equal(val, other[1])


@pytest.mark.parametrize("group_rows", [None, 7])
def test_the_test_rows_do_not_depend_on_the_validation_size(group_rows):
    y = np.random.default_rng(0).permutation(np.repeat([0, 1, 2], [50, 30, 20]))
    tests = [stratified_split(y, ["a", "b", "c"], 0.2, 1, v, group_rows)[2] for v in (0, 0.1, 0.3)]
    assert all(np.array_equal(tests[0], t) for t in tests[1:])


def test_drawn_a_group_at_a_time_the_split_has_exact_counts_spread_over_the_file():
    y = np.random.default_rng(0).permutation(np.repeat([0, 1, 2], [5000, 3000, 2000]))
    train, val, test = stratified_split(y, ["a", "b", "c"], 0.2, 1, 0.1, group_rows=64)
    assert np.bincount(y[test]).tolist() == [1000, 600, 400] and np.bincount(y[val]).tolist() == [500, 300, 200]
    assert sorted(np.concatenate([train, val, test]).tolist()) == list(range(10_000))
    # Each tenth of the file, 1000 rows, gives about a fifth to test and a tenth to validation: not the
    # first groups' rows only, as a draw that filled the quotas in file order would
    for part, share in ((test, 0.2), (val, 0.1)):
        tenths = np.bincount(part // 1000, minlength=10) / 1000
        assert np.all(np.abs(tenths - share) < 0.05), tenths


def test_no_validation_rows_with_val_size_0():
    y = np.repeat([0, 1], [10, 2])
    train, val, test = stratified_split(y, ["a", "b"], 0.2, seed=0)
    assert len(val) == 0 and np.bincount(y[test]).tolist() == [2, 1] and np.bincount(y[train]).tolist() == [8, 1]


def test_a_small_class_keeps_a_row_in_each_part():
    y = np.repeat([0, 1], [20, 3])
    train, val, test = stratified_split(y, ["a", "b"], 0.5, seed=0, val_size=0.4)
    assert [np.bincount(y[part], minlength=2).tolist()[1] for part in (train, val, test)] == [1, 1, 1]


@pytest.mark.parametrize("rows,val_size,needed", [(1, 0, 2), (2, 0.2, 3)])
def test_split_names_a_class_too_small_to_split(rows, val_size, needed):
    y = np.array([0] * 10 + [1] * rows)
    with pytest.raises(DataError, match=rf"class 'rare' has {rows} rows?; the stratified split needs at least "
                                        rf"{needed} per class"):
        stratified_split(y, ["common", "rare"], 0.2, seed=0, val_size=val_size)


def test_read_features_picks_model_columns_in_order(tmp_path):

    path = write(tmp_path, "z,b,label,a\n1,2,x,3\n4,5,y,6\n")
    table = read_features(path, ["a", "b"])
    assert list(table.columns) == ["a", "b"] and table.to_numpy().tolist() == [[3.0, 2.0], [6.0, 5.0]]
    with pytest.raises(DataError, match=r"feature column 'c' of the model is missing; columns are: z, b, label, a"):
        read_features(path, ["a", "c"])
    with pytest.raises(DataError, match=r"column 'a' has missing values at line 3"):
        read_features(write(tmp_path, "a,b\n1,2\n,3\n", "gap.csv"), ["a", "b"])


@pytest.mark.parametrize("rows", [None, (0, 5), (7, 33), (20, 30), (90, 95), (40, 40), (0, 95)])
def test_read_matrix_reads_any_rows_across_row_groups(tmp_path, monkeypatch, rows):
    monkeypatch.setattr(tables, "ROW_GROUP", 10)  # ten groups of 10 rows, the last of 5
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"b": rng.normal(size=95), "label": np.arange(95) % 3, "a": np.arange(95.0),
                          "c": rng.integers(0, 9, 95)})
    write_parquet(table, tmp_path / "t.parquet")
    assert pq.ParquetFile(tmp_path / "t.parquet").num_row_groups == 10
    start, stop = rows or (0, 95)
    features, X, y = read_matrix(tmp_path / "t.parquet", "label", rows=rows)
    assert features == ["b", "a", "c"] and X.dtype == np.float64 and y.dtype == np.int64
    np.testing.assert_array_equal(X, table[["b", "a", "c"]].to_numpy(dtype=float)[start:stop])
    np.testing.assert_array_equal(y, table["label"].to_numpy()[start:stop])
    features, X, _ = read_matrix(tmp_path / "t.parquet", "label", ["c", "a"], rows)
    np.testing.assert_array_equal(X, table[["c", "a"]].to_numpy(dtype=float)[start:stop])
    with pytest.raises(DataError, match=r"t\.parquet: column 'z' is missing; columns are: b, label, a, c"):
        read_matrix(tmp_path / "t.parquet", "label", ["a", "z"], rows)


# Streaming: ingest reads a block of text at a time, split a row group at a time.

def many_rows(n: int = 300, bad: dict[int, str] | None = None) -> str:
    """A CSV of n data rows, `a,b,y`, with the cells of `bad` ({row: text}) in column b."""
    lines = ["a,b,y"] + [f"{i},{(bad or {}).get(i, i % 7)},{'cat' if i % 3 else 'dog'}" for i in range(n)]
    return "\n".join(lines) + "\n"


@pytest.fixture
def small_blocks(monkeypatch):
    monkeypatch.setattr(raw, "BLOCK_BYTES", 256)  # ~25 rows a block: a 300-row file is a dozen blocks


def test_a_bad_value_in_the_last_block_is_named_at_its_line_in_the_file(tmp_path, small_blocks):
    path = write(tmp_path, many_rows(bad={297: "oops"}))
    with pytest.raises(DataError, match=r"column 'b' has a non-numeric value 'oops' at line 299 "):
        read_raw(path, "y")


def test_missing_and_infinite_values_across_blocks_are_listed_and_counted_from_the_top(tmp_path, small_blocks):
    gaps = {3: "", 40: "", 41: "", 120: "", 200: "", 250: "", 299: ""}
    with pytest.raises(DataError, match=r"column 'b' has missing values at line 5, 42, 43, 122, 202 and 2 more; "
                                        r"to drop such rows"):
        read_raw(write(tmp_path, many_rows(bad=gaps)), "y")
    dropped = read_raw(write(tmp_path, many_rows(bad=gaps)), "y", missing="drop")
    assert dropped.attrs["dropped_rows"] == 7 and len(dropped) == 293
    assert dropped["a"].tolist() == [i for i in range(300) if i not in gaps], "every other row, in order"
    with pytest.raises(DataError, match=r"column 'b' has infinite values at line 102, 282$"):
        read_raw(write(tmp_path, many_rows(bad={100: "inf", 280: "-inf"})), "y")


def test_blocks_give_the_table_one_read_gives(tmp_path, monkeypatch):
    path = write(tmp_path, many_rows())
    whole = read_raw(path, "y")
    monkeypatch.setattr(raw, "BLOCK_BYTES", 256)
    pd.testing.assert_frame_equal(read_raw(path, "y"), whole)
    found = ingest_csv(path, tmp_path / "out.parquet", "y")
    assert (found.rows, found.features, found.classes) == (300, ["a", "b"], {"cat": 200, "dog": 100})
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "out.parquet"), whole)


def test_a_failure_halfway_leaves_no_output(tmp_path, small_blocks):
    out = tmp_path / "dataset.parquet"
    with pytest.raises(DataError, match=r"at line 299 "):
        ingest_csv(write(tmp_path, many_rows(bad={297: "oops"})), out, "y")
    assert list(tmp_path.iterdir()) == [tmp_path / "data.csv"], "no output, no temporary file"
    out.write_bytes(b"the last good one")
    with pytest.raises(DataError, match=r"missing values at line 301"):
        ingest_csv(write(tmp_path, many_rows(bad={299: ""})), out, "y")
    assert out.read_bytes() == b"the last good one"


def test_the_streamed_split_has_exact_counts_and_is_the_same_for_the_same_seed(tmp_path, monkeypatch):
    monkeypatch.setattr(tables, "ROW_GROUP", 64)  # 1000 rows in 16 row groups
    rng = np.random.default_rng(0)
    labels = rng.choice(["a", "b", "c", "d"], size=1000, p=[0.5, 0.3, 0.15, 0.05])
    table = pd.DataFrame({"x": np.arange(1000.0), "z": rng.normal(size=1000), "kind": labels})
    write_parquet(table, tmp_path / "in.parquet")
    outs = [tmp_path / f"{name}.parquet" for name in ("train", "val", "test")]
    classes, sizes = split_parquet(tmp_path / "in.parquet", "kind", 0.2, 0.1, 7, tuple(outs))
    y, _ = encode_labels(table["kind"])
    expected = stratified_split(y, classes, 0.2, 7, 0.1, group_rows=64)  # the in-memory draw, checked above
    assert classes == ["a", "b", "c", "d"] and sizes == [len(rows) for rows in expected]
    for out, rows in zip(outs, expected, strict=True):
        got = pd.read_parquet(out)
        assert got["x"].tolist() == rows.tolist(), f"{out.name}: the rows, in file order"
        assert got["kind"].tolist() == y[rows].tolist() and got["kind"].dtype == np.int64
        counts = np.bincount(y[rows], minlength=4)
        n = np.bincount(y, minlength=4)
        share = {"train.parquet": None, "val.parquet": 0.1, "test.parquet": 0.2}[out.name]
        if share:
            assert counts.tolist() == [max(round(share * c), 1) for c in n], "exact counts per class"
    first = [out.read_bytes() for out in outs]
    split_parquet(tmp_path / "in.parquet", "kind", 0.2, 0.1, 7, tuple(outs))
    assert [out.read_bytes() for out in outs] == first, "the same seed, the same bytes"
    split_parquet(tmp_path / "in.parquet", "kind", 0.2, 0.1, 8, tuple(outs))
    assert pd.read_parquet(outs[2])["x"].tolist() != expected[2].tolist(), "another seed, another split"
