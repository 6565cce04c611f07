"""From a run in the MLflow UI back to a reproducible state: `make rerun RUN=<MLflow run id>`.

    python -m softmax_regression.commands.rerun 8e4d4754936d4946ab9c82d794b0d659

It restores the run's code and params into the workspace — its DVC experiment (`dvc exp apply`) when the
run has one and this repository holds it, else its git commit (`git checkout`, a detached HEAD) with the
params it logged written into params.yaml — then runs the whole pipeline again (`dvc repro -f`) and
compares the new weights with the run's logged `weights/model.safetensors`, byte for byte.

It refuses, with one line and nothing changed, a run that is not in the store, a run whose commit is not in
this repository, and a workspace with uncommitted changes.
"""

from __future__ import annotations

import hashlib
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from softmax_regression import paths
from softmax_regression.commands.console import parser
from softmax_regression.config import flatten
from softmax_regression.errors import PipelineError
from softmax_regression.pipeline.repo import dvc, git, has_experiment
from softmax_regression.process import run_main
from softmax_regression.tracking import names
from softmax_regression.tracking.lineage import as_yaml, changed_params


class RerunRefused(PipelineError):
    """The run cannot be brought back here; nothing was changed."""


def check_clean() -> None:
    """Refuse a workspace with uncommitted changes to tracked files: restoring a run would overwrite them."""
    changed = git("status", "--porcelain", "--untracked-files=no").stdout.splitlines()
    if changed:
        files = ", ".join(line[3:] for line in changed[:3]) + (f" and {len(changed) - 3} more" if len(changed) > 3 else "")
        raise RerunRefused(f"the workspace has uncommitted changes ({files}); commit or stash them (git stash) "
                           f"first: nothing was changed")


def logged_params(logged: dict[str, str], committed: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """params.yaml with the run's logged values (strings in MLflow) put back with their YAML types; and the
    dotted keys that differ from `committed`."""
    changed = list(changed_params(logged, flatten(committed)))
    for key in changed:
        *sections, leaf = key.split(".")
        node = committed
        for name in sections:
            node = node.setdefault(name, {})
        node[leaf] = as_yaml(logged[key])
    return committed, changed


def source_of(run: Any) -> tuple[str, str]:
    """Where the run's code and params come from: ("experiment", its name) when this repository holds its
    DVC experiment, else ("commit", its git commit); refuses when neither is here."""
    experiment, commit = run.data.tags.get(names.EXP_NAME), run.data.tags.get(names.GIT_COMMIT)
    if experiment and has_experiment(experiment):
        return "experiment", experiment
    if not commit:
        raise RerunRefused(f"run {run.info.run_id} recorded no git commit (tag {names.GIT_COMMIT})")
    if git("cat-file", "-e", f"{commit}^{{commit}}", check=False).returncode != 0:
        raise RerunRefused(f"run {run.info.run_id} was made at commit {commit}, which is not in this repository; "
                           f"fetch it (git fetch origin) and try again")
    return "commit", commit


def restore(run: Any, kind: str, ref: str) -> str:
    """Bring the run's code and params into the workspace; returns what was restored."""
    if kind == "experiment":
        dvc("exp", "apply", ref)
        return f"DVC experiment {ref}"
    if git("rev-parse", "HEAD").stdout.strip() != ref:
        git("checkout", "--quiet", ref)
    params_file = paths.repo_root() / paths.PARAMS
    params, changed = logged_params(run.data.params, yaml.safe_load(params_file.read_text(encoding="utf-8")))
    if changed:
        params_file.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    extra = f" with {', '.join(changed)} as logged" if changed else ""
    return f"commit {ref[:7]}{extra}"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def rerun(run_id: str) -> bool:
    """Restore, re-run and compare; True when the new weights are the logged ones, byte for byte."""
    check_clean()  # in a blink, before MLflow's seconds of imports
    from softmax_regression.tracking import runs

    uri = runs.connect()
    run = runs.find_run(run_id)
    if run is None:
        raise RerunRefused(f"MLflow run {run_id} is not in {uri}; check the id (the UI's Run ID), or set "
                           f"MLFLOW_TRACKING_URI to the store that has it")
    kind, ref = source_of(run)
    with tempfile.TemporaryDirectory() as folder:
        try:
            logged = runs.download(run_id, names.LOGGED_MODEL, folder)
        except Exception as e:  # noqa: BLE001 - MLflow raises several kinds for a missing artifact
            raise RerunRefused(f"run {run_id} has no {names.LOGGED_MODEL} to compare with: {e}") from None
        how = restore(run, kind, ref)
        print(f"rerun: restored {how}; running the pipeline again (dvc repro -f)", file=sys.stderr, flush=True)
        dvc("repro", "-f")
        new, old = sha256(paths.repo_root() / paths.MODEL), sha256(logged)
    same = new == old
    print(f"rerun: {paths.MODEL} sha256 {new}\n"
          f"rerun: run {run_id}'s {names.LOGGED_MODEL} sha256 {old}\n"
          f"rerun: the weights are {'the same, bit for bit' if same else 'DIFFERENT'}")
    return same


def main(argv: list[str] | None = None) -> None:
    arguments = parser("rerun", __doc__)
    arguments.add_argument("run_id", help="the MLflow run to re-run")
    args = arguments.parse_args(argv)
    if not rerun(args.run_id):
        raise PipelineError("the re-run's weights differ from the logged ones (docs/reproducibility.md says when "
                            "they can)")


if __name__ == "__main__":
    run_main(main)
