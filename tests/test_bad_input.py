"""Broken inputs through the real stage scripts: one clear line, a non-zero exit, no traceback, no output.

Plus a property: any CSV either ingests or fails with a DataError of one line, never anything else.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from softmax_regression.errors import DataError

from conftest import ROOT, ingested, tool_env

IRIS_HEAD = (ROOT / "data/Iris.csv").read_text().splitlines()
STAGE_OUTPUTS = {"ingest": ["data/interim/dataset.parquet"],
                 "split": ["data/split/train.parquet", "data/split/val.parquet", "data/split/test.parquet",
                           "data/split/classes.json"],
                 "train": ["models/model.safetensors", "metrics/train.json", "models/mlflow_run.json"]}


def params_with(**changes: object) -> dict:
    """The repository's params.yaml with dotted keys replaced: params_with(**{"train.lr": 0})."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for dotted, value in changes.items():
        section, key = dotted.split(".")
        params[section][key] = value
    return params


def run_stage(stage: str, workdir, params: dict) -> subprocess.CompletedProcess:
    (workdir / "params.yaml").write_text(yaml.safe_dump(params))
    return subprocess.run([sys.executable, str(ROOT / "stages" / f"{stage}.py")], cwd=workdir,
                          env=tool_env(PYTHONPATH=str(ROOT / "src"), DVC_ROOT=str(workdir)),
                          capture_output=True, text=True, timeout=120)


def csv(*lines: str) -> bytes:
    return "".join(line + "\n" for line in lines).encode()


