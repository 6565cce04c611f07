"""`make tune` under the real tools, on tiny budgets: the same sequence of trials for the same seed whatever
order they finish in, a search killed and resumed, a finished one run again, one MLflow run per trial, the
winner a real DVC experiment with the trial's bits, `make rerun` of a trial, no test row read, a changed space
or data refused, and two machines sharing one study in a real PostgreSQL."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from conftest import (
    copy_built,
    free_port,
    logged_weights,
    mlflow_runs,
    run,
    serve,
    store,
    tool_env,
)

TUNE = [sys.executable, "-m", "softmax_regression.commands.tune"]
SPACE = {"train.lr": {"low": 0.02, "high": 1.0, "log": True}, "train.l2": {"low": 1e-4, "high": 0.1, "log": True},
         "train.optimizer": ["gd", "lbfgs"]}
TRIALS, PARALLEL = 4, 2


def with_study(repo: Path, study: str = "t", **changes) -> Path:
    """The repository with a tune: section for a small study, committed (make rerun needs a clean workspace)."""
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["tune"] = {"study": study, "seed": 3, "trials": TRIALS, "parallel": PARALLEL, "metric": "val_log_loss",
                      "space": SPACE} | changes
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["git", "commit", "-qam", f"study {study}"], repo)
    return repo


def sequence(storage: str, study: str) -> dict[int, dict]:
    """Each finished trial's params, by number."""
    found = optuna.load_study(study_name=study, storage=storage)
    return {t.number: t.params for t in found.get_trials(states=(TrialState.COMPLETE,))}


# Reads of the test rows fail in every process of ours but DVC's (which hashes every output): sitecustomize runs
# at the start of each Python process, the fork server and its workers included.
NO_TEST_ROWS = """
import builtins, sys
if not sys.argv or not sys.argv[0].endswith("dvc"):
    import pyarrow.parquet as pq

    def guard(call):
        def guarded(*args, **kwargs):
            if any("test.parquet" in str(a) for a in [*args, *kwargs.values()]):
                raise RuntimeError("the search read the test rows")
            return call(*args, **kwargs)
        return guarded

    builtins.open = guard(builtins.open)
    pq.ParquetFile.__init__ = guard(pq.ParquetFile.__init__)
    pq.read_table = guard(pq.read_table)
"""


@pytest.fixture(scope="module")
def tuned(built, tmp_path_factory) -> dict:
    """`make tune`: a study of 4 trials, 2 at a time, then its winner made a DVC experiment."""
    repo = with_study(copy_built(built, tmp_path_factory.mktemp("tune") / "repo"))
    return {"repo": repo, "result": run(TUNE, repo, timeout=600), "storage": f"sqlite:///{repo / 'optuna.db'}"}


def trial_runs(repo: Path) -> list:
    return [r for r in mlflow_runs(repo) if r.data.tags.get("tune.trial") and r.data.tags.get("mlflow.parentRunId")]


def study_run(repo: Path):
    [found] = [r for r in mlflow_runs(repo) if r.info.run_name == "tune t"]
    return found


def test_the_search_finishes_its_trials(tuned):
    assert len(sequence(tuned["storage"], "t")) == TRIALS
    assert f"tune: study 't', {TRIALS} trials ({TRIALS} run now), the best val_log_loss first:" in tuned["result"].stdout


def test_each_trial_has_one_finished_run_under_the_studys(tuned):
    repo = tuned["repo"]
    runs = trial_runs(repo)
    assert sorted(int(r.data.tags["tune.trial"]) for r in runs) == list(range(TRIALS))
    parent = study_run(repo)
    commit = run(["git", "rev-parse", "HEAD"], repo).stdout.strip()
    params = sequence(tuned["storage"], "t")
    for r in runs:
        number = int(r.data.tags["tune.trial"])
        assert r.info.status == "FINISHED" and r.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert r.data.tags["tune.study"] == "t" and r.data.tags["mlflow.source.git.commit"] == commit
        assert len(r.data.tags["dvc.raw_data_md5"]) == 32
        assert {key: float(r.data.params[key]) for key in ("train.lr", "train.l2")} == {
            key: params[number][key] for key in ("train.lr", "train.l2")}
        assert r.data.params["train.optimizer"] == params[number]["train.optimizer"]
        assert "val_log_loss" in r.data.metrics and "test_log_loss" not in r.data.metrics
        assert len(store(repo).get_metric_history(r.info.run_id, "log_loss/val")) >= 2
        assert [a.path for a in store(repo).list_artifacts(r.info.run_id, "weights")] == ["weights/model.safetensors"]


