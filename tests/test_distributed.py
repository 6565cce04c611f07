"""Data-parallel training: N ranks give the numbers of one process, and a failing rank stops them all.

The ranks are real processes (forked from a fork server, gloo on CPU), started by `launch.launch` as the
train stage does; the end-to-end test through `dvc exp run -S train.world_size=2` is in test_pipeline.py.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import multiprocessing
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from softmax_regression.config import TrainParams, read_params, section
from softmax_regression.data.tables import parquet_rows
from softmax_regression.errors import DataError, ParamError, PipelineError
from softmax_regression.parallel.launch import launch, torchrun_rank
from softmax_regression.parallel.ranks import Ranks
from softmax_regression.training.gradients import IMPLEMENTATIONS
from softmax_regression.training.loop import train_shard

from conftest import IRIS, copy_repo, live_processes, mlflow_runs, run, tool_env, write_split

CPU = torch.device("cpu")
# lbfgs in the default float32 and in float64. In float32 it stops once a step's predicted gain is below
# J's rounding (optimizers.lbfgs): iterating past that would move the weights by ~1e-3, differently per rank count.
OPTIMIZERS = {"gd": dict(optimizer="gd", iterations=100, lr=0.1, dtype="float32"),
              "lbfgs": dict(optimizer="lbfgs", iterations=30, lr=1.0, dtype="float32"),
              "lbfgs-float64": dict(optimizer="lbfgs", iterations=30, lr=1.0, dtype="float64"),
              "sgd": dict(optimizer="sgd", iterations=8, lr=0.1, batch_size=37, momentum=0.5, dtype="float32")}
WAYS = list(itertools.product(sorted(IMPLEMENTATIONS), OPTIMIZERS))


def iris_split(folder: Path) -> Path:
    return write_split(pd.read_csv(IRIS).drop(columns="Id"), "Species", folder)


def blobs_split(folder: Path) -> Path:
    """377 rows (301 to train on, no validation rows), 5 classes, 6 features of different scales: unequal
    shards on 3 ranks."""
    rng = np.random.default_rng(3)
    y = rng.integers(0, 5, 377)
    X = rng.normal(size=(377, 6)) * [1, 10, 0.1, 3, 1, 100] + y[:, None] * 0.7
    table = pd.DataFrame(X, columns=[f"x{i}" for i in range(6)]).assign(kind=[f"c{c}" for c in y])
    return write_split(table, "kind", folder, val_size=0)


def every_way(ranks: Ranks, folder: Path, world_size: int) -> dict:
    """Train with every implementation and optimizer on this rank's shard (runs on each rank)."""
    results = {}
    for impl, way in WAYS:
        params = TrainParams(impl=impl, l2=0.01, seed=0, eval_every=5, world_size=world_size, **OPTIMIZERS[way])
        files = (folder / "train.parquet", folder / "val.parquet", folder / "classes.json")
        results[impl, way] = train_shard(ranks, params, *files)
    return results


@pytest.mark.parametrize("make_split,world_size", [(iris_split, 2), (blobs_split, 3)],
                         ids=["iris-2", "blobs-3"])
def test_n_ranks_give_the_numbers_of_one_process(tmp_path, make_split, world_size):
    folder = make_split(tmp_path)
    n = parquet_rows(folder / "train.parquet")
    one = launch(1, CPU, every_way, folder, 1)
    many = launch(world_size, CPU, every_way, folder, world_size)
    for way in WAYS:
        a, b = one[way], many[way]
        name = f"{'+'.join(way)}, {world_size} ranks on {n} rows"
        assert len(a.fit.losses) == len(b.fit.losses) and a.fit.converged == b.fit.converged, name
        if way[1] == "lbfgs":  # float32 lbfgs stops where the dtype can tell no more, on the same iteration
            assert a.fit.converged and len(a.fit.losses) < OPTIMIZERS["lbfgs"]["iterations"], name
        else:
            assert len(a.fit.losses) == OPTIMIZERS[way[1]]["iterations"], name
        torch.testing.assert_close(b.fit.losses, a.fit.losses, rtol=0, atol=1e-5,
                                   msg=lambda m, name=name: f"train_loss per iteration, {name}: {m}")
        for field in ("W", "b"):
            torch.testing.assert_close(getattr(b.model, field), getattr(a.model, field), rtol=0, atol=1e-5,
                                       msg=lambda m, field=field, name=name: f"{field}, {name}: {m}")
        for field in ("mean", "scale"):  # standardised with statistics over every shard
            torch.testing.assert_close(getattr(b.model, field), getattr(a.model, field), rtol=1e-12, atol=0)
        torch.testing.assert_close(b.curves.val_log_loss, a.curves.val_log_loss, rtol=0, atol=1e-5)
        torch.testing.assert_close(b.curves.train_log_loss, a.curves.train_log_loss, rtol=0, atol=1e-5)
        assert b.metrics.keys() == a.metrics.keys()
        for key in a.metrics:
            assert b.metrics[key] == pytest.approx(a.metrics[key], abs=1e-5), f"{key}, {name}"


