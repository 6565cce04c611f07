"""`make ui` as a person meets it: the address it prints, the runs table and charts in a real browser
(headless Chromium), what the runs are called, and Ctrl-C."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import (
    browse,
    copy_built,
    ctrl_c_on_make,
    free_port,
    live_processes,
    mlflow_runs,
    needs_chromium,
    run,
    store,
    tool_env,
)


def test_runs_are_named_by_their_experiment_and_the_params_that_differ(compared):
    names = {r.data.params["train.impl"]: r.info.run_name for r in mlflow_runs(compared.repo)}
    experiments = compared.queued()
    assert names["nn"] == f"{experiments['nn']} train.impl=nn"
    assert names["autograd"] == f"{experiments['autograd']} train.impl=autograd"
    commit = run(["git", "rev-parse", "HEAD"], compared.repo).stdout.strip()
    assert names["manual"] == commit[:7], "the workspace's run: its commit, and no param differs from it"


def test_a_run_says_where_it_came_from_and_how_to_rerun_it(compared):
    commit = run(["git", "rev-parse", "HEAD"], compared.repo).stdout.strip()
    for r in mlflow_runs(compared.repo):
        tags = r.data.tags
        assert tags["mlflow.source.git.commit"] == commit and tags["mlflow.source.type"] == "LOCAL"
        exp = tags.get("dvc.exp_name")
        assert tags["mlflow.source.name"] == (f"dvc exp run (experiment {exp})" if exp else "dvc repro")
        assert tags["mlflow.note.content"].endswith(f"Re-run it: make rerun RUN={r.info.run_id}")
    kind = store(compared.repo).get_experiment_by_name("softmax-regression").tags["mlflow.experimentKind"]
    assert kind == "custom_model_development", "MLflow's UI opens such an experiment on its runs table"


def add_run_on_other_data(repo: Path) -> str:
    """A run with the best val_log_loss of all, evaluated on other validation rows (another CSV's)."""
    import mlflow
    from mlflow.data.http_dataset_source import HTTPDatasetSource
    from mlflow.data.meta_dataset import MetaDataset

    client = store(repo)
    experiment = client.get_experiment_by_name("softmax-regression").experiment_id
    mlflow.set_tracking_uri(f"sqlite:///{repo / 'mlflow.db'}")
    with mlflow.start_run(experiment_id=experiment, run_name="on-another-csv") as other:
        mlflow.log_metric("val_log_loss", 0.01)
        source = HTTPDatasetSource("https://example.invalid/other.csv")
        mlflow.log_input(MetaDataset(source, name="val", digest="0" * 32), context="validation")
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    return other.info.run_id


class UI:
    """`make ui`'s command on a port of its own, its stderr in a file."""

    def __init__(self, repo: Path, log: Path) -> None:
        self.port = free_port()
        with open(log, "w") as err:  # a file, not a pipe: the server's log never blocks it
            self.process = subprocess.Popen([sys.executable, "-m", "softmax_regression.commands.ui", "--port",
                                             str(self.port)], cwd=repo, env=tool_env(), stdout=subprocess.DEVNULL,
                                            stderr=err)
        self.log = log
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2)
                break
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"mlflow ui did not start: {log.read_text()[-2000:]}") from None
                time.sleep(0.5)

    def address(self) -> str:
        first = self.log.read_text().splitlines()[0]  # printed before the server starts
        assert first.startswith("ui: the runs of 'softmax-regression' evaluated on the workspace's validation rows, "
                                "best val_log_loss first: "), first
        return first.rsplit(": ", 1)[1]


@pytest.fixture(scope="module")
def ui(compared, tmp_path_factory):
    """`make ui` on a copy of `compared`'s store, with a run on other validation rows added."""
    folder = tmp_path_factory.mktemp("ui")
    repo = copy_built(compared.repo, folder / "repo")
    other = add_run_on_other_data(repo)
    server = UI(repo, folder / "ui.log")
    yield server, [r.info.run_name for r in mlflow_runs(repo) if r.info.run_id != other]
    server.process.terminate()
    server.process.wait(timeout=30)


@needs_chromium
def test_make_ui_shows_the_runs_evaluated_on_the_workspaces_validation_rows(ui, tmp_path):
    """In a real browser: the three implementations' runs, not a run on other validation rows however good
    its number, in the "Model training" view. Screenshots stay in the test's temporary folder."""
    server, names = ui
    address = server.address()
    assert address.startswith(f"http://127.0.0.1:{server.port}/#/experiments/") and "searchFilter=datasets.digest" in address
    table = browse(address, tmp_path / "runs.png", [f">{name}<" for name in names])
    for name in names:
        assert f">{name}<" in table, f"run {name!r} not on the page; see {tmp_path}"
    assert ">on-another-csv<" not in table, "a run on other validation rows is not comparable"
    assert "Model training" in table and "Detect issues" not in table


def test_make_ui_runs_one_server_process_and_no_job_runner(ui):
    server, _ = ui
    processes = [command for command in descendants(server.process.pid) if "uvicorn" in command or "huey" in command]
    assert len(processes) == 1 and "uvicorn" in processes[0], processes


@needs_chromium
def test_the_chart_view_draws_the_loss_curves(ui, tmp_path):
    server, _ = ui
    charts = browse(server.address() + "&compareRunsMode=CHART", tmp_path / "charts.png", ["train_loss", "log_loss/val"],
                    size="1600,4000", budget=40000)
    assert "train_loss" in charts and "log_loss/val" in charts, f"no loss charts; see {tmp_path}"


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


def test_ctrl_c_on_make_ui_ends_with_one_line(built, tmp_path):
    """`make ui` in a terminal, then Ctrl-C: the server stops, all that is said after it is one line, and make
    exits 0 with no error line of its own."""
    repo = copy_built(built, tmp_path / "repo")
    port = free_port()
    after = ctrl_c_on_make(repo, tmp_path, ["-m", "softmax_regression.commands.ui", "--port", str(port)],
                           f"http://127.0.0.1:{port}/health")
    assert after == ["ui: stopped", "exit=0"], after
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