def test_the_studys_run_holds_its_space_seed_best_trial_and_pictures(tuned):
    repo = tuned["repo"]
    parent = study_run(repo)
    best = min(trial_runs(repo), key=lambda r: r.data.metrics["val_log_loss"])
    assert parent.info.status == "FINISHED" and parent.data.params["tune.seed"] == "3"
    assert yaml.safe_load(parent.data.params["tune.space.train.lr"]) == SPACE["train.lr"]
    assert parent.data.metrics["best_val_log_loss"] == best.data.metrics["val_log_loss"]
    assert parent.data.tags["tune.best_trial"] == best.data.tags["tune.trial"]
    pictures = {a.path for a in store(repo).list_artifacts(parent.info.run_id, "study")}
    assert {"study/optimization_history.png", "study/parallel_coordinate.png", "study/best.json"} <= pictures


def test_the_winner_is_a_dvc_experiment_with_the_trials_bits(tuned, tmp_path):
    repo = tuned["repo"]
    best = min(trial_runs(repo), key=lambda r: r.data.metrics["val_log_loss"])
    number = best.data.tags["tune.trial"]
    name = f"t-{number}"
    assert f"tune: trial {number} is DVC experiment {name}; to bring it to the workspace: dvc exp apply {name}" \
        in tuned["result"].stdout
    [experiment] = [r for r in mlflow_runs(repo) if r.data.tags.get("dvc.exp_name") == name]
    assert experiment.data.tags["tune.study"] == "t" and experiment.data.tags["tune.trial"] == number
    assert experiment.data.metrics["val_log_loss"] == best.data.metrics["val_log_loss"]
    assert experiment.data.tags.get("evaluated") == "true", "make promote sees it as any evaluated run"
    assert logged_weights(repo, experiment.info.run_id, tmp_path).read_bytes() == \
        logged_weights(repo, best.info.run_id, tmp_path).read_bytes()
    assert run(["git", "status", "--porcelain", "--untracked-files=no"], repo).stdout == "", "the workspace is as it was"


def test_a_finished_study_run_again_adds_nothing(tuned):
    repo = tuned["repo"]
    runs, trials = len(mlflow_runs(repo)), len(optuna.load_study(study_name="t", storage=tuned["storage"]).trials)
    again = run(TUNE, repo)
    assert f"{TRIALS} trials (0 run now)" in again.stdout
    assert len(mlflow_runs(repo)) == runs and len(optuna.load_study(study_name="t", storage=tuned["storage"]).trials) == trials


@pytest.mark.parametrize(("change", "what"), [
    (lambda p: p["tune"]["space"].update({"train.lr": {"low": 0.01, "high": 1.0, "log": True}}), "another space"),
    (lambda p: p["split"].update(seed=7), "another data"),
])
def test_a_changed_space_or_data_is_refused_in_one_line(tuned, change, what):
    repo = tuned["repo"]
    params = yaml.safe_load((repo / "params.yaml").read_text())
    change(params)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        refused = run(TUNE, repo, check=False)
    finally:
        run([sys.executable, "-m", "softmax_regression.commands.reset"], repo)  # params and outputs as committed
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    [line] = refused.stderr.strip().splitlines()
    assert line.startswith(f"error: study 't' in sqlite:///{repo / 'optuna.db'} was run with {what}"), line


def test_a_trials_run_is_rerun_through_the_pipeline_to_its_bits(tuned, tmp_path):
    """Last of the module's tests on `tuned`: make rerun checks out and runs the pipeline in its workspace."""
    repo = tuned["repo"]
    trial = max(trial_runs(repo), key=lambda r: int(r.data.tags["tune.trial"]))
    result = run([sys.executable, "-m", "softmax_regression.commands.rerun", trial.info.run_id], repo, timeout=600)
    assert "rerun: the weights are the same, bit for bit" in result.stdout, result.stdout + result.stderr
    assert (repo / "models/model.safetensors").read_bytes() == logged_weights(repo, trial.info.run_id, tmp_path).read_bytes()


class Staggered(ThreadPoolExecutor):
    """The trials in threads of this process, each batch's trial at `position` held until the batch's other
    trial has finished: the trials of a batch finish in the order the test wants, however long each takes."""

    def __init__(self, workers: int, position: int) -> None:
        super().__init__(workers)
        self.position, self.submitted, self.others_done = position, 0, {}

    def submit(self, fn, *args, **kwargs):
        batch, position = divmod(self.submitted, PARALLEL)
        self.submitted += 1
        other_done = self.others_done.setdefault(batch, threading.Event())

        def call():
            if position == self.position:
                other_done.wait()
                return fn(*args, **kwargs)
            try:
                return fn(*args, **kwargs)
            finally:
                other_done.set()

        return super().submit(call)


