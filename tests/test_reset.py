"""`make reset` after a failed experiment: params.yaml and every pipeline output back to the last commit, with
the real dvc and git, and nothing else touched."""

from __future__ import annotations

import sys

from conftest import copy_built, run


def test_after_a_failed_experiment_reset_restores_the_commit_and_nothing_else(built, tmp_path):
    repo = copy_built(built, tmp_path / "repo")
    run(["git", "commit", "-qam", "make run"], repo)
    model = (repo / "models/model.safetensors").read_bytes()
    (repo / "notes.txt").write_text("a file of the user's own\n")
    (repo / "README.md").write_text((repo / "README.md").read_text() + "\nAn edit of the user's own.\n")

    failed = run(["dvc", "exp", "run", "-S", "train.lr=-1"], repo, check=False)
    assert failed.returncode != 0 and "train.lr must be a number > 0" in failed.stdout + failed.stderr
    assert "lr: -1" in (repo / "params.yaml").read_text(), "DVC leaves the failed setting in params.yaml"
    assert not (repo / "models/model.safetensors").exists(), "and the failed stage's outputs removed"

    result = run([sys.executable, "-m", "softmax_regression.commands.reset"], repo)
    assert result.stdout.startswith("reset: params.yaml, dvc.lock and every output of the pipeline are commit ")
    assert "up to date" in run(["dvc", "status"], repo).stdout
    assert run(["git", "status", "--porcelain"], repo).stdout.splitlines() == [" M README.md", "?? notes.txt"]
    assert (repo / "models/model.safetensors").read_bytes() == model
    assert (repo / "notes.txt").read_text() == "a file of the user's own\n"
