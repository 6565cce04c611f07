"""The MLflow store (`tracking.runs`): created once however many processes start on it together."""

from __future__ import annotations

import subprocess
import sys

from conftest import store, tool_env


def test_two_processes_on_a_new_store_make_one_experiment(tmp_path):
    """Queue workers start together on a repository with no MLflow store yet: the store and the experiment
    are created once, under a file lock, and both processes get the same experiment."""
    (tmp_path / ".dvc").mkdir()
    code = ("from softmax_regression.tracking import runs; runs.connect(); "
            "print(runs.experiment_id('softmax-regression'))")
    processes = [subprocess.Popen([sys.executable, "-c", code], cwd=tmp_path, env=tool_env(DVC_ROOT=str(tmp_path)),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    ids = []
    for process in processes:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        ids.append(out.strip().splitlines()[-1])
    assert ids[0] == ids[1]
    experiments = [e for e in store(tmp_path).search_experiments() if e.name == "softmax-regression"]
    assert len(experiments) == 1 and experiments[0].artifact_location == (tmp_path / "mlruns").as_uri()