def test_the_same_seed_gives_the_same_trials_whatever_order_they_finish_in(built, tmp_path, monkeypatch):
    from softmax_regression.commands.tune import make_search
    from softmax_regression.config import TuneParams, read_params, section
    from softmax_regression.search import session, study
    from softmax_regression.tracking import runs

    repo = with_study(copy_built(built, tmp_path / "repo", store=False))
    monkeypatch.chdir(repo)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs.connect()
    params = read_params()
    tune = section(params, "tune", TuneParams)
    orders = {}
    for position in (1, 0):  # the second of each batch held back, then the first
        storage = f"sqlite:///{tmp_path / f'held-{position}.db'}"
        search = make_search(params, tune, storage)
        session.tune(search, study.open_study(search), "staggered", 0, lambda n, p=position: Staggered(n, p))
        finished = optuna.load_study(study_name="t", storage=storage).get_trials(states=(TrialState.COMPLETE,))
        orders[position] = [t.number for t in sorted(finished, key=lambda t: t.datetime_complete)]
    assert orders[1] == [0, 1, 2, 3] and orders[0] == [1, 0, 3, 2], orders
    assert sequence(f"sqlite:///{tmp_path / 'held-1.db'}", "t") == sequence(f"sqlite:///{tmp_path / 'held-0.db'}", "t")


class Cut(Exception):
    """The driver killed at this point."""


@pytest.mark.parametrize("cut", range(10))
def test_a_batch_cut_short_while_being_made_resumes_with_each_planned_trial_once(tmp_path, monkeypatch, cut):
    """Killed after the plan is stored and `cut` calls made of enqueue, ask and the suggestions ask makes (2
    trials of 3 params: 2 enqueues, 2 asks, 6 suggestions), then resumed: the batch is the plan's trials, each
    once with all its params, numbered in the plan's order, as when never cut."""
    from softmax_regression.config import TuneParams
    from softmax_regression.search import space, study

    train = {"impl": "manual", "optimizer": "gd", "iterations": 10, "lr": 0.1, "l2": 0.01, "seed": 0}
    tune = TuneParams(study="s", seed=0, trials=6, parallel=2, space=SPACE)
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def second_batch(storage: str, interrupt: bool) -> list[tuple[int, dict]]:
        search = study.Search(tune, space.parse(SPACE, train), {"train": train}, storage, {})
        s = optuna.create_study(study_name="s", storage=storage, direction=search.direction)
        for t in study.local_batch(search, s, s.get_trials(), 0):  # the first batch, finished
            s.tell(t.number, t.params["train.lr"])
        if interrupt:
            calls = []

            def cutting(original):
                def counted(self, *args, **kwargs):
                    if getattr(self, "study", self).study_name == "s":  # not the planner's study in memory
                        calls.append(1)
                        if len(calls) > cut:
                            raise Cut
                    return original(self, *args, **kwargs)
                return counted

            for owner, name in ((optuna.Study, "enqueue_trial"), (optuna.Study, "ask"), (optuna.Trial, "_suggest")):
                monkeypatch.setattr(owner, name, cutting(getattr(owner, name)))
            with pytest.raises(Cut):
                study.local_batch(search, s, s.get_trials(), 2)
            monkeypatch.undo()
        s = optuna.load_study(study_name="s", storage=storage)  # the driver started again
        batch = study.local_batch(search, s, s.get_trials(), 2)
        assert all(t.state == TrialState.RUNNING and set(t.params) == set(SPACE) for t in batch)
        assert [t.params for t in batch] == [t.params for t in s.get_trials(states=(TrialState.RUNNING,))]
        assert len(s.get_trials()) == 4, "no trial made twice"
        return sorted((t.number, t.params) for t in batch)

    resumed = second_batch(f"sqlite:///{tmp_path / 'cut.db'}", interrupt=True)
    assert resumed == second_batch(f"sqlite:///{tmp_path / 'whole.db'}", interrupt=False)
    assert [number for number, _ in resumed] == [2, 3]


def completed(db: Path) -> int:
    try:
        with sqlite3.connect(db, timeout=30) as con:
            return con.execute("SELECT count(*) FROM trials WHERE state = 'COMPLETE'").fetchone()[0]
    except sqlite3.OperationalError:  # not created yet
        return 0


