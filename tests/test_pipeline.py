"""End to end: the real `dvc repro` and `dvc exp run` in a copy of the repository, then what they left.

The files, `dvc metrics show`, and the MLflow run: params, the loss history, metrics, artifacts, the model.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from safetensors.torch import load_file

from softmax_regression.runtime import cpu_kernels
from softmax_regression.training.model import predict_proba, read_model

from conftest import ROOT, run, run_id_of, store, tool_env

OUTPUTS = ["data/interim/dataset.parquet", "data/split/train.parquet", "data/split/val.parquet",
           "data/split/test.parquet",
           "data/split/classes.json", "models/model.safetensors", "models/coefficients.csv",
           "models/mlflow_run.json", "metrics/train.json", "metrics/eval.json", "reports/per_class.json",
           "plots/train_loss.csv", "plots/log_loss.csv", "plots/coefficients.png", "plots/confusion.png",
           "plots/confusion.csv"]


def mlflow_client(repo):
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{repo / 'mlflow.db'}")
    return mlflow, store(repo)


def test_repro_writes_every_output_and_a_good_model(repo):
    for name in OUTPUTS:
        assert (repo / name).is_file(), f"{name} missing after dvc repro"
    classes = json.loads((repo / "data/split/classes.json").read_text())
    assert classes == {"label": "Species",
                       "classes": {"Iris-setosa": 0, "Iris-versicolor": 1, "Iris-virginica": 2}}
    evaluation = json.loads((repo / "metrics/eval.json").read_text())
    assert list(evaluation) == ["val_accuracy", "val_log_loss", "val_macro_f1", "test_accuracy", "test_log_loss",
                                "test_macro_f1"]
    assert evaluation["test_accuracy"] >= 0.9 and evaluation["val_accuracy"] >= 0.8
    per_class = json.loads((repo / "reports/per_class.json").read_text())
    for part in ("val", "test"):  # 20 % of 50 rows of each class in each
        assert [m["support"] for m in per_class[part]["per_class"].values()] == [10, 10, 10]
        confusion = per_class[part]["confusion_matrix"]
        correct = sum(confusion[c][c] for c in confusion)
        assert correct / 30 == pytest.approx(evaluation[f"{part}_accuracy"])
    sizes = {part: len(pd.read_parquet(repo / f"data/split/{part}.parquet")) for part in ("train", "val", "test")}
    assert sizes == {"train": 90, "val": 30, "test": 30}  # as the README says
    losses = (repo / "plots/train_loss.csv").read_text().splitlines()
    assert losses[0] == "iteration,train_loss" and len(losses) == 1 + 250
    model = read_model(repo / "models/model.safetensors")
    assert model.W.shape == (4, 3) and model.features == ["SepalLengthCm", "SepalWidthCm", "PetalLengthCm",
                                                          "PetalWidthCm"]
    assert set(load_file(repo / "models/model.safetensors")) == {"W", "b", "mean", "scale"}


def test_metrics_show_reports_train_validation_and_test(repo):
    shown = json.loads(run(["dvc", "metrics", "show", "--json"], repo).stdout)
    workspace = shown[""]["data"]  # DVC's key for the workspace
    evaluation = workspace["metrics/eval.json"]["data"]
    assert evaluation["test_accuracy"] >= 0.9 and {"val_log_loss", "test_log_loss", "val_macro_f1"} <= set(evaluation)
    assert workspace["metrics/train.json"]["data"]["train_accuracy"] >= 0.9


def test_second_repro_does_nothing(repo):
    before = {name: (repo / name).read_bytes() for name in OUTPUTS}
    result = run(["dvc", "repro"], repo)
    assert "didn't change, skipping" in result.stdout and "Running stage" not in result.stdout
    assert before == {name: (repo / name).read_bytes() for name in OUTPUTS}


def test_mlflow_run_holds_params_history_metrics_artifacts_and_model(repo):
    mlflow, client = mlflow_client(repo)
    run_id = run_id_of(repo)
    found = client.get_run(run_id)
    assert found.info.status == "FINISHED"
    commit = run(["git", "rev-parse", "HEAD"], repo).stdout.strip()
    assert found.info.run_name == commit[:7], "outside an experiment: the commit, and no param differs from it"
    params = found.data.params
    assert params["train.impl"] == "manual" and params["train.lr"] == "0.1" and params["train.l2"] == "0.01"
    assert params["ingest.label"] == "Species" and params["split.test_size"] == "0.2"
    assert found.data.tags["mlflow.source.git.commit"] == run(["git", "rev-parse", "HEAD"], repo).stdout.strip()
    if cpu_kernels():  # held at AVX2, even on a CPU with AVX-512
        assert found.data.tags["cpu_kernels"] == "AVX2"

    history = client.get_metric_history(run_id, "train_loss")
    assert sorted(m.step for m in history) == list(range(250))
    csv_losses = [float(line.split(",")[1]) for line in
                  (repo / "plots/train_loss.csv").read_text().splitlines()[1:]]
    assert [m.value for m in sorted(history, key=lambda m: m.step)] == pytest.approx(csv_losses, rel=1e-12)

    metrics = found.data.metrics
    evaluation = json.loads((repo / "metrics/eval.json").read_text())
    for key in ("val_accuracy", "val_log_loss", "val_macro_f1", "test_accuracy", "test_log_loss", "test_macro_f1"):
        assert metrics[key] == evaluation[key], key
    assert metrics["train_accuracy"] >= 0.9

    artifacts = {a.path for a in client.list_artifacts(run_id, "weights")}
    assert artifacts == {"weights/model.safetensors", "weights/coefficients.csv", "weights/coefficients.png"}
    coefficients = mlflow.artifacts.load_text(f"runs:/{run_id}/weights/coefficients.csv").splitlines()
    assert coefficients[0] == "feature,Iris-setosa,Iris-versicolor,Iris-virginica,mean,scale"
    assert [row.split(",")[0] for row in coefficients[1:]] == ["SepalLengthCm", "SepalWidthCm",
                                                              "PetalLengthCm", "PetalWidthCm", "(bias)"]


def test_logged_model_takes_named_columns_and_answers_with_class_names(repo):
    """The MLflow model matches columns by name (shuffled, with an extra one) and answers as `make predict`."""
    mlflow, _ = mlflow_client(repo)
    model = read_model(repo / "models/model.safetensors")
    rows = pd.DataFrame([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]], columns=model.features)
    shuffled = rows[["PetalWidthCm", "SepalLengthCm", "PetalLengthCm", "SepalWidthCm"]].assign(note="x")
    loaded = mlflow.pyfunc.load_model(f"runs:/{run_id_of(repo)}/model")
    served = loaded.predict(shuffled)
    assert list(served.columns) == ["predicted", "p(Iris-setosa)", "p(Iris-versicolor)", "p(Iris-virginica)"]
    assert served["predicted"].tolist() == ["Iris-setosa", "Iris-virginica", "Iris-versicolor"]
    P = predict_proba(model, torch.tensor(rows.to_numpy())).double().numpy()  # independent of the table code
    np.testing.assert_array_equal(served.iloc[:, 1:].to_numpy(), P)
    signature = loaded.metadata.get_input_schema().input_names()
    assert signature == model.features


def test_exp_run_with_another_implementation_and_optimizer_retrains_only_train_and_evaluate(repo):
    """`nn` with `lbfgs` in one experiment: the implementation and the optimizer are params like any other."""
    first = run_id_of(repo)
    gd = json.loads((repo / "metrics/train.json").read_text())
    result = run(["dvc", "exp", "run", "-S", "train.impl=nn", "-S", "train.optimizer=lbfgs", "-S", "train.tol=1e-05",
                  "-S", "train.iterations=500"], repo, env=tool_env())
    ran = [line for line in result.stdout.splitlines() if line.startswith("Running stage")]
    assert ran == ["Running stage 'train':", "Running stage 'evaluate':"], result.stdout

    lbfgs = json.loads((repo / "metrics/train.json").read_text())
    assert lbfgs["converged"] == 1 and lbfgs["iterations_run"] < 500
    assert lbfgs["train_loss_final"] < gd["train_loss_final"] - 0.01, "250 gd steps stop short of the optimum"
    second = run_id_of(repo)
    assert second != first
    _, client = mlflow_client(repo)
    found = client.get_run(second)
    assert found.data.params["train.impl"] == "nn" and found.data.params["train.optimizer"] == "lbfgs"
    assert found.info.status == "FINISHED" and "test_accuracy" in found.data.metrics
    assert found.data.tags.get("dvc.exp_name"), "the DVC experiment name is a tag of the run"
    commit = run(["git", "rev-parse", "HEAD"], repo).stdout.strip()
    assert found.info.run_name == (f"{found.data.tags['dvc.exp_name']} train.impl=nn train.optimizer=lbfgs "
                                   f"train.iterations=500 train.tol=1e-05"), "the params that differ, in file order"
    assert found.data.tags["mlflow.note.content"] == (
        f"DVC experiment {found.data.tags['dvc.exp_name']} of commit {commit[:7]} with train.impl=nn "
        f"train.optimizer=lbfgs train.iterations=500 train.tol=1e-05. Re-run it: make rerun RUN={found.info.run_id}")

    shown = json.loads(run(["dvc", "exp", "show", "--json"], repo).stdout)
    assert "nn" in json.dumps(shown)
    plots = json.loads(run(["dvc", "plots", "show", "--json"], repo).stdout)["data"]
    assert sorted(plots) == ["Confusion matrix (test set)",
                             "Log-loss on train and validation rows (every train.eval_every iterations)",
                             "Training loss", "plots/coefficients.png", "plots/confusion.png"]


def test_two_ranks_through_exp_run_give_the_numbers_of_one(repo):
    """`dvc exp run -S train.world_size=2` against the module's first run (manual, gd, one process), read
    back from MLflow: the loss at every iteration and the weights within 1e-5, one new run."""
    mlflow, client = mlflow_client(repo)
    experiment = client.get_experiment_by_name("softmax-regression").experiment_id
    runs = client.search_runs([experiment], order_by=["attributes.start_time ASC"])
    first = runs[0]
    assert first.data.params["train.world_size"] == "1" and first.data.params["train.optimizer"] == "gd"
    result = run(["dvc", "exp", "run", "-S", "train.world_size=2", "-S", "train.impl=manual",
                  "-S", "train.optimizer=gd", "-S", "train.tol=0", "-S", "train.iterations=250"], repo)
    assert "on 2 ranks" in result.stdout

    after = client.search_runs([experiment], order_by=["attributes.start_time ASC"])
    assert len(after) == len(runs) + 1, "one MLflow run for two ranks"
    two = client.get_run(run_id_of(repo))
    assert two.info.status == "FINISHED" and two.data.params["train.world_size"] == "2"

    def losses(run_id):
        history = client.get_metric_history(run_id, "train_loss")
        return [m.value for m in sorted(history, key=lambda m: m.step)]

    assert len(losses(two.info.run_id)) == 250
    np.testing.assert_allclose(losses(two.info.run_id), losses(first.info.run_id), rtol=0, atol=1e-5)
    weights = {}
    for found in (first, two):
        path = mlflow.artifacts.download_artifacts(f"runs:/{found.info.run_id}/weights/model.safetensors")
        weights[found.info.run_id] = read_model(path)
    a, b = weights[first.info.run_id], weights[two.info.run_id]
    for field in ("W", "b"):
        torch.testing.assert_close(getattr(b, field), getattr(a, field), rtol=0, atol=1e-5)
    torch.testing.assert_close(b.mean, a.mean, rtol=1e-12, atol=0)
    assert two.data.metrics["test_accuracy"] == first.data.metrics["test_accuracy"]
    final = [r.data.metrics["train_loss_final"] for r in (first, two)]
    assert final[1] == pytest.approx(final[0], abs=1e-6)
    inputs = [client.get_run(r.info.run_id).inputs.dataset_inputs[0].dataset.digest for r in (first, two)]
    assert inputs[0] == inputs[1], "the same training file, whatever the number of ranks reading it"


def test_training_again_makes_a_new_run_and_evaluating_again_a_linked_one(repo):
    """Last: back to the params of the first run, then evaluate the same model a second time."""
    _, client = mlflow_client(repo)
    runs_before = len(client.search_runs([client.get_experiment_by_name("softmax-regression").experiment_id]))
    back = run(["dvc", "exp", "run", "-S", "train.world_size=1"], repo)  # the others set back by the test above
    assert yaml.safe_load((repo / "params.yaml").read_text()) == yaml.safe_load((ROOT / "params.yaml").read_text())
    # train has outputs DVC does not cache, so DVC never restores it from its run cache: it trains again
    assert "Running stage 'train'" in back.stdout
    trained = run_id_of(repo)
    before = client.get_run(trained).data.metrics

    result = run(["dvc", "repro", "-f", "-s", "evaluate"], repo)  # evaluate again, same model
    assert f"a re-evaluation of run {trained}" in result.stdout
    runs = client.search_runs([client.get_experiment_by_name("softmax-regression").experiment_id])
    assert len(runs) == runs_before + 2
    again = [r for r in runs if r.data.tags.get("trained_by_run") == trained]
    assert len(again) == 1 and again[0].info.status == "FINISHED"
    commit = run(["git", "rev-parse", "HEAD"], repo).stdout.strip()[:7]
    assert again[0].data.tags["mlflow.note.content"] == (
        f"dvc repro of commit {commit} with the baseline's params. Re-run it: make rerun RUN={again[0].info.run_id}"
    ), "its params, read back from the training run as text, are the baseline's"
    assert again[0].data.metrics["test_accuracy"] == before["test_accuracy"]
    assert client.get_run(trained).data.metrics == before, "the training run keeps its own numbers"
