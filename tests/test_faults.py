"""Faults under the real tools: divergence, a missing or unreachable tracking store, killed stages,
and bit-for-bit reproducibility across fresh copies."""

from __future__ import annotations

import json
import signal
import socket
import sqlite3
import subprocess
import sys
import time

import pytest
import torch
import yaml
from safetensors.torch import load_file

from conftest import ROOT, copy_repo, interrupted_at, mlflow_runs, run, run_id_of, tool_env

DETERMINISTIC_OUTPUTS = ["data/interim/dataset.parquet", "data/split/train.parquet", "data/split/val.parquet",
                         "data/split/test.parquet",
                         "data/split/classes.json", "models/model.safetensors", "models/coefficients.csv",
                         "metrics/train.json", "metrics/eval.json", "reports/per_class.json",
                         "plots/train_loss.csv", "plots/log_loss.csv", "plots/confusion.csv",
                         "plots/coefficients.png", "plots/confusion.png"]


TRAINING_DATA_LOGGED = "SELECT destination_id FROM inputs WHERE source_type = 'DATASET' AND destination_type = 'RUN'"


def wait_for_training(repo, known: set[str], stage: subprocess.Popen, timeout: float = 120) -> None:
    """Until the train stage has logged its training data to a new run: it trains next, in the block that
    ends its run. (Not a fixed delay: on a busy machine the stage may still be importing MLflow.)"""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and stage.poll() is None:
        with sqlite3.connect(repo / "mlflow.db", timeout=30) as con:
            logged = {run for (run,) in con.execute(TRAINING_DATA_LOGGED)}
        con.close()
        if logged - known:
            return
        time.sleep(0.1)
    stage.kill()
    raise AssertionError(f"the train stage did not start training: {stage.communicate()[1]}")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # free now, and nothing listens on it once closed


def test_fresh_copies_give_the_committed_outputs_bit_for_bit(repo, tmp_path):
    """First in this module: `repo` is a fresh copy after one `dvc repro` (on this test worker's share of the
    cores, conftest); a second fresh copy runs on another number of threads. Both must write the outputs
    committed in this repository, to the byte: what a user's `git status` shows after `make run` on a fresh
    clone (README, "Same bits")."""
    threads = 2 if torch.get_num_threads() == 1 else 1
    other = copy_repo(tmp_path)
    run(["dvc", "repro"], other, env=tool_env(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads)))
    copies = [ROOT, repo, other]
    for name in DETERMINISTIC_OUTPUTS:
        if (ROOT / name).is_file():  # tracked by git; the others by their md5 in dvc.lock, below
            assert (repo / name).read_bytes() == (ROOT / name).read_bytes(), f"{name} differs from the committed one"
        assert (repo / name).read_bytes() == (other / name).read_bytes(), f"{name} differs between copies"
    lock = [yaml.safe_load((c / "dvc.lock").read_text()) for c in copies]
    for entry in lock:
        for out in entry["stages"]["train"]["outs"]:
            if out["path"] == "models/mlflow_run.json":
                out.pop("md5"), out.pop("size")  # the run id: the one output that differs by design
        entry["stages"]["evaluate"]["deps"] = [d for d in entry["stages"]["evaluate"]["deps"]
                                                if d["path"] != "models/mlflow_run.json"]
    assert lock[1] == lock[2]
    assert lock[1] == lock[0], "dvc.lock differs from the committed one: code, data or outputs are stale"


def test_evaluate_explains_a_run_missing_from_the_store(repo):
    for name in ("mlflow.db",):
        (repo / name).unlink()
    result = run(["dvc", "repro", "-s", "-f", "evaluate"], repo)
    run_id = run_id_of(repo)
    assert f"MLflow run {run_id} is not in sqlite:///" in result.stdout + result.stderr
    assert "dvc repro -f train" in result.stdout + result.stderr
    assert json.loads((repo / "metrics/eval.json").read_text())["test_accuracy"] >= 0.9