CASES = [
    # (id, file bytes or None for no file, param changes, stage, message)
    ("missing file", None, {}, "ingest", r"data\.csv: file not found \(set ingest\.path"),
    ("empty file", b"", {}, "ingest", r"the file is empty"),
    ("header only", csv("a,b,Species"), {}, "ingest", r"the header has no data rows"),
    ("no label column", csv("a,b,kind", "1,2,x"), {}, "ingest",
     r"label column 'Species' not found \(set ingest\.label\); columns are: a, b, kind"),
    ("non-numeric feature", csv("a,b,Species", "1,2,x", "3,oops,y"), {}, "ingest",
     r"column 'b' has a non-numeric value 'oops' at line 3"),
    ("missing values", csv("a,b,Species", "1,2,x", "3,,y", "4,,x"), {}, "ingest",
     r"column 'b' has missing values at line 3, 4; to drop such rows, set ingest\.missing: drop"),
    ("missing label", csv("a,b,Species", "1,2,x", "3,4,"), {}, "ingest", r"column 'Species' has missing labels"),
    ("infinite value", csv("a,b,Species", "1,2,x", "3,-inf,y"), {}, "ingest",
     r"column 'b' has infinite values at line 3"),
    ("single class", csv("a,b,Species", "1,2,x", "3,4,x"), {}, "ingest",
     r"label column 'Species' has 1 class; at least 2 are needed"),
    ("duplicate columns", csv("a,a,Species", "1,2,x", "3,4,y"), {}, "ingest",
     r"column 'a' appears more than once in the header"),
    ("semicolons", csv("a;b;Species", "1;2;x", "3;4;y"), {}, "ingest",
     r"contains ';': set ingest\.delimiter in params\.yaml"),
    ("binary file", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe\x00", {}, "ingest", r"not a UTF-8 text file"),
    ("ragged rows", csv("a,b,Species", "1,2,x", "3,4,y,5,6"), {}, "ingest", r"not a well-formed CSV"),
    ("drop unknown column", csv("a,b,Species", "1,2,x", "3,4,y"), {"ingest.drop": ["Id"]}, "ingest",
     r"column 'Id' in ingest\.drop not found; columns are: a, b, Species"),
    ("bad missing policy", csv("a,Species", "1,x"), {"ingest.missing": "ignore"}, "ingest",
     r"ingest\.missing must be one of \['drop', 'error'\], got 'ignore'"),
    ("class too small to split", csv("a,Species", "1,x", "2,x", "3,x", "4,y", "5,y"), {}, "split",
     (r"class 'y' has 2 rows; the stratified split needs at least 3 per class \(one each for train, validation "
      r"and test\)")),
    ("test_size of 1", csv("a,Species", "1,x", "2,y"), {"split.test_size": 1}, "split",
     r"split\.test_size must be a fraction in \(0, 1\), got 1\.0"),
    ("test_size of 0", csv("a,Species", "1,x", "2,y"), {"split.test_size": 0}, "split",
     r"split\.test_size must be a fraction in \(0, 1\), got 0\.0"),
    ("unknown impl", None, {"train.impl": "jax"}, "train",
     r"train\.impl must be one of \['autograd', 'manual', 'nn'\], got 'jax'"),
    ("lr of 0", None, {"train.lr": 0}, "train", r"train\.lr must be a number > 0, got 0\.0"),
    ("negative lr", None, {"train.lr": -0.1}, "train", r"train\.lr must be a number > 0, got -0\.1"),
    ("no iterations", None, {"train.iterations": 0}, "train", r"train\.iterations must be an integer >= 1, got 0"),
    ("negative l2", None, {"train.l2": -1}, "train", r"train\.l2 must be a number >= 0, got -1\.0"),
    ("misspelt key", None, {"train.lrate": 0.1}, "train", r"unknown key train\.lrate"),
    ("no ranks", None, {"train.world_size": 0}, "train", r"train\.world_size must be an integer >= 1, got 0"),
]


@pytest.mark.parametrize("content,changes,stage,message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_gives_one_clear_line(tmp_path, content, changes, stage, message):
    params = params_with(**{"ingest.path": "data.csv", "ingest.drop": [], **changes})
    if content is not None:
        (tmp_path / "data.csv").write_bytes(content)
    if stage == "split":  # split reads what ingest wrote; ingest must succeed first
        assert run_stage("ingest", tmp_path, params_with(**{"ingest.path": "data.csv", "ingest.drop": []}))\
            .returncode == 0
    result = run_stage(stage, tmp_path, params)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr and len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert re.search(message, lines[0]), lines[0]
    for output in STAGE_OUTPUTS[stage]:
        assert not (tmp_path / output).exists(), f"{output} written by a failing {stage}"
    assert not list(tmp_path.rglob("*.partial"))


def test_missing_rows_can_be_dropped_with_a_count(tmp_path):
    (tmp_path / "data.csv").write_bytes(csv("a,b,Species", "1,2,x", "3,,y", "4,5,y", ",6,x", "7,8,x"))
    result = run_stage("ingest", tmp_path, params_with(**{"ingest.path": "data.csv", "ingest.drop": [],
                                                          "ingest.missing": "drop"}))
    assert result.returncode == 0, result.stderr
    assert "ingest: 3 rows, 2 features, 2 classes" in result.stdout
    assert "(2 rows with missing values dropped)" in result.stdout


def test_an_id_like_feature_is_a_warning_naming_it_and_ingest_drop(tmp_path):
    (tmp_path / "data.csv").write_bytes(csv("row_id,a,Species", *(f"{i},{i % 7 + 0.5},{'xy'[i % 2]}" for i in range(1, 91))))
    result = run_stage("ingest", tmp_path, params_with(**{"ingest.path": "data.csv", "ingest.drop": []}))
    assert result.returncode == 0 and "ingest: 90 rows, 2 features, 2 classes" in result.stdout
    assert result.stderr.strip() == ("ingest: warning: feature 'row_id' of data.csv looks like a row id (distinct, "
                                     "evenly spaced integers from 1 to 90) and is trained on; if it is one, add it "
                                     "to ingest.drop")


def test_crlf_bom_shuffled_columns_and_huge_scale_ingest(tmp_path):
    rows = [line.split(",") for line in IRIS_HEAD]
    order = [5, 3, 0, 1, 4, 2]  # Species first, Id in the middle
    text = "\r\n".join(",".join(row[i] for i in order) for row in rows) + "\r\n"
    text = text.replace(",5.1,", ",5.1e300,")  # a feature of very large scale
    (tmp_path / "data.csv").write_bytes(b"\xef\xbb\xbf" + text.encode())
    result = run_stage("ingest", tmp_path, params_with(**{"ingest.path": "data.csv"}))
    assert result.returncode == 0, result.stderr
    assert "ingest: 150 rows, 4 features, 3 classes" in result.stdout


cell = st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr), st.integers().map(str),
                 st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=6),
                 st.sampled_from(["", "NA", "nan", "inf", "-", "1e999", '"', "a,b", " 3 "]))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(header=st.lists(st.sampled_from(["a", "b", "y", "c", "a "]), min_size=1, max_size=4),
       rows=st.lists(st.lists(cell, min_size=0, max_size=5), max_size=6),
       delimiter=st.sampled_from([",", ";"]))
def test_any_csv_ingests_or_fails_with_one_clear_line(tmp_path, header, rows, delimiter):
    path = tmp_path / "random.csv"
    path.write_text("\n".join(delimiter.join(r) for r in [header, *rows]) + "\n", encoding="utf-8")
    try:
        table = ingested(path, "y", delimiter=delimiter)
    except DataError as e:
        message = str(e)
        assert message and "\n" not in message and message.startswith(str(path)), message
        return
    features = table.drop(columns="y")
    assert table["y"].nunique() >= 2 and len(features.columns) >= 1
    assert features.notna().all().all() and all(dtype == "float64" for dtype in features.dtypes)
