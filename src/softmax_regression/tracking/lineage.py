"""Where a run comes from: the repository, its git commit, and the hashes DVC recorded."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from typing import Any

import yaml

from softmax_regression.paths import repo_root

FAST_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: dvc.lock is read for every tune trial


def dvc_hash(path: str, lock_file: str = "dvc.lock") -> str | None:
    """The md5 DVC recorded for `path` as a dependency in dvc.lock, if it did."""
    try:
        with open(lock_file, encoding="utf-8") as f:
            lock = yaml.load(f, Loader=FAST_LOADER) or {}
    except OSError:
        return None
    for stage in lock.get("stages", {}).values():
        for dep in stage.get("deps", []):
            if dep.get("path") == path and "md5" in dep:
                return dep["md5"]
    return None


def baseline_params(commit: str | None) -> dict[str, Any] | None:
    """params.yaml as committed at `commit` (an experiment's baseline), or None when git cannot say."""
    if not commit:
        return None
    try:
        out = subprocess.run(["git", "show", f"{commit}:params.yaml"], cwd=repo_root(), capture_output=True,
                             text=True, timeout=10)
        return yaml.safe_load(out.stdout) if out.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired, yaml.YAMLError):
        return None


def changed_params(params: Mapping[str, Any], baseline: Mapping[str, Any] | None) -> dict[str, Any]:
    """The flat params (`train.lr`: 0.1) whose values differ from the flat `baseline`'s, in params order.
    Values are compared as text read back as YAML, which is how MLflow logs them and how a re-run restores
    them: "0.1" read from a run equals 0.1 from a params.yaml, and `tol: 0` equals `tol: 0.0`."""
    if baseline is None:
        return {}
    return {key: value for key, value in params.items()
            if key not in baseline or as_yaml(baseline[key]) != as_yaml(value)}


def as_yaml(value: Any) -> Any:
    """A param's value as params.yaml would hold it: text (as MLflow logs it) read as YAML, else the text."""
    try:
        return yaml.safe_load(str(value))
    except yaml.YAMLError:
        return str(value)


def git_commit() -> str | None:
    """The commit the code came from: the experiment's baseline under `dvc exp run`, else HEAD."""
    if os.environ.get("DVC_EXP_BASELINE_REV"):
        return os.environ["DVC_EXP_BASELINE_REV"]
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo_root(), capture_output=True, text=True,
                             timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None
