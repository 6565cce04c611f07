"""The MLflow model as people serve it: `mlflow models serve` over HTTP, named columns in any order, class
names and probabilities out, the same numbers as `make predict`; loaded without the package and without
unpickling anything.

The model is trained on Iris here and logged with `runs.log_model`, the call the train stage makes, into
a temporary store; test_pipeline.py checks the model a real `dvc repro` logs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from softmax_regression.commands.predict import predict_csv
from softmax_regression.config import TrainParams
from softmax_regression.runtime import cpu_kernels
from softmax_regression.tracking import runs
from softmax_regression.training.dataset import Dataset
from softmax_regression.training.loop import train
from softmax_regression.training.model import write_model

from conftest import IRIS, free_port, serve, tool_env

FEATURES = ["SepalLengthCm", "SepalWidthCm", "PetalLengthCm", "PetalWidthCm"]
SETOSA = {"SepalLengthCm": 5.1, "SepalWidthCm": 3.5, "PetalLengthCm": 1.4, "PetalWidthCm": 0.2}


@pytest.fixture(scope="module")
def logged(tmp_path_factory, iris) -> dict:
    """A model trained on Iris, its safetensors file, and its MLflow model in a temporary sqlite store."""
    import mlflow

    folder = tmp_path_factory.mktemp("serving")
    classes = sorted(pd.read_csv(IRIS)["Species"].unique())
    data = Dataset(*iris, FEATURES, classes)
    model, _, _ = train(data, TrainParams(impl="manual", iterations=250, lr=0.1, l2=0.01, seed=0))
    write_model(folder / "model.safetensors", model)
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    before = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    try:
        experiment = mlflow.MlflowClient().create_experiment("serving", (folder / "mlruns").as_uri())
        with mlflow.start_run(experiment_id=experiment) as run:
            runs.log_model(folder / "model.safetensors", pd.DataFrame(iris[0][:5].numpy(), columns=FEATURES))
    finally:  # set_tracking_uri exports MLFLOW_TRACKING_URI: leave the environment as it was
        os.environ.pop("MLFLOW_TRACKING_URI", None)
        if before is not None:
            os.environ["MLFLOW_TRACKING_URI"] = before
    return {"folder": folder, "uri": uri, "model": f"runs:/{run.info.run_id}/model",
            "weights": folder / "model.safetensors", "classes": classes}


def make_predict(logged: dict, rows: pd.DataFrame, tmp_path: Path) -> pd.DataFrame:
    """What `make predict` writes for these rows, read back exactly."""
    rows.to_csv(tmp_path / "rows.csv", index=False)
    predict_csv(str(logged["weights"]), str(tmp_path / "rows.csv"), str(tmp_path / "predicted.csv"))
    return pd.read_csv(tmp_path / "predicted.csv")


@pytest.fixture(scope="module")
def server(logged):
    """`mlflow models serve` on 127.0.0.1, as `make serve` starts it; yields its address."""
    port = free_port()
    address = f"http://127.0.0.1:{port}"
    process = serve(["mlflow", "models", "serve", "-m", logged["model"], "--env-manager", "local",
                     "--host", "127.0.0.1", "--port", str(port)], f"{address}/ping",
                    tool_env(MLFLOW_TRACKING_URI=logged["uri"]))
    yield address
    process.terminate()
    process.wait(timeout=30)


def invoke(address: str, rows: pd.DataFrame) -> tuple[int, dict]:
    data = [[None if pd.isna(v) else v for v in row] for row in rows.to_numpy().tolist()]  # every digit
    body = json.dumps({"dataframe_split": {"columns": list(rows.columns), "data": data}}, allow_nan=False)
    request = urllib.request.Request(f"{address}/invocations", data=body.encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def answer(reply: dict) -> pd.DataFrame:
    return pd.DataFrame(reply["predictions"])


def test_the_setosa_row_with_shuffled_columns_is_a_setosa(server, logged, tmp_path):
    row = pd.DataFrame([SETOSA])[["PetalWidthCm", "SepalWidthCm", "PetalLengthCm", "SepalLengthCm"]]
    status, reply = invoke(server, row)
    assert status == 200, reply
    got = answer(reply)
    assert list(got.columns) == ["predicted", *(f"p({c})" for c in logged["classes"])]
    assert got["predicted"].tolist() == ["Iris-setosa"] and got["p(Iris-setosa)"].iloc[0] > 0.9
    pd.testing.assert_frame_equal(got, make_predict(logged, row, tmp_path), check_exact=True)


def test_an_extra_column_is_ignored(server, logged, tmp_path):
    rows = pd.read_csv(IRIS).sample(n=5, random_state=2)  # Id and Species besides the features
    status, reply = invoke(server, rows)
    assert status == 200, reply
    pd.testing.assert_frame_equal(answer(reply), make_predict(logged, rows, tmp_path), check_exact=True)


@pytest.mark.parametrize("rows", [1, 10_000], ids=["one-row", "10000-rows"])
def test_any_number_of_rows_gives_make_predicts_numbers(server, logged, tmp_path, rows):
    rng = np.random.default_rng(rows)
    iris = pd.read_csv(IRIS)[FEATURES]
    table = iris.sample(n=rows, replace=True, random_state=3).reset_index(drop=True)
    table += rng.normal(scale=0.3, size=table.shape)  # new flowers, not the training rows
    status, reply = invoke(server, table[FEATURES[::-1]])
    assert status == 200, str(reply)[:500]
    got = answer(reply)
    assert len(got) == rows
    pd.testing.assert_frame_equal(got, make_predict(logged, table, tmp_path), check_exact=True)


@pytest.mark.parametrize("change,named", [
    (lambda t: t.drop(columns="PetalWidthCm"), "PetalWidthCm"),
    (lambda t: t.astype(object).assign(SepalWidthCm=["abc", 3.0]), "SepalWidthCm"),
    (lambda t: t.assign(PetalLengthCm=[1.4, None]), "PetalLengthCm"),
], ids=["missing-column", "not-a-number", "missing-value"])
def test_a_bad_request_is_a_4xx_that_names_the_column(server, change, named):
    rows = change(pd.DataFrame([SETOSA, SETOSA]))
    status, reply = invoke(server, rows)
    assert 400 <= status < 500, (status, reply)
    assert named in reply["message"], reply["message"]


def test_a_missing_value_is_named_by_its_row_counted_from_1(server):
    rows = pd.DataFrame([SETOSA, SETOSA, SETOSA]).assign(PetalLengthCm=[1.4, None, 1.5])
    status, reply = invoke(server, rows)
    assert status == 400
    assert reply["message"].endswith("column 'PetalLengthCm' has a missing value in row 2 (rows count from 1)"), reply


SUBPROCESS = """
import importlib.util, json, os, pickle, _pickle, sys
from pathlib import Path

