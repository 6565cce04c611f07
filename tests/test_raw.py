"""Reading and validating a raw CSV, block by block: ingest's functions, and predict's reader."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from softmax_regression.data import raw
from softmax_regression.data.raw import ingest_csv, read_features
from softmax_regression.errors import DataError

from conftest import IRIS, ingested


def write(tmp_path, text: str, name: str = "data.csv", encoding: str = "utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def test_iris_reads_as_four_float_features_and_a_label():
    table = ingested(IRIS, "Species", drop=("Id",))
    assert list(table.columns) == ["SepalLengthCm", "SepalWidthCm", "PetalLengthCm", "PetalWidthCm", "Species"]
    assert len(table) == 150 and all(table[c].dtype == np.float64 for c in table.columns[:4])
    assert table["Species"].value_counts().tolist() == [50, 50, 50]


def test_crlf_bom_column_order_and_integers_are_fine(tmp_path):
    path = write(tmp_path, "\ufeffy,b,a\r\nyes,1,2.5\r\nno,3,4\r\n")
    table = ingested(path, "y")
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
        ingested(write(tmp_path, text), label)


def test_missing_file_names_the_param(tmp_path):
    with pytest.raises(DataError, match=r"file not found \(set ingest\.path"):
        ingested(tmp_path / "nope.csv", "y")


def test_read_features_picks_model_columns_in_order(tmp_path):

    path = write(tmp_path, "z,b,label,a\n1,2,x,3\n4,5,y,6\n")
    table = read_features(path, ["a", "b"])
    assert list(table.columns) == ["a", "b"] and table.to_numpy().tolist() == [[3.0, 2.0], [6.0, 5.0]]
    with pytest.raises(DataError, match=r"feature column 'c' of the model is missing; columns are: z, b, label, a"):
        read_features(path, ["a", "c"])
    with pytest.raises(DataError, match=r"column 'a' has missing values at line 3"):
        read_features(write(tmp_path, "a,b\n1,2\n,3\n", "gap.csv"), ["a", "b"])


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
        ingested(path, "y")


def test_missing_and_infinite_values_across_blocks_are_listed_and_counted_from_the_top(tmp_path, small_blocks):
    gaps = {3: "", 40: "", 41: "", 120: "", 200: "", 250: "", 299: ""}
    with pytest.raises(DataError, match=r"column 'b' has missing values at line 5, 42, 43, 122, 202 and 2 more; "
                                        r"to drop such rows"):
        ingested(write(tmp_path, many_rows(bad=gaps)), "y")
    dropped = ingested(write(tmp_path, many_rows(bad=gaps)), "y", missing="drop")
    assert dropped.attrs["dropped_rows"] == 7 and len(dropped) == 293
    assert dropped["a"].tolist() == [i for i in range(300) if i not in gaps], "every other row, in order"
    with pytest.raises(DataError, match=r"column 'b' has infinite values at line 102, 282$"):
        ingested(write(tmp_path, many_rows(bad={100: "inf", 280: "-inf"})), "y")


def test_blocks_give_the_table_one_read_gives(tmp_path, monkeypatch):
    path = write(tmp_path, many_rows())
    whole = ingested(path, "y")
    monkeypatch.setattr(raw, "BLOCK_BYTES", 256)
    pd.testing.assert_frame_equal(ingested(path, "y"), whole)
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




def test_a_column_of_distinct_evenly_spaced_integers_is_named_as_id_like(tmp_path):
    """In any order: a shuffled id is still an id. Not an error: ingest warns, and trains on it."""
    ids = np.random.default_rng(0).permutation(np.arange(5, 5 + 3 * 30, 3))  # 5, 8, …, 92, shuffled
    lines = ["row_id,a,count,y"] + [f"{i},{0.5 + k},{k % 4},{'p' if k % 2 else 'q'}" for k, i in enumerate(ids)]
    path = write(tmp_path, "\n".join(lines) + "\n")
    found = ingest_csv(path, tmp_path / "out.parquet", "y")
    assert found.id_like == {"row_id": (5, 92)}, "count repeats its values, a is not integral"
    assert ingest_csv(path, tmp_path / "out.parquet", "y", drop=("row_id",)).id_like == {}


def test_a_short_or_uneven_integer_column_is_no_id(tmp_path):
    few = ["id,y"] + [f"{i},{'p' if i % 2 else 'q'}" for i in range(1, 6)]  # 5 rows say too little
    assert ingest_csv(write(tmp_path, "\n".join(few) + "\n"), tmp_path / "o.parquet", "y").id_like == {}
    gap = ["id,y"] + [f"{i},{'p' if i % 2 else 'q'}" for i in [*range(1, 20), 21]]  # 20 is missing
    assert ingest_csv(write(tmp_path, "\n".join(gap) + "\n", "gap.csv"), tmp_path / "o.parquet", "y").id_like == {}
