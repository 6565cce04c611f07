"""Shared fixtures: Iris as tensors, and a throwaway copy of the repository to run the real tools in."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from softmax_regression.pipeline.queue import shared_cores  # imports no torch: before torch reads its threads

# pytest-xdist runs a worker per core: each worker, and every tool it starts, gets its share of the cores,
# as `make compare` gives its experiments. On every core, their torch threads wait on each other, and a test
# takes 3 to 25 times as long beside another busy worker.
if workers := os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    os.environ.update(shared_cores(int(workers)))

import pandas as pd  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from filelock import FileLock  # noqa: E402

from softmax_regression import runtime  # noqa: E402
from softmax_regression.data.raw import ingest_csv  # noqa: E402
from softmax_regression.data.split import split_parquet  # noqa: E402
from softmax_regression.data.tables import ROW_GROUP  # noqa: E402
from softmax_regression.files import write_json  # noqa: E402

runtime.settle()  # before MLflow and the first tensor op, as a stage

ROOT = Path(__file__).resolve().parents[1]
IRIS = ROOT / "data" / "Iris.csv"


@pytest.fixture(scope="session")
def iris() -> tuple[torch.Tensor, torch.Tensor]:
    """All 150 Iris rows, read by pandas: X (150, 4) float64, y (150,), the classes coded in sorted order."""
    table = pd.read_csv(IRIS)
    codes = {name: i for i, name in enumerate(sorted(table["Species"].unique()))}
    X = table[["SepalLengthCm", "SepalWidthCm", "PetalLengthCm", "PetalWidthCm"]].to_numpy()
    return torch.tensor(X), torch.tensor(table["Species"].map(codes).to_numpy())


def ingested(path: Path, label: str, **options) -> pd.DataFrame:
    """A CSV through ingest (`ingest_csv`), read back; `attrs["dropped_rows"]` counts the rows it dropped."""
    with tempfile.TemporaryDirectory() as folder:
        found = ingest_csv(path, Path(folder) / "dataset.parquet", label, **options)
        table = pd.read_parquet(Path(folder) / "dataset.parquet")
    table.attrs["dropped_rows"] = found.dropped_rows
    return table


def write_table(table: pd.DataFrame, path: Path, row_group: int = ROW_GROUP) -> Path:
    """A table as Parquet, in row groups of `row_group` rows, as ingest writes it."""
    pq.write_table(pa.Table.from_pandas(table, preserve_index=False), path, row_group_size=row_group)
    return path


def write_split(table: pd.DataFrame, label: str, folder: Path, val_size: float = 0.2, seed: int = 42) -> Path:
    """What the split stage writes for a table with a label column, through its own functions."""
    source = write_table(table, folder / "dataset.parquet")
    outputs = tuple(folder / f"{name}.parquet" for name in ("train", "val", "test"))
    classes, _ = split_parquet(source, label, 0.2, val_size, seed, outputs)
    write_json(folder / "classes.json", {"label": label, "classes": {c: i for i, c in enumerate(classes)}})
    return folder


def tool_env(**extra: str) -> dict[str, str]:
    """The environment the real dvc/git/mlflow run in: this venv first, a git identity, no telemetry, and none
    of the `make test` around the suite (a make inside it would print "Entering directory" lines)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_", "GIT_", "MAKE", "MFLAGS"))}
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