def test_unreachable_tracking_server_fails_fast_and_touches_nothing(repo):
    before = {name: (repo / name).read_bytes() for name in DETERMINISTIC_OUTPUTS}
    uri = f"http://127.0.0.1:{closed_port()}"
    for stage in ("train", "evaluate"):
        start = time.monotonic()
        result = subprocess.run([sys.executable, "-X", "importtime", f"stages/{stage}.py"], cwd=repo,
                                capture_output=True, text=True, env=tool_env(MLFLOW_TRACKING_URI=uri, PYTHONPATH="src"),
                                timeout=120)
        elapsed = time.monotonic() - start
        lines = result.stderr.splitlines()
        imported = {line.rsplit("|", 1)[-1].strip() for line in lines if line.startswith("import time:")}
        stderr = "\n".join(line for line in lines if not line.startswith("import time:")).strip()
        assert result.returncode == 1
        assert stderr == (f"error: MLflow tracking server {uri} (MLFLOW_TRACKING_URI) cannot be "
                          f"reached: " + stderr.split("reached: ")[1].strip())
        assert "unset MLFLOW_TRACKING_URI" in stderr and "Traceback" not in stderr
        assert not {"torch", "mlflow"} & imported, f"{stage} imported torch or MLflow before asking the server"
        assert elapsed < 30, f"{stage} took {elapsed:.0f} s to give up on a closed port"
    assert before == {name: (repo / name).read_bytes() for name in DETERMINISTIC_OUTPUTS}


def test_a_killed_train_stage_leaves_whole_files_and_the_next_repro_recovers(repo):
    original = (repo / "params.yaml").read_text()
    params = yaml.safe_load(original)
    params["train"]["iterations"] = 20000
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    statuses = []
    for sig in (signal.SIGKILL, signal.SIGTERM):
        known = {r.info.run_id for r in mlflow_runs(repo)}
        stage = subprocess.Popen([sys.executable, "stages/train.py"], cwd=repo, env=tool_env(PYTHONPATH="src"),
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_for_training(repo, known, stage)  # 20000 iterations take seconds more: it is stopped mid-way
        stage.send_signal(sig)
        _, stderr = stage.communicate(timeout=60)
        assert "Traceback" not in stderr, stderr
        latest = mlflow_runs(repo)[0]
        statuses.append(latest.info.status)
        assert latest.data.tags.get("error") == (None if sig == signal.SIGKILL else "interrupted (Ctrl-C or SIGTERM)")
        model = repo / "models/model.safetensors"
        if model.exists():
            assert set(load_file(model)) == {"W", "b", "mean", "scale"}
        for name in ("metrics/train.json", "models/mlflow_run.json"):
            if (repo / name).exists():
                json.loads((repo / name).read_text())
        losses = repo / "plots/train_loss.csv"
        if losses.exists():
            assert len(losses.read_text().splitlines()) - 1 in (250, 20000)
    assert statuses == ["RUNNING", "KILLED"], statuses  # a kill is no failure of the run
    (repo / "params.yaml").write_text(original)  # recovering needs no 20000 iterations
    run(["dvc", "repro"], repo)
    assert "up to date" in run(["dvc", "status"], repo).stdout
    assert not list(repo.rglob("*.partial"))


def test_an_interrupt_in_the_middle_of_an_mlflow_query_waits_for_it_and_marks_the_run_killed(repo):
    """SIGTERM lands while MLflow reads back the run after its first dataset input is written: the query ends
    first, then the run is marked KILLED at once (no "database is locked" wait) and the stage says so in a line."""
    known = {r.info.run_id for r in mlflow_runs(repo)}
    code = interrupted_at(["INSERT INTO inputs", "SELECT"], ["stages/train.py"])
    result = run([sys.executable, "-c", code], repo, env=tool_env(PYTHONPATH="src"), check=False)
    assert result.returncode == 130, result.stderr
    assert result.stderr.strip() == "error: interrupted; outputs written so far are complete, the rest untouched"
    (latest,) = [r for r in mlflow_runs(repo) if r.info.run_id not in known]
    assert latest.info.status == "KILLED"
    assert latest.data.tags.get("error") == "interrupted (Ctrl-C or SIGTERM)"
    assert latest.info.end_time is not None


def test_divergence_stops_the_stage_and_fails_the_mlflow_run(repo):
    """Last in this module: it leaves the copy with a failed stage."""
    result = run(["dvc", "exp", "run", "-S", "train.lr=1000"], repo, check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "error: training diverged at iteration" in output and "try a smaller train.lr" in output
    assert "Traceback" not in output
    model = repo / "models/model.safetensors"
    assert not model.exists() or all(t.isfinite().all() for t in load_file(model).values())
    latest = mlflow_runs(repo)[0]
    assert latest.data.params["train.lr"] == "1000"
    assert latest.info.status == "FAILED" and "diverged at iteration" in latest.data.tags["error"]


@pytest.fixture(autouse=True)
def _no_tracking_uri(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
