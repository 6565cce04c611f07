"""Where a run comes from: the repository, its git commit, and the hashes DVC recorded."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import yaml


def repo_root() -> Path:
    """DVC's repository root: DVC_ROOT when a stage runs under DVC, else the nearest folder with `.dvc/`."""
    if "DVC_ROOT" in os.environ:
        return Path(os.environ["DVC_ROOT"]).resolve()
    here = Path.cwd().resolve()
    return next((p for p in (here, *here.parents) if (p / ".dvc").is_dir()), here)


def dvc_hash(path: str, lock_file: str = "dvc.lock") -> str | None:
    """The md5 DVC recorded for `path` as a dependency in dvc.lock, if it did."""
    try:
        with open(lock_file, encoding="utf-8") as f:
            lock = yaml.safe_load(f) or {}
    except OSError:
        return None
    for stage in lock.get("stages", {}).values():
        for dep in stage.get("deps", []):
            if dep.get("path") == path and "md5" in dep:
                return dep["md5"]
    return None


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