def fail_on_rank(ranks: Ranks, rank: int, error: type[Exception]) -> int:
    """Rank `rank` raises; the others wait for it in an all-reduce, as a training step would."""
    if ranks.rank == rank:
        raise error("shard 1 is bad")
    return int(ranks.sum_(torch.ones(1)).item())


def kill_rank(ranks: Ranks, rank: int) -> None:
    if ranks.rank == rank:
        os.kill(os.getpid(), signal.SIGKILL)
    ranks.sum_(torch.ones(1))


def ranks_of(parent: int) -> list[int]:
    """Live ranks that `parent` started: the children of its fork server, not the server, which lives as long
    as its parent by design, nor multiprocessing's resource tracker."""
    forked = {pid: ppid for pid, (ppid, command) in live_processes().items()
              if "multiprocessing.forkserver" in command}
    servers = {pid for pid, ppid in forked.items() if ppid == parent}
    return [pid for pid, ppid in forked.items() if ppid in servers]


def processes_in(folder: Path) -> list[int]:
    """Live processes working in `folder` (Linux /proc): a stage and the ranks it started, orphans too."""
    pids = []
    for cwd in Path("/proc").glob("[0-9]*/cwd"):
        try:
            if cwd.readlink() == folder:
                pids.append(int(cwd.parent.name))
        except OSError:  # gone, a zombie, or not ours
            continue
    return pids


@pytest.mark.parametrize("error,message", [
    (DataError, r"^rank 1 of 2: shard 1 is bad$"),
    (ZeroDivisionError, r"^rank 1 of 2: ZeroDivisionError: shard 1 is bad \(traceback above\)$"),
])
def test_a_rank_that_raises_stops_every_rank_with_its_message(error, message):
    start = time.monotonic()
    with pytest.raises(PipelineError, match=message):
        launch(2, CPU, fail_on_rank, 1, error)
    assert time.monotonic() - start < 60, "the waiting rank must be stopped, not left to time out"
    assert ranks_of(os.getpid()) == []


def test_a_killed_rank_is_named():
    with pytest.raises(PipelineError, match=r"^rank 1 of 2 was killed by SIGKILL$"):
        launch(2, CPU, kill_rank, 1)
    assert ranks_of(os.getpid()) == []


def test_the_cause_is_reported_not_its_echo(tmp_path):
    """What the launcher names once the ranks have ended: a rank that died without a word is the cause,
    unless the launcher itself stopped it; otherwise any report before a peer's echo (a failed collective),
    even an echo written first, as under load; among reports of one kind, the earliest."""
    from types import SimpleNamespace

    from softmax_regression.parallel.launch import ECHO, ERROR, TRACEBACK, _failure, _report

    ended, killed = SimpleNamespace(exitcode=1), SimpleNamespace(exitcode=-signal.SIGKILL)
    _report(tmp_path, 0, ECHO, "Traceback ...\nsoftmax_regression.parallel.ranks.PeerLost: Connection closed by peer")
    assert _failure([ended, killed], set(), tmp_path) == "rank 1 of 2 was killed by SIGKILL"
    assert _failure([ended, killed], {1}, tmp_path) == (  # stopped by the launcher: not a cause
        "rank 0 of 2: softmax_regression.parallel.ranks.PeerLost: Connection closed by peer (traceback above)")
    _report(tmp_path, 2, TRACEBACK, "Traceback ...\nZeroDivisionError: shard 2 is bad")  # after the echo
    _report(tmp_path, 1, ERROR, "feature 'x' has values too large for float32")  # after both
    assert _failure([ended, ended, ended], set(), tmp_path) == (
        "rank 2 of 3: ZeroDivisionError: shard 2 is bad (traceback above)")
    (tmp_path / "2.report").unlink()
    assert _failure([ended, ended, SimpleNamespace(exitcode=0)], set(), tmp_path) == (
        "rank 1 of 3: feature 'x' has values too large for float32")


def test_every_rank_agrees_on_the_launch():
    assert launch(3, CPU, fail_on_rank, -1, DataError) == 3  # no rank fails: rank 0's sum comes back
    assert launch(1, CPU, fail_on_rank, -1, DataError) == 1


def own_command(ranks: Ranks) -> bytes:
    ranks.sum_(torch.ones(1))
    return Path("/proc/self/cmdline").read_bytes()


def test_ranks_fork_from_a_fork_server_else_start_afresh(monkeypatch):
    """Forked from a server that imported torch once; where there is no fork server (Windows), spawned."""
    assert b"multiprocessing.forkserver" in launch(2, CPU, own_command)
    monkeypatch.setattr(multiprocessing, "get_all_start_methods", lambda: ["spawn"])
    assert b"multiprocessing.spawn" in launch(2, CPU, own_command)


# Through the real train stage, on a copy of the repository.

