"""`make compare` under the real tools: three queued experiments run side by side, one table of their numbers,
from a workspace whose run is in another store (`compared`, conftest); and DVC's views of the experiments."""

from __future__ import annotations

import json
import os
import re
import sys

import pandas as pd
import pytest

from softmax_regression.commands.predict import predict_csv

from conftest import IRIS, logged_weights, mlflow_runs, run, store, tool_env


def test_the_table_has_one_row_per_implementation_at_one_objective(compared):
    header = compared.stdout.strip().splitlines()[1]
    assert re.split(r"\s{2,}", header) == ["implementation", "final train loss", "train accuracy", "val log-loss",
                                           "val accuracy", "train time (s)", "MLflow run id"]
    rows = compared.table()
    assert [row[0] for row in rows] == ["autograd", "manual", "nn"]
    for column in (1, 3):  # the final objective, the validation log-loss
        values = [float(row[column]) for row in rows]
        assert max(values) - min(values) <= 1e-5, "the three implementations minimise one objective"
    assert all(float(row[4]) >= 0.8 for row in rows)


def test_the_table_says_which_params_the_three_shared(compared):
    first = compared.stdout.strip().splitlines()[0]
    assert first.startswith("params: ingest.path=data/Iris.csv split.val_size=0.2 split.seed=42 "
                            "train.optimizer=gd train.iterations=250 train.lr=0.1 train.l2=0.01 "), first
    assert "train.impl" not in first and "train.world_size=1" in first


def test_a_row_whose_run_is_in_another_store_is_reported_not_fatal(compared):
    """The workspace's outputs (the `manual` experiment's) were made by the committed run, not in this store."""
    committed = json.loads((compared.repo / "models/mlflow_run.json").read_text())["run_id"]
    rows = {row[0]: row for row in compared.table()}
    assert rows["manual"][6] == f"{committed} (not in this store)" and rows["manual"][5] == "-"
    assert "compare: manual-" in compared.stderr and f"MLflow run {committed} is not in sqlite:///" in compared.stderr
    assert float(rows["manual"][1]) == pytest.approx(float(rows["nn"][1]), abs=1e-5), "its numbers are DVC's"
    trained = {r.info.run_id for r in mlflow_runs(compared.repo) if r.data.tags.get("dvc.exp_name")}
    assert {rows["autograd"][6], rows["nn"][6]} == trained
    assert float(rows["nn"][5]) > 0, "a run in the store gives its train time"


def test_compare_returns_only_when_its_queue_workers_have_ended(compared):
    records = [json.loads(f.read_text()) for f in (compared.repo / ".dvc/tmp/exps/celery").glob("dvc-exp-worker-*.json")]
    assert records, "the comparison ran no queue worker"
    for info in records:
        assert info["returncode"] is not None, info
        with pytest.raises(ProcessLookupError):
            os.kill(info["pid"], 0)


def experiment_runs(compared) -> list:
    return [r for r in mlflow_runs(compared.repo) if r.data.tags.get("dvc.exp_name")]


def test_each_experiment_that_trains_makes_exactly_one_finished_run(compared):
    runs = experiment_runs(compared)
    assert sorted(r.data.tags["dvc.exp_name"] for r in runs) == sorted(
        name for impl, name in compared.queued().items() if impl != "manual")
    assert {r.data.params["train.impl"] for r in runs} == {"autograd", "nn"}
    assert all(r.info.status == "FINISHED" and {"val_log_loss", "test_accuracy"} <= set(r.data.metrics) for r in runs)


def test_queued_runs_keep_their_artifacts_under_the_repository(compared):
    """A queued experiment runs in a temporary copy: its artifacts must live under the real root."""
    for r in experiment_runs(compared):
        assert r.info.artifact_uri.startswith((compared.repo / "mlruns").as_uri()), r.info.artifact_uri
        assert "weights/coefficients.png" in {a.path for a in store(compared.repo).list_artifacts(r.info.run_id, "weights")}
        evaluation = store(compared.repo).list_artifacts(r.info.run_id, "evaluation")
        assert "evaluation/confusion.png" in {a.path for a in evaluation}


def test_a_run_holds_the_loss_every_iteration_and_the_log_loss_curves_on_training_and_validation_rows(compared):
    client = store(compared.repo)
    for r in experiment_runs(compared):
        assert len(client.get_metric_history(r.info.run_id, "train_loss")) == 250
        assert len(client.get_metric_history(r.info.run_id, "log_loss/val")) == 26  # every 10, and the end
        assert not client.get_metric_history(r.info.run_id, "log_loss/test"), "no test rows in training"


def test_a_run_records_its_data(compared):
    for r in experiment_runs(compared):
        assert r.data.tags["dvc.raw_data"] == "data/Iris.csv" and len(r.data.tags["dvc.raw_data_md5"]) == 32
        inputs = store(compared.repo).get_run(r.info.run_id).inputs.dataset_inputs
        assert [i.tags[0].value for i in inputs] == ["training", "validation"] and all(i.dataset.digest for i in inputs)


