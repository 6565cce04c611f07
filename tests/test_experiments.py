"""Experiments people can compare, under the real tools: a queued grid run two at a time on a fresh store,
the comparison table, run-cache restores, the served model, predict, and the MLflow UI in a real browser."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from softmax_regression.commands.compare import busy_workers
from softmax_regression.commands.predict import predict_csv

from conftest import IRIS, copy_built, free_port, live_processes, run, tool_env


def client(repo: Path):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")


def runs_of(repo: Path) -> list:
    c = client(repo)
    experiment = c.get_experiment_by_name("softmax-regression")
    return c.search_runs([experiment.experiment_id]) if experiment else []


@pytest.fixture(scope="module")
def compared(built, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """A copy after `make run` (its run in the store), then `python -m softmax_regression.commands.compare` (a queue
    worker per experiment): `manual` is the workspace's own params, so that experiment has nothing to run."""
    repo = copy_built(built, tmp_path_factory.mktemp("compare") / "repo")
    result = run([sys.executable, "-m", "softmax_regression.commands.compare"], repo, timeout=600)
    return repo, result


def queued(result: subprocess.CompletedProcess) -> dict[str, str]:
    """{implementation: experiment name} of what `compare` queued."""
    names = re.findall(r"Queued experiment '(\S+)'", result.stderr)
    return {name.split("-", 1)[0]: name for name in names}


def test_compare_prints_one_row_per_implementation(compared):
    repo, result = compared
    lines = result.stdout.strip().splitlines()
    assert lines[0].split() == ["implementation", "final", "train", "loss", "train", "accuracy", "val",
                                "log-loss", "val", "accuracy", "train", "time", "(s)", "MLflow", "run", "id"]
    rows = [line.split() for line in lines[2:]]
    assert [r[0] for r in rows] == ["autograd", "manual", "nn"]
    for column in (1, 3):  # the final objective, the validation log-loss
        values = [float(r[column]) for r in rows]
        assert max(values) - min(values) <= 1e-5, "the three implementations minimise one objective"
    assert all(float(r[4]) >= 0.8 for r in rows)
    run_ids = [r[6] for r in rows]
    assert {r.info.run_id for r in runs_of(repo)} == set(run_ids)
    first = json.loads((repo / "models/mlflow_run.json").read_text())["run_id"]  # what `make run` trained
    assert run_ids[1] == first, "an experiment that changes nothing keeps the run that made its outputs"


def test_compare_returns_only_when_its_queue_workers_have_ended(compared):
    repo, _ = compared
    records = [json.loads(f.read_text()) for f in (repo / ".dvc/tmp/exps/celery").glob("dvc-exp-worker-*.json")]
    assert records, "the comparison ran no queue worker"
    for info in records:
        assert info["returncode"] is not None, info
        with pytest.raises(ProcessLookupError):
            os.kill(info["pid"], 0)


def test_workers_side_by_side_make_exactly_one_finished_run_per_experiment_that_trains(compared):
    repo, _ = compared
    runs = runs_of(repo)
    names = sorted(r.data.tags.get("dvc.exp_name", "") for r in runs)
    assert len(runs) == 3 and names[0] == "" and all(name.startswith(("autograd-", "nn-")) for name in names[1:]), names
    assert {r.data.params["train.impl"] for r in runs if r.data.tags.get("dvc.exp_name")} == {"autograd", "nn"}
    assert all(r.info.status == "FINISHED" and {"val_log_loss", "test_accuracy"} <= set(r.data.metrics) for r in runs)
    for r in runs:  # queued runs happen in a temporary copy; their artifacts must live under the real root
        assert r.info.artifact_uri.startswith((repo / "mlruns").as_uri()), r.info.artifact_uri
        paths = {a.path for a in client(repo).list_artifacts(r.info.run_id, "weights")}
        assert "weights/coefficients.png" in paths
        assert "evaluation/confusion.png" in {a.path for a in client(repo).list_artifacts(r.info.run_id,
                                                                                           "evaluation")}
        assert len(client(repo).get_metric_history(r.info.run_id, "train_loss")) == 250
        assert len(client(repo).get_metric_history(r.info.run_id, "log_loss/val")) == 26  # every 10, and the end
        assert not client(repo).get_metric_history(r.info.run_id, "log_loss/test"), "no test rows in training"
        assert r.data.tags["dvc.raw_data"] == "data/Iris.csv" and len(r.data.tags["dvc.raw_data_md5"]) == 32
        inputs = client(repo).get_run(r.info.run_id).inputs.dataset_inputs
        assert inputs and inputs[0].dataset.digest and inputs[0].tags[0].value == "training"


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


