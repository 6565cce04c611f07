"""DVC experiments run side by side through DVC's queue, and waited for.

DVC 3.67's own ways of running a queue are not waited on: `dvc exp run --run-all -j N` and `dvc queue start`
can hang after the last experiment ends (treeverse/dvc#10398), and a worker can stop with experiments still
queued (treeverse/dvc#10562). So `run_queue` starts the workers, watches the queue's status, starts workers
again when experiments wait with none alive, and stops the workers itself once the experiments have ended.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from softmax_regression.errors import PipelineError
from softmax_regression.paths import repo_root
from softmax_regression.pipeline.repo import dvc_api, exp_show

WORKERS = Path(".dvc", "tmp", "exps", "celery")  # DVC 3.x keeps each queue worker's pid and exit code here
RESTART_AFTER = 10.0  # seconds experiments may wait with no worker alive before workers start again


def queue(experiments: Mapping[str, Sequence[str]]) -> None:
    """Queue each named experiment with its `-S` settings, through DVC's Python API in this process: a
    `dvc exp run --queue` each would spend seconds starting DVC."""
    from dvc.repo import Repo

    with Repo(str(repo_root())) as repo:
        for name, settings in experiments.items():
            command = " ".join(["dvc exp run --queue -n", name, *(f"-S {s}" for s in settings)])
            dvc_api(command, repo.experiments.run, params=list(settings), queue=True, name=name)
            print(f"Queued experiment '{name}' for future execution.", file=sys.stderr)


def run_queue(names: Sequence[str], jobs: int, timeout: float = 1800) -> None:
    """Start `jobs` queue workers and wait until every named experiment has ended; a failed one is an error.

    A worker busy training may not answer the status query in time, so whether one is alive is also read
    from the worker processes: a second worker of the same name would overwrite the first's record.
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
                if now - unserved_since > RESTART_AFTER:
                    starter, unserved_since = _start_workers(jobs), None
            else:
                unserved_since = None
            time.sleep(2)
    finally:
        _stop_workers(starter)
    failed = [name for name, state in mine.items() if state == "Failed"]
    if failed:
        raise PipelineError(f"experiment {failed[0]} failed; `dvc queue logs {failed[0]}` says why")


def shared_cores(jobs: int) -> dict[str, str]:
    """The environment for `jobs` processes at once: each one's torch gets its share of the cores. With every
    one on every core, their threads wait on each other (3.2 times as long for gradient descent on Iris, 2
    threads against 1, on 2 cores beside two busy processes). A user's own OMP_NUM_THREADS wins."""
    threads = str(max(1, (os.cpu_count() or 1) // jobs))
    return {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads} | dict(os.environ)


def _start_workers(jobs: int) -> subprocess.Popen:
    return subprocess.Popen(["dvc", "queue", "start", "-j", str(jobs)], env=shared_cores(jobs),
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


def _stop_workers(starter: subprocess.Popen, timeout: float = 60) -> None:
    """Ask the workers to stop and wait until they have, ending any that outlive `timeout`.

    `dvc queue stop` only broadcasts a shutdown; a worker that polls the queue before it reads that can
    still take an experiment queued after we return. So the worker processes themselves, which DVC records
    in WORKERS, are waited on.
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
        celery = repo.experiments.celery_queue
        status = {task.get("name") or task["rev"][:7]: task["status"] for task in celery.status()}
        active = busy_workers(celery)
    return status, active


def busy_workers(celery: Any) -> int:
    """The number of queue workers busy with an experiment, or 0 when their answer cannot be read.

    The workers answer through files (kombu's filesystem transport), which kombu reads without waiting for
    the writer's lock: on a busy machine it can read a reply that is not written yet, and raise a
    JSONDecodeError (celery/kombu#1551). The answer is only a hint for `run_queue`, which also reads the
    worker processes, and it asks again 2 s later."""
    try:
        return sum(1 for task in celery.worker_status().values() if task)
    except json.JSONDecodeError:
        return 0


def experiment_rows(names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Each named experiment's row of `dvc exp show`: its params and metrics by name (`train.impl`,
    `val_log_loss`, `run_id`, …)."""
    rows = {row["Experiment"]: row for row in exp_show() if row.get("Experiment")}
    missing = [name for name in names if name not in rows]
    if missing:
        raise PipelineError(f"experiment {missing[0]} is not in `dvc exp show`; `dvc queue logs {missing[0]}` says why")
    return {name: rows[name] for name in names}