@pytest.mark.parametrize(("args", "message"), [
    (["-S", "train.lr"], ("`dvc exp run --queue -n autograd-* -S train.impl=autograd -S train.lr` failed: Error "
                          "parsing override 'train.lr'")),
    (["-S", "nosuch.key=1"], ("`dvc exp run --queue -n autograd-* -S train.impl=autograd -S nosuch.key=1` failed: "
                              "Invalid `--set-param` value: Could not override 'nosuch.key': Key 'nosuch' is not in "
                              "struct")),
])
def test_a_bad_setting_is_one_line_and_queues_nothing(repo, args, message):
    """A setting DVC cannot apply stops `make compare` at the first experiment, before it is queued (`repo`:
    the module's copy after `make run`, which these two leave as they found it)."""
    result = run([sys.executable, "-m", "softmax_regression.commands.compare", *args], repo, check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and re.fullmatch(re.escape(f"error: {message}").replace(r"\*", r"\d{4}-\d{6}"), lines[0]), lines
    assert "Queued" not in run(["dvc", "queue", "status"], repo).stdout


def test_the_run_id_is_a_column_of_exp_show(compared):
    shown = run(["dvc", "exp", "show", "--csv"], compared.repo).stdout
    header = shown.splitlines()[0].split(",")
    column = header.index("run_id")
    ids = {line.split(",")[column] for line in shown.splitlines()[1:]}
    assert {r.info.run_id for r in experiment_runs(compared)} <= ids


def test_plots_diff_overlays_the_loss_of_each_experiment(compared):
    names = sorted(compared.queued().values())
    assert len(names) == 3
    plots = json.loads(run(["dvc", "plots", "diff", *names, "--json"], compared.repo).stdout)["data"]
    curves = plots["Training loss"][0]["content"]["data"]["values"]
    assert {point["rev"] for point in curves} == set(names)
    assert len(curves) == 3 * 250


def test_a_grid_queues_one_experiment_per_value(repo):
    run(["dvc", "exp", "run", "--queue", "-S", "train.lr=0.05,0.1,0.2"], repo)
    status = run(["dvc", "queue", "status"], repo).stdout
    assert status.count("Queued") == 3, status
    run(["dvc", "queue", "remove", "--queued"], repo)


def test_every_implementations_logged_model_answers_as_make_predict(compared, tmp_path):
    """`mlflow models predict` on a CSV (one real round trip: the models share one pyfunc), and each
    implementation's logged model loaded in-process: the same table as `make predict`'s on the run's weights."""
    import mlflow

    repo = compared.repo
    rows = pd.read_csv(IRIS).sample(n=7, random_state=1)
    rows[["PetalWidthCm", "SepalLengthCm", "Id", "PetalLengthCm", "SepalWidthCm"]].to_csv(tmp_path / "in.csv",
                                                                                         index=False)
    mlflow.set_tracking_uri(f"sqlite:///{repo / 'mlflow.db'}")
    for i, r in enumerate(sorted(mlflow_runs(repo), key=lambda r: r.data.params["train.impl"])):
        impl, run_id = r.data.params["train.impl"], r.info.run_id
        predict_csv(logged_weights(repo, run_id, tmp_path), tmp_path / "in.csv", tmp_path / "expected.csv")
        expected = pd.read_csv(tmp_path / "expected.csv")
        if i == 0:
            out = run(["mlflow", "models", "predict", "-m", f"runs:/{run_id}/model", "-i", str(tmp_path / "in.csv"),
                       "-t", "csv", "--env-manager", "local"], repo,
                      env=tool_env(MLFLOW_TRACKING_URI=f"sqlite:///{repo / 'mlflow.db'}"))
            got = pd.DataFrame(json.loads(out.stdout.strip().splitlines()[-1])["predictions"])
        else:
            got = mlflow.pyfunc.load_model(f"runs:/{run_id}/model").predict(pd.read_csv(tmp_path / "in.csv"))
        pd.testing.assert_frame_equal(got.reset_index(drop=True), expected, check_exact=True, obj=impl)
        assert (got["predicted"].to_numpy() == rows["Species"].to_numpy()).mean() >= 6 / 7


def test_make_exps_shows_what_tells_the_experiments_apart_in_120_columns(compared):
    result = run([sys.executable, "-m", "softmax_regression.commands.experiments"], compared.repo)
    lines = result.stdout.strip().splitlines()
    assert re.split(r"\s{2,}", lines[0]) == ["experiment", "impl", "optimizer", "lr", "l2", "val log-loss",
                                             "val accuracy", "MLflow run id"]
    assert max(len(line) for line in lines) <= 120, max(len(line) for line in lines)
    rows = {row[0]: row for row in (re.split(r"\s{2,}", line) for line in lines[2:])}
    for impl, name in compared.queued().items():
        assert rows[name][1:3] == [impl, "gd"] and float(rows[name][5]) == pytest.approx(0.3178, abs=1e-4)
    trained = {r.data.tags["dvc.exp_name"]: r.info.run_id for r in experiment_runs(compared)}
    assert all(rows[name][7] == run_id for name, run_id in trained.items())
