"""The standard comparison: the three implementations on the same params, as queued DVC experiments run
all at once (one queue worker each), then one table from their MLflow runs.

    make compare                                   # = python -m softmax_regression.commands.compare
    python -m softmax_regression.commands.compare -S train.optimizer=lbfgs -S train.tol=1e-5

Every experiment trains (DVC never restores `train` from its run cache), so the wall times are real.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from softmax_regression.process import run_stage, text_table
from softmax_regression.config import Impl, choices
from softmax_regression.errors import PipelineError
from softmax_regression.tracking.lineage import repo_root

T = TypeVar("T")

WORKERS = Path(".dvc", "tmp", "exps", "celery")  # DVC 3.x keeps each queue worker's pid and exit code here
COLUMNS = ("implementation", "final train loss", "train accuracy", "val log-loss", "val accuracy", "train time (s)",
           "MLflow run id")  # validation, not test: runs are compared and chosen on validation rows alone


def queue_and_run(stamp: str, settings: list[str], jobs: int, timeout: float = 1800) -> list[str]:
    """Queue one experiment per implementation with the extra `-S` settings, run them; returns the names.

    ingest and split, the same for the three, run once here first, so that the experiments find their
    outputs in DVC's cache: DVC 3.67's workers building one stage's outputs at the same time can fail
    ("unable to remove … without a confirmation"). When a setting changes ingest or split, the
    experiments run one at a time instead. The three are queued through DVC's Python API, in this
    process: a `dvc exp run --queue` each took 2.6 s, mostly starting DVC.

    `jobs` (default: one per experiment) caps the experiments at once. With fewer workers than
    experiments, a worker must take a second one when its first ends, and one of two DVC 3.67 workers was
    seen to stop instead (treeverse/dvc#10562), the experiment left queued until the other worker was
    free: on 2 cores, the three `train.lr=0.05` experiments took 77 and 98 s two at a time, 67 and 72 s
    all at once.
    """
    from dvc.repo import Repo

    if any(setting.startswith(("ingest.", "split.")) for setting in settings):
        jobs = 1
    else:
        _dvc_command(["dvc", "repro", "split"])  # a process of its own: the stages print on its stdout
    names = []
    with Repo(str(repo_root())) as repo:
        for impl in choices(Impl):
            name = f"{impl}-{stamp}"  # the implementation first: MLflow's runs table shows a name's start
            params = [f"train.impl={impl}", *settings]
            command = " ".join(["dvc exp run --queue -n", name, *(f"-S {p}" for p in params)])
            _dvc_api(command, repo.experiments.run, params=params, queue=True, name=name)
            print(f"Queued experiment '{name}' for future execution.", file=sys.stderr)
            names.append(name)
    run_queue(names, jobs, timeout)
    return names


def run_queue(names: list[str], jobs: int, timeout: float) -> None:
    """Start `jobs` queue workers and wait until every named experiment has ended.

    Neither `dvc exp run --run-all -j N` nor `dvc queue start` is waited on: seen here with DVC 3.67
    (and treeverse/dvc#10398), either can hang after the last experiment ends, and workers can stop with
    tasks still queued. So this watches `dvc queue status`, starts workers again when tasks have waited
    10 s with no worker alive, and stops the workers once the experiments have ended. A worker busy
    training may not answer the status query in time, so "alive" is also read from the worker processes:
    a second worker of the same name would overwrite the first's record, and outlive the stop.
    """
    starter = _start_workers(jobs)
    deadline = time.monotonic() + timeout
    unserved_since = None
    try:
        while True:
            status, active = queue_status()
            mine = {name: status.get(name, "?") for name in names}
            if all(state in ("Success", "Failed") for state in mine.values()):
                break
            now = time.monotonic()
            if now > deadline:
                raise PipelineError(f"experiments still running after {timeout:.0f} s: {mine}")
            unserved = "Queued" in mine.values() and not active and not _live_workers()
            if unserved and starter.poll() is not None:
                unserved_since = unserved_since or now
                if now - unserved_since > 10:
                    starter, unserved_since = _start_workers(jobs), None
            else:
                unserved_since = None
            time.sleep(2)
    finally:
        _stop_workers(starter)
    failed = [name for name, state in mine.items() if state == "Failed"]
    if failed:
        raise PipelineError(f"experiment {failed[0]} failed; `dvc queue logs {failed[0]}` says why")


def _start_workers(jobs: int) -> subprocess.Popen:
    return subprocess.Popen(["dvc", "queue", "start", "-j", str(jobs)], env=shared_cores(jobs),
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


def shared_cores(jobs: int) -> dict[str, str]:
    """The environment for `jobs` experiments at once: each one's torch gets its share of the cores. With
    every one on every core, their threads wait on each other: on 2 cores beside two busy processes, 3,000
    gradient-descent steps on Iris took 3.2 times as long on 2 threads as on 1. A user's own
    OMP_NUM_THREADS wins."""
    threads = str(max(1, (os.cpu_count() or 1) // jobs))
    return {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads} | dict(os.environ)


def _stop_workers(starter: subprocess.Popen, timeout: float = 60) -> None:
    """Ask the workers to stop and wait until they have, ending any that outlive `timeout`.

    `dvc queue stop` only broadcasts a shutdown; a worker that polls the queue before it reads that can
    still take an experiment queued after we return (seen in CI). So the worker processes themselves,
    which DVC records in WORKERS, are waited on.
    """
    try:
        subprocess.run(["dvc", "queue", "stop"], capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        pass
    if starter.poll() is None:
        os.killpg(starter.pid, signal.SIGTERM)
        starter.wait(timeout=30)
    deadline = time.monotonic() + timeout
    while (alive := _live_workers()) and time.monotonic() < deadline:
        time.sleep(0.5)
    for pid in alive:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)


def _live_workers() -> list[int]:
    """The process ids of the queue workers still running, from the records DVC keeps of them."""
    alive = []
    for record in (repo_root() / WORKERS).glob("dvc-exp-worker-*.json"):
        with contextlib.suppress(OSError, ValueError, KeyError):
            info = json.loads(record.read_text())
            if info["returncode"] is None and _running(info["pid"]):
                alive.append(info["pid"])
    return alive


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, but not ours
        pass
    return True


def queue_status() -> tuple[dict[str, str], int]:
    """Each queued task's name and status, and the number of active workers: what `dvc queue status`
    prints, asked of DVC's API here rather than of a new `dvc` process every poll."""
    from dvc.repo import Repo

    with Repo(str(repo_root())) as repo:
        queue = repo.experiments.celery_queue
        status = {task.get("name") or task["rev"][:7]: task["status"] for task in queue.status()}
        active = busy_workers(queue)
    return status, active


def busy_workers(queue: Any) -> int:
    """The number of queue workers busy with an experiment, or 0 when their answer cannot be read.

    The workers answer through files (kombu's filesystem transport), which kombu reads without waiting for
    the writer's lock: on a busy machine it can read a reply that is not written yet, and raise a
    JSONDecodeError (celery/kombu#1551; seen here on 2 loaded cores). The answer is only a hint for
    `run_queue`, which also reads the worker processes, and it asks again 2 s later."""
    try:
        return sum(1 for task in queue.worker_status().values() if task)
    except json.JSONDecodeError:
        return 0


def run_ids(names: list[str]) -> dict[str, str]:
    """Each experiment's MLflow run id, from its `models/mlflow_run.json` (the run_id column of `dvc exp show`).

    Not the run tagged with the experiment's name: an experiment whose params are the workspace's finds
    every stage up to date and trains nothing, so its numbers are those of the run that made the outputs.
    """
    import dvc.api

    shown = _dvc_api("dvc exp show", dvc.api.exp_show, repo=str(repo_root()))
    ids = {row["Experiment"]: row.get("run_id") or "" for row in shown}
    missing = [name for name in names if not ids.get(name)]
    if missing:
        raise PipelineError(f"experiment {missing[0]} has no MLflow run id; `dvc queue logs {missing[0]}` says why")
    return {name: ids[name] for name in names}


def table(names: list[str]) -> list[tuple[str, ...]]:
    """One row per experiment, from its MLflow run."""
    from softmax_regression.tracking import runs as tracking  # mlflow: seconds, once the experiments have run

    tracking.connect()
    rows = []
    for name, run_id in run_ids(names).items():
        run = tracking.find_run(run_id)
        if run is None:
            raise PipelineError(f"experiment {name}'s MLflow run {run_id} is not in {tracking.tracking_uri()}")
        m = run.data.metrics
        rows.append((run.data.params.get("train.impl", "?"), _fmt(m.get("train_loss_final"), ".6f"),
                     _fmt(m.get("train_accuracy"), ".4f"), _fmt(m.get("val_log_loss"), ".6f"),
                     _fmt(m.get("val_accuracy"), ".4f"),
                     _fmt(m.get("train_seconds"), ".2f"), run.info.run_id))
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m softmax_regression.commands.compare", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-S", "--set-param", action="append", default=[], metavar="KEY=VALUE",
                        help="a params.yaml setting shared by the three experiments, as for dvc exp run -S")
    parser.add_argument("-j", "--jobs", type=int, default=len(choices(Impl)),
                        help="experiments at once (default: %(default)s, all)")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs must be 1 or more, not {args.jobs}")
    names = queue_and_run(time.strftime("%m%d-%H%M%S"), args.set_param, args.jobs)
    print(text_table(COLUMNS, table(names)))


def _dvc_command(cmd: list[str]) -> None:
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        last = (result.stderr.strip() or result.stdout.strip()).splitlines()[-1:] or ["(no output)"]
        raise PipelineError(f"`{' '.join(cmd)}` failed: {last[0]}")


def _dvc_api(command: str, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """`call`, one of DVC's Python functions, doing what `command` does; its errors as one line."""
    from dvc.exceptions import DvcException
    from hydra.errors import HydraException  # DVC parses `-S` with Hydra's override grammar

    try:
        return call(*args, **kwargs)
    except (DvcException, HydraException) as e:
        causes = []  # "Invalid `--set-param` value", then why: the first line of each, as DVC's CLI says it
        while e is not None:
            causes += [line.rstrip(".") for line in str(e).strip().splitlines()[:1]]
            e = e.__cause__
        raise PipelineError(f"`{command}` failed: {': '.join(causes)}") from None


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


if __name__ == "__main__":
    run_stage(main)