def test_two_processes_on_a_new_store_make_one_experiment(tmp_path):
    """Queue workers start together on a repository with no MLflow store yet: the store and the experiment
    are created once, under a file lock, and both processes get the same experiment."""
    (tmp_path / ".dvc").mkdir()
    code = ("from softmax_regression.tracking import runs as tracking; tracking.connect(); "
            "print(tracking.experiment_id('softmax-regression'))")
    processes = [subprocess.Popen([sys.executable, "-c", code], cwd=tmp_path, env=tool_env(DVC_ROOT=str(tmp_path)),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    ids = []
    for process in processes:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        ids.append(out.strip().splitlines()[-1])
    assert ids[0] == ids[1]
    experiments = [e for e in client(tmp_path).search_experiments() if e.name == "softmax-regression"]
    assert len(experiments) == 1 and experiments[0].artifact_location == (tmp_path / "mlruns").as_uri()


def test_the_run_id_is_a_column_of_exp_show(compared):
    repo, _ = compared
    shown = run(["dvc", "exp", "show", "--csv"], repo).stdout
    header = shown.splitlines()[0].split(",")
    assert "run_id" in header, header
    column = header.index("run_id")
    ids = {line.split(",")[column] for line in shown.splitlines()[1:]}
    assert {r.info.run_id for r in runs_of(repo)} <= ids


def test_plots_diff_overlays_the_loss_of_each_experiment(compared):
    repo, result = compared
    names = sorted(queued(result).values())
    assert len(names) == 3
    plots = json.loads(run(["dvc", "plots", "diff", *names, "--json"], repo).stdout)["data"]
    curves = plots["Training loss"][0]["content"]["data"]["values"]
    assert {point["rev"] for point in curves} == set(names)
    assert len(curves) == 3 * 250


def test_a_grid_queues_one_experiment_per_value(compared):
    repo, _ = compared
    run(["dvc", "exp", "run", "--queue", "-S", "train.lr=0.05,0.1,0.2"], repo)
    status = run(["dvc", "queue", "status"], repo).stdout
    assert status.count("Queued") == 3, status
    run(["dvc", "queue", "remove", "--queued"], repo)


def logged_runs(result: subprocess.CompletedProcess) -> dict[str, str]:
    """{implementation: MLflow run id} from the table `compare` printed."""
    return {row.split()[0]: row.split()[-1] for row in result.stdout.strip().splitlines()[2:]}


def logged_weights(repo: Path, run_id: str, folder: Path) -> str:
    """The run's weights as MLflow keeps them: what `make predict --model` reads."""
    return client(repo).download_artifacts(run_id, "weights/model.safetensors", str(folder / run_id))


def test_every_implementations_model_answers_as_make_predict(compared, tmp_path):
    """`mlflow models predict` on a CSV (one real round trip: the three models share one pyfunc), and each
    implementation's logged model loaded in-process: the same table as `make predict`'s on the run's
    weights, to the bit (its `predict_csv`, here in-process: the command itself is the next test's)."""
    import mlflow

    repo, result = compared
    rows = pd.read_csv(IRIS).sample(n=7, random_state=1)
    rows[["PetalWidthCm", "SepalLengthCm", "Id", "PetalLengthCm", "SepalWidthCm"]].to_csv(tmp_path / "in.csv",
                                                                                         index=False)
    env = tool_env(MLFLOW_TRACKING_URI=f"sqlite:///{repo / 'mlflow.db'}")
    mlflow.set_tracking_uri(f"sqlite:///{repo / 'mlflow.db'}")
    for i, (impl, run_id) in enumerate(sorted(logged_runs(result).items())):
        r = client(repo).get_run(run_id)
        assert r.data.params["train.impl"] == impl
        predict_csv(logged_weights(repo, run_id, tmp_path), str(tmp_path / "in.csv"), str(tmp_path / "expected.csv"))
        expected = pd.read_csv(tmp_path / "expected.csv")
        if i == 0:
            out = run(["mlflow", "models", "predict", "-m", f"runs:/{run_id}/model", "-i",
                       str(tmp_path / "in.csv"), "-t", "csv", "--env-manager", "local"], repo, env=env)
            got = pd.DataFrame(json.loads(out.stdout.strip().splitlines()[-1])["predictions"])
        else:
            got = mlflow.pyfunc.load_model(f"runs:/{run_id}/model").predict(pd.read_csv(tmp_path / "in.csv"))
        pd.testing.assert_frame_equal(got.reset_index(drop=True), expected, check_exact=True, obj=impl)
        assert (got["predicted"].to_numpy() == rows["Species"].to_numpy()).mean() >= 6 / 7


def test_predict_applies_the_model_to_a_new_csv(compared, tmp_path):
    """`make predict` with the workspace's model (`models/model.safetensors`, the `manual` run's)."""
    repo, _ = compared
    table = pd.read_csv(IRIS).sample(frac=1, random_state=0)
    shuffled = table[["Species", "PetalWidthCm", "Id", "SepalLengthCm", "PetalLengthCm", "SepalWidthCm"]]
    shuffled.assign(extra="ignored").to_csv(tmp_path / "new.csv", index=False)
    out = tmp_path / "pred.csv"
    run([sys.executable, "-m", "softmax_regression.commands.predict", str(tmp_path / "new.csv"), "--output", str(out)], repo)
    predictions = pd.read_csv(out)
    assert list(predictions.columns) == ["predicted", "p(Iris-setosa)", "p(Iris-versicolor)", "p(Iris-virginica)"]
    assert np.allclose(predictions.iloc[:, 1:].sum(axis=1), 1, atol=1e-5)
    assert (predictions["predicted"].to_numpy() == shuffled["Species"].to_numpy()).mean() >= 0.9

    shuffled.drop(columns="PetalWidthCm").to_csv(tmp_path / "short.csv", index=False)
    bad = run([sys.executable, "-m", "softmax_regression.commands.predict", str(tmp_path / "short.csv")], repo, check=False)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().startswith("error: ") and "feature column 'PetalWidthCm' of the model is missing" \
        in bad.stderr


CHROMIUM = shutil.which("chromium")


def browse(url: str, out: Path, expect: list[str], size: str = "1600,1000", attempts: int = 4,
           budget: int = 20000) -> str:
    """What a person sees at `url`: headless Chromium (the Debian package) saves a screenshot to `out` and
    returns the rendered HTML, once every text in `expect` is in it (the page fills in as its requests
    return: each look waits `budget` ms of the page's time longer, up to `attempts` looks); else the last
    look's HTML."""
    for attempt in range(1, attempts + 1):
        flags = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--hide-scrollbars",
                 f"--window-size={size}", f"--virtual-time-budget={budget * attempt}"]
        dom = subprocess.run([CHROMIUM, *flags, f"--screenshot={out}", "--dump-dom", url], capture_output=True,
                             text=True, timeout=300, check=True).stdout
        if all(text in dom for text in expect) or attempt == attempts:
            out.with_suffix(".html").write_text(dom)
            return dom
    raise AssertionError("unreachable")


@pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"),
                    reason="Chromium is not installed (apt-get install -y chromium); CI installs it")
