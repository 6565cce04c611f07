"""Sharing with a team, with the real tools: a local-directory DVC remote and a bare git repository as
`origin`. Pushed data and experiments reach a fresh clone, which then has nothing to re-compute; an
experiment's MLflow run (on the shared store) is found by the experiment's tag, and a teammate re-runs it
from its run id alone to the same bits. Tests run in file order."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from conftest import copy_built, logged_weights, run, run_id_of, store, tool_env

EXPERIMENT = "shared-l2"


@pytest.fixture(scope="module")
def team(built, tmp_path_factory) -> dict[str, Path]:
    """Alice's repository (a copy after `make run`, committed) with `origin` (bare git) and `storage` (a
    folder) set up and pushed to, as the README says."""
    root = tmp_path_factory.mktemp("team")
    alice = copy_built(built, root / "alice")
    origin, storage = root / "origin.git", root / "storage"
    run(["git", "init", "-q", "--bare", "-b", "main", str(origin)], root)
    run(["git", "remote", "add", "origin", str(origin)], alice)
    run(["dvc", "remote", "add", "-d", "storage", str(storage)], alice)
    run(["git", "add", "-A"], alice)
    run(["git", "commit", "-qm", "make run; a DVC remote"], alice)
    run(["git", "push", "-q", "origin", "main"], alice)
    run(["dvc", "push"], alice)
    return {"root": root, "alice": alice, "origin": origin, "storage": storage}


def clone(team: dict[str, Path], name: str) -> Path:
    dest = team["root"] / name
    run(["git", "clone", "-q", str(team["origin"]), str(dest)], team["root"])
    return dest


def test_a_fresh_clone_pulls_the_data_and_has_nothing_to_recompute(team):
    bob = clone(team, "bob")
    assert not (bob / "models/model.safetensors").exists()
    run(["dvc", "pull"], bob)
    assert (bob / "models/model.safetensors").read_bytes() == (team["alice"] / "models/model.safetensors").read_bytes()
    assert run(["dvc", "status"], bob).stdout.strip() == "Data and pipelines are up to date."
    repro = run(["dvc", "repro"], bob)
    assert "Running stage" not in repro.stdout, repro.stdout


def test_a_pushed_experiment_is_pulled_applied_and_needs_no_rerun_and_its_run_is_found(team):
    alice = team["alice"]
    run(["dvc", "exp", "run", "-n", EXPERIMENT, "-S", "train.l2=0.001"], alice)
    run_id = run_id_of(alice)
    run(["dvc", "exp", "push", "origin", EXPERIMENT], alice)

    carol = clone(team, "carol")
    run(["dvc", "exp", "pull", "origin", EXPERIMENT], carol)
    assert EXPERIMENT in run(["dvc", "exp", "list", "--all-commits", "--name-only"], carol).stdout
    run(["dvc", "exp", "apply", EXPERIMENT], carol)
    assert "l2: 0.001" in (carol / "params.yaml").read_text()
    assert (carol / "models/model.safetensors").read_bytes() == (alice / "models/model.safetensors").read_bytes()
    repro = run(["dvc", "repro"], carol)
    assert "Running stage" not in repro.stdout, repro.stdout

    shared = store(alice)  # Alice's store stands for the team's shared store or server
    experiment = shared.get_experiment_by_name("softmax-regression").experiment_id
    found = shared.search_runs([experiment], f"tags.`dvc.exp_name` = '{EXPERIMENT}'")
    assert [r.info.run_id for r in found] == [run_id]
    assert run_id_of(carol) == run_id
    assert found[0].info.status == "FINISHED" and found[0].data.params["train.l2"] == "0.001"


def test_a_teammate_reruns_the_pushed_experiment_from_its_run_id_to_the_same_bits(team, tmp_path):
    """Dave has the run id from the team's store (Alice's, as above) and a fresh clone: `dvc exp pull`,
    then `make rerun`, which restores the experiment, trains again and gets the logged weights to the bit."""
    shared_uri = f"sqlite:///{team['alice'] / 'mlflow.db'}"
    shared = store(team["alice"])
    experiment = shared.get_experiment_by_name("softmax-regression").experiment_id
    [pushed] = shared.search_runs([experiment], f"tags.`dvc.exp_name` = '{EXPERIMENT}'")
    dave = clone(team, "dave")
    run(["dvc", "exp", "pull", "origin", EXPERIMENT], dave)
    assert "l2: 0.01 " in (dave / "params.yaml").read_text(), "the clone has the committed params"
    result = run([sys.executable, "-m", "softmax_regression.commands.rerun", pushed.info.run_id], dave,
                 env=tool_env(MLFLOW_TRACKING_URI=shared_uri), timeout=600)
    assert f"restored DVC experiment {EXPERIMENT}" in result.stderr, result.stderr
    assert "rerun: the weights are the same, bit for bit" in result.stdout, result.stdout + result.stderr
    assert "l2: 0.001 " in (dave / "params.yaml").read_text()
    logged = logged_weights(team["alice"], pushed.info.run_id, tmp_path)
    assert (dave / "models/model.safetensors").read_bytes() == logged.read_bytes()
    again = run_id_of(dave)
    assert again != pushed.info.run_id and shared.get_run(again).info.status == "FINISHED", \
        "the re-run is a run of its own, in the team's store"
