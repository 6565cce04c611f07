"""`make predict`: the workspace's model on a new CSV, one row out per row in, with chosen columns carried
through, and a clear line when something is wrong."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest

from conftest import IRIS, run, run_id_of

PREDICT = [sys.executable, "-m", "softmax_regression.commands.predict"]
COLUMNS = ["predicted", "p(Iris-setosa)", "p(Iris-versicolor)", "p(Iris-virginica)"]


@pytest.fixture(scope="module")
def shuffled(tmp_path_factory) -> tuple[pd.DataFrame, str]:
    """Iris, rows and columns shuffled, with an extra column: a CSV a user might bring."""
    table = pd.read_csv(IRIS).sample(frac=1, random_state=0)
    table = table[["Species", "PetalWidthCm", "Id", "SepalLengthCm", "PetalLengthCm", "SepalWidthCm"]]
    path = tmp_path_factory.mktemp("predict") / "new.csv"
    table.assign(extra="ignored").to_csv(path, index=False)
    return table, str(path)


def test_predict_applies_the_model_to_a_new_csv(repo, shuffled, tmp_path):
    table, path = shuffled
    run([*PREDICT, path, "--output", str(tmp_path / "out.csv")], repo)
    predictions = pd.read_csv(tmp_path / "out.csv")
    assert list(predictions.columns) == COLUMNS and len(predictions) == 150
    assert np.allclose(predictions.iloc[:, 1:].sum(axis=1), 1, atol=1e-5)
    assert (predictions["predicted"].to_numpy() == table["Species"].to_numpy()).mean() >= 0.9


def test_predict_says_which_model_it_used(repo, shuffled, tmp_path):
    result = run([*PREDICT, shuffled[1], "--output", str(tmp_path / "out.csv")], repo)
    assert result.stderr.strip() == (f"predict: 150 rows -> {tmp_path / 'out.csv'} (model models/model.safetensors, "
                                     f"trained by MLflow run {run_id_of(repo)})")


def test_kept_columns_come_first_as_they_are_in_the_csv(repo, shuffled, tmp_path):
    table, path = shuffled
    run([*PREDICT, path, "--output", str(tmp_path / "out.csv"), "--keep", "Id", "--keep", "extra"], repo)
    predictions = pd.read_csv(tmp_path / "out.csv", dtype={"Id": str})
    assert list(predictions.columns) == ["Id", "extra", *COLUMNS]
    assert predictions["Id"].tolist() == table["Id"].astype(str).tolist() and set(predictions["extra"]) == {"ignored"}


@pytest.mark.parametrize(("args", "message"), [
    (["--keep", "Row"], "column 'Row' to keep is missing; columns are: Species, PetalWidthCm, Id"),
    (["--keep", "Id", "--model", "nowhere.safetensors"], "nowhere.safetensors: no model here; run the pipeline first"),
])
def test_a_bad_argument_is_one_line(repo, shuffled, tmp_path, args, message):
    bad = run([*PREDICT, shuffled[1], "--output", str(tmp_path / "out.csv"), *args], repo, check=False)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().startswith("error: ") and message in bad.stderr and len(bad.stderr.splitlines()) == 1
    assert not (tmp_path / "out.csv").exists()


def test_a_missing_feature_column_is_one_line(repo, shuffled, tmp_path):
    table, _ = shuffled
    table.drop(columns="PetalWidthCm").to_csv(tmp_path / "short.csv", index=False)
    bad = run([*PREDICT, str(tmp_path / "short.csv")], repo, check=False)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().startswith("error: ") and "feature column 'PetalWidthCm' of the model is missing" \
        in bad.stderr