def shared_once(tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], None]) -> Path:
    """The folder `name`, built once per test run by `build(folder)` even with several pytest-xdist workers
    (the first builds it under a file lock, the others wait for it), and shared by all: never changed."""
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base  # the workers' common folder
    dest = shared / name
    with FileLock(shared / f"{name}.lock"):
        if not (shared / f"{name}.done").exists():
            shutil.rmtree(dest, ignore_errors=True)
            dest.mkdir()
            build(dest)
            (shared / f"{name}.done").touch()
    return dest


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh copy of the repository after one real `dvc repro`: what a new user's first run leaves. Shared,
    so never changed: a test that changes a repository takes `copy_built`."""
    def build(dest: Path) -> None:
        copy_repo(dest)
        run(["dvc", "repro"], dest)

    return shared_once(tmp_path_factory, "built", build)


@dataclass(frozen=True)
class Compared:
    """A repository after `make compare`, and what the command printed."""

    repo: Path
    stdout: str
    stderr: str

    def queued(self) -> dict[str, str]:
        """{implementation: experiment name} of what compare queued."""
        names = re.findall(r"Queued experiment '(\S+)'", self.stderr)
        return {name.split("-", 1)[0]: name for name in names}

    def table(self) -> list[list[str]]:
        """The rows of the table it printed, split into cells (two spaces or more apart)."""
        lines = self.stdout.strip().splitlines()
        return [re.split(r"\s{2,}", line.strip()) for line in lines[3:]]


@pytest.fixture(scope="session")
def compared(built: Path, tmp_path_factory: pytest.TempPathFactory) -> Compared:
    """`make compare` in a copy of `built` whose models/mlflow_run.json and dvc.lock are back at the committed
    ones (`git stash` after `make run`, or a teammate's clone after `dvc pull`): the workspace's outputs, and
    so the `manual` experiment's, were made by a run in another store. Shared, so never changed."""
    def build(dest: Path) -> None:
        copy_built(built, dest / "repo")
        run(["git", "checkout", "HEAD", "--", "models/mlflow_run.json", "dvc.lock"], dest / "repo")
        result = run([sys.executable, "-m", "softmax_regression.commands.compare"], dest / "repo", timeout=600)
        (dest / "stdout").write_text(result.stdout)
        (dest / "stderr").write_text(result.stderr)

    folder = shared_once(tmp_path_factory, "compared", build)
    return Compared(folder / "repo", (folder / "stdout").read_text(), (folder / "stderr").read_text())


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


def store(repo: Path):
    """An MLflow client on the repository's local store, tracking and registry."""
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{repo / 'mlflow.db'}"
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def mlflow_runs(repo: Path, experiment: str = "softmax-regression") -> list:
    """Every run of the experiment in the repository's store, newest first; none without the experiment."""
    client = store(repo)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return []
    return client.search_runs([found.experiment_id], order_by=["attributes.start_time DESC"])


def run_id_of(repo: Path) -> str:
    """The MLflow run that made the workspace's model (models/mlflow_run.json)."""
    return json.loads((repo / "models/mlflow_run.json").read_text())["run_id"]


def logged_weights(repo: Path, run_id: str, folder: Path) -> Path:
    """The run's weights as MLflow keeps them (weights/model.safetensors), downloaded into `folder`."""
    return Path(store(repo).download_artifacts(run_id, "weights/model.safetensors", str(folder / run_id)))


def interrupted_at(statements: list[str], command: list[str]) -> str:
    """Python code that runs `command` (a script, or `-m` and a module, with its arguments) and sends itself
    SIGTERM in the middle of an SQL statement: the first that starts with statements[-1] once statements
    starting with the others have run, in that order. It lands after the database has run the statement and
    before its rows are fetched, where an interrupt raised at once would leave the connection locked."""
    module = command[0] == "-m"
    argv = [command[1], *command[2:]] if module else command
    start = (f"runpy.run_module({command[1]!r}, run_name='__main__', alter_sys=True)" if module
             else f"runpy.run_path({command[0]!r}, run_name='__main__')")
    return f"""
import os, runpy, signal, sys
from sqlalchemy import event
from sqlalchemy.engine import Engine

waiting_for = {statements!r}

@event.listens_for(Engine, "after_cursor_execute")
def interrupt_mid_query(conn, cursor, statement, parameters, context, executemany):
    if waiting_for and statement.lstrip().startswith(waiting_for[0]):
        waiting_for.pop(0)
        if not waiting_for:
            os.kill(os.getpid(), signal.SIGTERM)

sys.argv = {argv!r}
{start}
"""


def ctrl_c_on_make(repo: Path, folder: Path, command: list[str], ready: str) -> list[str]:
    """`make` of a target whose recipe is `python <command>`, in `repo`, in a terminal as a person has it (a
    pseudo-terminal and an interactive shell); once `ready`, a URL, answers, Ctrl-C. Returns the lines printed
    after the Ctrl-C, the last being the shell's `exit=<make's exit status>`."""
    (folder / "Makefile").write_text(f"target:\n\t@{sys.executable} {' '.join(command)}\n")
    pid, fd = pty.fork()
    if pid == 0:  # the shell, in the pseudo-terminal
        os.chdir(repo)
        os.execvpe("bash", ["bash", "--norc", "-i", "-c", f"make -f {folder / 'Makefile'} target; echo exit=$?"],
                   tool_env(TERM="dumb"))
    try:
        deadline = time.monotonic() + 120
        while True:
            _read(fd, 0.2)  # the terminal's buffer must not fill while the server starts
            try:
                urllib.request.urlopen(ready, timeout=2)
                break
            except OSError:
                assert time.monotonic() < deadline, f"{command} did not start"
        # What the server says before the Ctrl-C, its log of the probes above included, is read first: until
        # it has been quiet for 2 s, which a busy machine's delay in relaying a line stays well within.
        settled_by = time.monotonic() + 60
        while _read(fd, 2.0) and time.monotonic() < settled_by:
            pass
        os.write(fd, b"\x03")  # Ctrl-C, as the terminal sends it
        after = b""
        while b"exit=" not in after or not after.endswith(b"\n"):
            chunk = _read(fd, 60.0)
            assert chunk, after.decode(errors="replace")
            after += chunk
    finally:
        os.waitpid(pid, 0)
    lines = [line.removeprefix("^C") for line in after.decode().replace("\r", "").split("\n")]
    return [line for line in lines if line.strip()]


def _read(fd: int, timeout: float) -> bytes:
    ready, _, _ = select.select([fd], [], [], timeout)
    if not ready:
        return b""
    try:
        return os.read(fd, 65536)
    except OSError:  # the shell has exited
        return b""


CHROMIUM = shutil.which("chromium")
needs_chromium = pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"),
                                    reason="Chromium is not installed (apt-get install -y chromium); CI installs it")