def test_a_search_killed_and_resumed_ends_as_one_never_interrupted_and_reads_no_test_row(tuned, built, tmp_path):
    """SIGKILL once two trials have finished, then the same command: 4 trials, the uninterrupted study's
    (`tuned`: the same seed, space and data), each with one FINISHED MLflow run. Both runs of the search fail
    at any read of the test rows."""
    repo = with_study(copy_built(built, tmp_path / "repo"))
    (tmp_path / "guard").mkdir()
    (tmp_path / "guard" / "sitecustomize.py").write_text(NO_TEST_ROWS)
    guarded = tool_env(PYTHONPATH=str(tmp_path / "guard"))
    search = subprocess.Popen([*TUNE, "--materialize", "0"], cwd=repo, env=guarded, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 300
    while completed(repo / "optuna.db") < 2 and search.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(search.pid, signal.SIGKILL)  # the driver, its fork server and its workers: no cleanup at all
    search.communicate()
    assert completed(repo / "optuna.db") < TRIALS, "killed before the study finished"
    run([*TUNE, "--materialize", "0"], repo, env=guarded, timeout=600)
    storage = f"sqlite:///{repo / 'optuna.db'}"
    assert sequence(storage, "t") == sequence(tuned["storage"], "t")
    assert len(optuna.load_study(study_name="t", storage=storage).trials) == TRIALS, "no trial run twice"
    finished = [r for r in trial_runs(repo) if r.info.status == "FINISHED"]
    assert sorted(int(r.data.tags["tune.trial"]) for r in finished) == list(range(TRIALS))


POSTGRES = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))


@pytest.fixture
def postgres():
    """A PostgreSQL server of the Debian package, started here on a free port, as the user `postgres` when the
    tests run as root (PostgreSQL refuses to run as root); its URL."""
    assert POSTGRES, "CI must have PostgreSQL (.ci/run installs it)"
    bin_dir, port = POSTGRES[-1].parent, free_port()
    as_owner = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    base = Path(tempfile.mkdtemp(prefix="softmax-regression-pg-"))  # outside pytest's folders, which only root enters
    data = base / "data"
    if as_owner:
        shutil.chown(base, "postgres")
    try:
        subprocess.run([*as_owner, str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"],
                       check=True, capture_output=True)
        subprocess.run([*as_owner, str(bin_dir / "pg_ctl"), "-D", str(data), "-w", "-l", str(base / "log"), "-o",
                        f"-p {port} -k {base} -c listen_addresses=127.0.0.1", "start"], check=True, capture_output=True)
        subprocess.run([str(bin_dir / "psql"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-c",
                        "CREATE DATABASE tune"], check=True, capture_output=True)
        yield f"postgresql://postgres@127.0.0.1:{port}/tune"
    finally:
        subprocess.run([*as_owner, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.skipif(not POSTGRES and not os.environ.get("CI"),
                    reason="PostgreSQL is not installed (apt-get install -y postgresql); CI installs it")
def test_two_machines_finish_one_study_in_postgresql_none_twice(built, tmp_path, postgres):
    """Two clones, as two machines would have, each running make tune on the study in one PostgreSQL, with one
    mlflow server for both: together they finish its trials, each trial once."""
    port = free_port()
    server = serve(["mlflow", "server", "--backend-store-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
                    "--artifacts-destination", str(tmp_path / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
                    "--workers", "1"], f"http://127.0.0.1:{port}/health",
                   tool_env(MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false"))
    try:
        env = tool_env(MLFLOW_TRACKING_URI=f"http://127.0.0.1:{port}")
        clones = [with_study(copy_built(built, tmp_path / name, store=False), "shared") for name in ("a", "b")]
        workers = [subprocess.Popen([*TUNE, "--storage", postgres, "--materialize", "0"], cwd=clone, env=env,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for clone in clones]
        for worker in workers:
            out, err = worker.communicate(timeout=600)
            assert worker.returncode == 0, err
        study = optuna.load_study(study_name="shared", storage=postgres.replace("postgresql://", "postgresql+psycopg://"))
        states = [t.state for t in study.trials]
        assert states.count(TrialState.COMPLETE) == TRIALS and len(states) == TRIALS, states
        from mlflow.tracking import MlflowClient

        client = MlflowClient(f"http://127.0.0.1:{port}")
        experiment = client.get_experiment_by_name("softmax-regression").experiment_id
        trials = client.search_runs([experiment], "tags.`tune.study` = 'shared' and attributes.status = 'FINISHED'")
        numbers = sorted(int(r.data.tags["tune.trial"]) for r in trials if "tune.trial" in r.data.tags)
        assert numbers == list(range(TRIALS)), "each trial run once, by one machine or the other"
        assert len({r.data.tags["mlflow.parentRunId"] for r in trials if "tune.trial" in r.data.tags}) == 1
    finally:
        server.terminate()
        server.wait(timeout=30)