def refuse(*args, **kwargs):
    raise AssertionError("something unpickled while the model was loaded or used")

class Refused:
    def __init__(self, *args, **kwargs):
        refuse()

for module in (pickle, _pickle):  # before anything else is imported, so that no one holds the originals
    module.load = module.loads = refuse
    module.Unpickler = Refused
sys.path = [p for p in sys.path if not (Path(p) / "softmax_regression").is_dir()]
assert importlib.util.find_spec("softmax_regression") is None, "the package is still importable"

import mlflow.pyfunc
import pandas as pd

model = mlflow.pyfunc.load_model(sys.argv[1])
table = model.predict(pd.read_csv(sys.argv[2]))
import softmax_regression
import torch
kernels = {key: os.environ[key] for key in ("ATEN_CPU_CAPABILITY", "MKL_CBWR") if key in os.environ}
print(json.dumps({"package": softmax_regression.__file__, "kernels": kernels, "table": table.to_dict(orient="split")}))
"""


def test_the_model_loads_without_the_package_and_unpickles_nothing(logged, tmp_path):
    rows = pd.read_csv(IRIS).sample(n=6, random_state=4)
    rows.to_csv(tmp_path / "rows.csv", index=False)
    env = tool_env(MLFLOW_TRACKING_URI=logged["uri"])
    for key in ("PYTHONPATH", "ATEN_CPU_CAPABILITY", "MKL_CBWR"):  # the model must pin the kernels itself
        env.pop(key, None)
    result = subprocess.run([sys.executable, "-c", SUBPROCESS, logged["model"], str(tmp_path / "rows.csv")],
                            env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert "/code/softmax_regression/" in out["package"], "the model's own copy of the code was used"
    assert out["kernels"] == cpu_kernels(), "served at the kernel level the stages and `make predict` run at"
    got = pd.DataFrame(out["table"]["data"], columns=out["table"]["columns"])
    pd.testing.assert_frame_equal(got, make_predict(logged, rows, tmp_path), check_exact=True)
