"""Shared fixtures: Iris as tensors, and a throwaway copy of the repository to run the real tools in."""

from __future__ import annotations

import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from softmax_regression.commands.compare import shared_cores  # imports no torch: before torch reads its threads

# pytest-xdist runs a worker per core: each worker, and every tool it starts, gets its share of the cores,
# as `make compare` gives its experiments. On every core, their torch threads wait on each other: a test
# took 3 to 25 times as long beside another busy worker.
if workers := os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    os.environ.update(shared_cores(int(workers)))

import pytest  # noqa: E402
import torch  # noqa: E402
from filelock import FileLock  # noqa: E402

from softmax_regression.process import OFFLINE, cpu_kernels  # noqa: E402
from softmax_regression.data.raw import read_raw  # noqa: E402
from softmax_regression.data.split import encode_labels  # noqa: E402

for key, value in {**OFFLINE, **cpu_kernels()}.items():  # before MLflow and the first tensor op, as a stage
    os.environ.setdefault(key, value)

ROOT = Path(__file__).resolve().parents[1]
IRIS = ROOT / "data" / "Iris.csv"


@pytest.fixture(scope="session")
def iris() -> tuple[torch.Tensor, torch.Tensor]:
    """All 150 Iris rows: X (150, 4) float64, y (150,)."""
    table = read_raw(IRIS, "Species", ("Id",))
    y, _ = encode_labels(table["Species"])
    return torch.tensor(table.drop(columns="Species").to_numpy()), torch.tensor(y)


def tool_env(**extra: str) -> dict[str, str]:
    """The environment the real dvc/git/mlflow run in: this venv first, a git identity, no telemetry."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_", "GIT_"))}
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        GIT_AUTHOR_NAME="Test", GIT_AUTHOR_EMAIL="test@example.invalid",
        GIT_COMMITTER_NAME="Test", GIT_COMMITTER_EMAIL="test@example.invalid",
        MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="true", DVC_NO_ANALYTICS="1",
        MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false",
    )
    env.update(extra)
    return env


def run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None, check: bool = True,
        timeout: float = 300) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, cwd=cwd, env=env or tool_env(), capture_output=True, text=True,
                            timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {result.returncode}\n"
                             f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}")
    return result


def copy_repo(dest: Path) -> Path:
    """The repository's files as git sees them (tracked, and new but not ignored) in a fresh git repo."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split("\0")
    for name in filter(None, files):
        source = ROOT / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    run(["git", "init", "-q", "-b", "main"], dest)
    run(["git", "add", "-A"], dest)
    run(["git", "commit", "-qm", "copy"], dest)
    return dest


def free_port() -> int:
    """A port nothing listens on now, for a server a test starts on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(cmd: list[str], ready: str, env: dict[str, str], timeout: float = 120, cwd: Path | None = None
          ) -> subprocess.Popen:
    """Start a server (`mlflow server`, `mlflow models serve`) and wait until `ready`, a URL, answers."""
    process = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(ready, timeout=2)
            return process
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise AssertionError(f"{' '.join(cmd[:3])} did not start: {process.communicate()[1]}") from None
            time.sleep(0.5)


def live_processes() -> dict[int, tuple[int, str]]:
    """{pid: (parent pid, command line)} of every live process (Linux /proc; zombies left out)."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, ppid = stat.read_text().rsplit(")", 1)[1].split()[:2]
            command = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except OSError:  # gone meanwhile
            continue
        if state != "Z":
            found[int(stat.parent.name)] = int(ppid), command
    return found


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh copy of the repository after one real `dvc repro`: what a new user's first run leaves.

    Made once per test run, even with several pytest-xdist workers (the first builds it under a file
    lock, the others wait for it), and shared by all, so never changed: a test that changes a repository
    takes `copy_built`."""
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base  # the workers' common folder
    dest = shared / "built"
    with FileLock(shared / "built.lock"):
        if not (shared / "built.done").exists():
            dest.mkdir()
            copy_repo(dest)
            run(["dvc", "repro"], dest)
            (shared / "built.done").touch()
    return dest


def copy_built(built: Path, dest: Path, store: bool = True) -> Path:
    """A private copy of `built`: git, DVC's cache and outputs, and (with `store`) its MLflow store, whose
    absolute paths (artifact locations) are moved to the copy. Without `store`, a repository with no MLflow
    store yet. A copy costs well under a second; a `dvc repro` of its own costs the whole pipeline."""
    ignore = None if store else shutil.ignore_patterns("mlflow.db", "mlflow.db.lock", "mlruns")
    shutil.copytree(built, dest, symlinks=True, ignore=ignore)
    if store:
        relocate_store(dest / "mlflow.db", str(built), str(dest))
    return dest


def relocate_store(db: Path, old: str, new: str) -> None:
    """Replace the folder `old` by `new` in every text column of an MLflow sqlite store."""
    with sqlite3.connect(db) as con:
        tables = [name for (name,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            for _, column, kind, *_ in con.execute(f'PRAGMA table_info("{table}")').fetchall():
                if any(word in kind.upper() for word in ("CHAR", "TEXT")):
                    con.execute(f'UPDATE "{table}" SET "{column}" = replace("{column}", ?, ?) '
                                f'WHERE "{column}" LIKE ?', (old, new, f"%{old}%"))
    con.close()


@pytest.fixture(scope="module")
def repo(built: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A module's own copy of `built`: after one `dvc repro`, with its MLflow run."""
    return copy_built(built, tmp_path_factory.mktemp("repo") / "repo")


# The modules that run the real tools longest, first: with `--dist loadfile --no-loadscope-reorder` (`make test`),
# pytest-xdist deals whole modules to its workers in collection order, and one dealt out last would run alone
# while the other worker idles. (By default it deals the modules with the most tests first, so the
# tracking-server and sharing modules, a minute of real tools in three tests, came last.) The second needs no
# `built`: its worker starts at once while the first worker builds it. The modules of a second or less go last,
# to even out the end.
LONGEST_FIRST = ["test_experiments.py", "test_distributed.py", "test_promote.py", "test_pipeline.py",
                 "test_sharing.py", "test_faults.py", "test_rerun.py", "test_tracking_server.py", "test_serving.py",
                 "test_bad_input.py", "test_trainers.py", "test_dvc_yaml.py", "test_optimum.py"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: file order otherwise