def browse(url: str, out: Path, expect: list[str], size: str = "1600,1000", attempts: int = 4, budget: int = 20000,
           offline: bool = False) -> str:
    """What a person sees at `url`: headless Chromium (the Debian package) saves a screenshot to `out` and
    returns the rendered HTML, once every text in `expect` is in it (the page fills in as its requests return:
    each look waits `budget` ms of the page's time longer, up to `attempts` looks); else the last look's HTML.
    `offline`: no host name resolves, as behind a firewall."""
    assert CHROMIUM, "CI must have Chromium (.ci/run installs it)"
    for attempt in range(1, attempts + 1):
        flags = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--hide-scrollbars",
                 f"--window-size={size}", f"--virtual-time-budget={budget * attempt}"]
        if offline:
            flags.append("--host-resolver-rules=MAP * ~NOTFOUND")
        dom = subprocess.run([CHROMIUM, *flags, f"--screenshot={out}", "--dump-dom", url], capture_output=True,
                             text=True, timeout=300, check=True).stdout
        if all(text in dom for text in expect) or attempt == attempts:
            out.with_suffix(".html").write_text(dom)
            return dom
    raise AssertionError("unreachable")


# The modules that run the real tools longest, first: with `--dist loadfile --no-loadscope-reorder` (`make test`),
# pytest-xdist deals whole modules to its workers in collection order, and one dealt out last would run alone
# while the other worker idles (by default it deals the modules with the most tests first, whatever they cost).
# The second needs no `built`: its worker starts at once while the first worker builds it. The modules of a
# second or less go last, to even out the end.
LONGEST_FIRST = ["test_tune.py", "test_distributed.py", "test_compare.py", "test_promote.py", "test_pipeline.py", "test_ui.py",
                 "test_sharing.py", "test_faults.py", "test_rerun.py", "test_tracking_server.py", "test_serving.py",
                 "test_predict.py", "test_bad_input.py", "test_training.py", "test_dvc_yaml.py", "test_optimum.py"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: file order otherwise