def test_make_ui_opens_on_the_runs_with_names_that_tell_them_apart(compared, tmp_path):
    """`make ui` on a store with the three implementations' runs, looked at in a real browser. Screenshots
    stay in the test's temporary folder."""
    assert CHROMIUM, "CI must have Chromium (.ci/run installs it)"
    repo, result = compared
    runs = runs_of(repo)
    names = {r.data.params["train.impl"]: r.info.run_name for r in runs}
    experiments = queued(result)
    assert names["nn"] == f"{experiments['nn']} train.impl=nn"
    assert names["autograd"] == f"{experiments['autograd']} train.impl=autograd"
    commit = run(["git", "rev-parse", "HEAD"], repo).stdout.strip()
    assert names["manual"] == commit[:7], "the workspace's run: its commit, and no param differs from it"
    for r in runs:
        tags = r.data.tags
        assert tags["mlflow.source.git.commit"] == commit and tags["mlflow.source.type"] == "LOCAL"
        exp = tags.get("dvc.exp_name")
        assert tags["mlflow.source.name"] == (f"dvc exp run (experiment {exp})" if exp else "dvc repro")
        assert tags["mlflow.note.content"].endswith(f"Re-run it: make rerun RUN={r.info.run_id}")
    kind = client(repo).get_experiment_by_name("softmax-regression").tags["mlflow.experimentKind"]
    assert kind == "custom_model_development"

    port = free_port()
    log = tmp_path / "ui.log"
    with open(log, "w") as err:  # a file, not a pipe: the server's log never blocks it
        process = subprocess.Popen([sys.executable, "-m", "softmax_regression.commands.ui", "--port", str(port)], cwd=repo,
                                   env=tool_env(), stdout=subprocess.DEVNULL, stderr=err)
    try:
        serve_ready(f"http://127.0.0.1:{port}/health", process, log)
        first = log.read_text().splitlines()[0]  # the address, printed before the server starts
        address = first.split(": ", 2)[-1]
        assert first.startswith("ui: ") and address.startswith(f"http://127.0.0.1:{port}/#/experiments/") \
            and "workflowType=machine_learning" in address, first
        table = browse(address, tmp_path / "runs.png", [f">{name}<" for name in names.values()])
        for name in names.values():
            assert f">{name}<" in table, f"run {name!r} not on the page; see {tmp_path}"
        assert "Model training" in table and "val_log_loss" in table and "Detect issues" not in table
        charts = browse(address + "&compareRunsMode=CHART", tmp_path / "charts.png", ["train_loss", "log_loss/val"],
                        size="1600,4000", budget=40000)  # at 20 s of page time the charts were not drawn yet, at 40 s they were
        assert "train_loss" in charts and "log_loss/val" in charts, f"no loss charts; see {tmp_path}"
        server = descendants(process.pid)
        assert len(server) == 1 and "uvicorn" in server[0], f"one server process and no MLflow job runner: {server}"
    finally:
        process.terminate()
        process.wait(timeout=30)


def descendants(pid: int) -> list[str]:
    """The command lines of the live processes under `pid`, children and theirs."""
    processes = live_processes()
    found, frontier = [], [pid]
    while frontier:
        below = frontier.pop()
        children = [child for child, (parent, _) in processes.items() if parent == below]
        found += children
        frontier += children
    return [processes[child][1] for child in found]


def serve_ready(url: str, process: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"mlflow ui did not start: {log.read_text()[-2000:]}") from None
            time.sleep(0.5)


class _Queue:
    def __init__(self, reply: bytes):
        self.reply = reply

    def worker_status(self):
        from kombu.utils.json import loads

        return loads(self.reply)  # what kombu's filesystem transport does with a reply file


def test_a_worker_reply_read_before_it_is_written_counts_as_no_answer():
    """kombu reads the workers' reply files without the writer's lock (celery/kombu#1551): an empty or
    half-written one raised a JSONDecodeError out of `make compare` on a loaded machine. It is no answer."""
    assert busy_workers(_Queue(b'{"w1": [{"id": "t"}], "w2": []}')) == 1
    assert busy_workers(_Queue(b"")) == 0
    assert busy_workers(_Queue(b'{"w1": [{"id"')) == 0
