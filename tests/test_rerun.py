"""`make rerun RUN=<id>`: from an MLflow run back to its commit and params, re-run, the same weights bit for
bit; and one clear line, with nothing changed, for a dirty workspace, a commit this repository lacks and an
unknown run id. Real git, dvc and mlflow, in a copy of the repository. The tests run in file order.
A run of a commit, with params that differ from the commit's, is re-run to the same bits in test_tune (a trial's
run); a run of a DVC experiment, in a teammate's clone, from the shared store, in test_sharing."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from conftest import copy_built, interrupted_at, run, run_id_of, store, tool_env

FAKE_COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def repo(built, tmp_path_factory) -> Path:
    """A copy after `make run`, its first run committed (a clean workspace)."""
    repo = copy_built(built, tmp_path_factory.mktemp("rerun") / "repo")
    run(["git", "commit", "-qam", "make run"], repo)
    return repo


def make_rerun(repo: Path, run_id: str, check: bool = True):
    return run([sys.executable, "-m", "softmax_regression.commands.rerun", run_id], repo, check=check, timeout=600)


def one_line(result) -> str:
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_an_unknown_run_id_is_one_line(repo):
    line = one_line(make_rerun(repo, "f" * 32, check=False))
    assert line.startswith(f"error: MLflow run {'f' * 32} is not in sqlite:///{repo / 'mlflow.db'}")


def test_a_commit_not_in_the_repository_is_one_line(repo):
    c = store(repo)
    experiment = c.get_experiment_by_name("softmax-regression").experiment_id
    other = c.create_run(experiment, tags={"mlflow.source.git.commit": FAKE_COMMIT}).info.run_id
    c.set_terminated(other)
    line = one_line(make_rerun(repo, other, check=False))
    assert line == (f"error: run {other} was made at commit {FAKE_COMMIT}, which is not in this repository; "
                    f"fetch it (git fetch origin) and try again")


def test_a_dirty_workspace_is_refused_and_nothing_is_lost(repo):
    first = run_id_of(repo)
    params = repo / "params.yaml"
    edited = params.read_text().replace("lr: 0.1 ", "lr: 0.2 ")
    params.write_text(edited)
    line = one_line(make_rerun(repo, first, check=False))
    assert line == ("error: the workspace has uncommitted changes (params.yaml); commit or stash them (git stash) "
                    "first: nothing was changed")
    assert params.read_text() == edited
    run(["git", "checkout", "--", "params.yaml"], repo)


def test_an_interrupt_while_it_reads_the_run_changes_nothing(repo):
    """SIGTERM in the middle of MLflow's query for the run: the query ends first (no locked store), then the
    command stops with one line, before anything in the workspace is touched."""
    first = run_id_of(repo)
    code = interrupted_at(["SELECT"], ["-m", "softmax_regression.commands.rerun", first])
    result = run([sys.executable, "-c", code], repo, env=tool_env(), check=False)
    assert result.returncode == 130, result.stderr
    assert result.stderr.strip() == "error: interrupted; outputs written so far are complete, the rest untouched"
    assert run(["git", "status", "--porcelain"], repo).stdout == "" and run_id_of(repo) == first