@pytest.fixture(scope="module")
def split_repo(tmp_path_factory) -> Path:
    """A copy of the repository after ingest and split, the last training row's first feature 1e39: too
    large for float32, on the second of two ranks."""
    repo = copy_repo(tmp_path_factory.mktemp("repo"))
    folder = write_split(pd.read_csv(IRIS), "Species", tmp_path_factory.mktemp("split"))  # the draw keeps Id
    last_train_row = int(pd.read_parquet(folder / "train.parquet")["Id"].iloc[-1]) - 1
    lines = IRIS.read_text().splitlines()
    cells = lines[1 + last_train_row].split(",")
    cells[1] = "1e39"  # after the Id
    lines[1 + last_train_row] = ",".join(cells)
    (repo / "data/Iris.csv").write_text("\n".join(lines) + "\n")
    run(["dvc", "repro", "split"], repo)
    return repo


def set_train_params(repo: Path, **changes) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["train"].update(changes)
    (repo / "params.yaml").write_text(yaml.safe_dump(params))


def train_stage(repo: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "stages/train.py"], cwd=repo, env=tool_env(PYTHONPATH="src"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_failing_rank_fails_the_stage_cleanly(split_repo):
    set_train_params(split_repo, world_size=2, standardize=False, dtype="float32")
    outputs = [split_repo / name for name in ("models/model.safetensors", "metrics/train.json",
                                              "models/mlflow_run.json", "plots/train_loss.csv")]
    before = {path: path.read_bytes() for path in outputs if path.exists()}
    stage = train_stage(split_repo)
    _, stderr = stage.communicate(timeout=120)
    assert stage.returncode == 1
    assert "Traceback" not in stderr and stderr.strip().splitlines()[-1] == (
        "error: rank 1 of 2: feature 'SepalLengthCm' has values too large for float32; "
        "set train.standardize: true or train.dtype: float64"), stderr
    assert processes_in(split_repo) == []
    assert before == {path: path.read_bytes() for path in outputs if path.exists()}
    latest = mlflow_runs(split_repo)[0]
    assert latest.info.status == "FAILED" and latest.data.params["train.world_size"] == "2"
    assert latest.data.tags["error"].startswith("rank 1 of 2: feature 'SepalLengthCm' has values too large")


@pytest.mark.parametrize("sig,status", [(signal.SIGTERM, "KILLED"), (signal.SIGKILL, "RUNNING")])
def test_stopping_the_stage_stops_its_ranks(split_repo, sig, status):
    set_train_params(split_repo, world_size=2, standardize=True, iterations=10**7)
    stage = train_stage(split_repo)
    deadline = time.monotonic() + 60
    while len(ranks := ranks_of(stage.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(ranks) == 2, "the stage did not start its ranks"
    time.sleep(3)  # into training
    stage.send_signal(sig)
    _, stderr = stage.communicate(timeout=60)
    assert "Traceback" not in stderr, stderr
    deadline = time.monotonic() + 10  # after SIGKILL the kernel tells the ranks their parent is gone
    while processes_in(split_repo) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert processes_in(split_repo) == [], f"ranks outlived the stage ({sig.name})"
    assert mlflow_runs(split_repo)[0].info.status == status


def test_more_ranks_than_rows_is_a_clear_error(split_repo):
    set_train_params(split_repo, world_size=1000)
    stage = train_stage(split_repo)
    _, stderr = stage.communicate(timeout=120)
    assert stage.returncode == 1
    assert stderr.strip() == ("error: params.yaml: train.world_size is 1000, more than the 90 training "
                              "rows; every rank needs rows of its own")


def test_torchrun_starts_the_ranks_and_gets_the_numbers_of_one_process(split_repo):
    """The multi-machine path (README), on one machine: torchrun starts both ranks, rank 0 reports."""
    set_train_params(split_repo, world_size=2, standardize=True, iterations=250, dtype="float32")
    result = run(["torchrun", "--standalone", "--nproc-per-node=2", "stages/train.py"], split_repo,
                 env=tool_env(PYTHONPATH="src"))
    assert result.stdout.count("train: manual+gd, 250 iterations on 2 ranks") == 1, "rank 0 alone reports"
    got = (split_repo / "plots/train_loss.csv").read_text().splitlines()
    params = section(read_params(split_repo / "params.yaml"), "train", TrainParams)
    files = (split_repo / "data/split" / name for name in ("train.parquet", "val.parquet", "classes.json"))
    expected = launch(1, CPU, train_shard, dataclasses.replace(params, world_size=1), *files)
    assert len(got) == 251
    np.testing.assert_allclose([float(line.split(",")[1]) for line in got[1:]], expected.fit.losses.numpy(),
                               rtol=0, atol=1e-5)
    run_id = json.loads((split_repo / "models/mlflow_run.json").read_text())["run_id"]
    assert mlflow_runs(split_repo)[0].info.run_id == run_id


def test_torchrun_must_start_world_size_processes(monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert torchrun_rank(4) == Ranks(1, 4, 1)
    with pytest.raises(ParamError, match=r"train\.world_size is 2, but torchrun started 4 processes"):
        torchrun_rank(2)


def test_a_rank_that_cannot_start_reports_why():
    with pytest.raises((AttributeError, TypeError, pickle.PicklingError), match="(?i)pickle|local object"):
        launch(2, CPU, lambda ranks: ranks.rank)  # a lambda cannot be sent to another process
