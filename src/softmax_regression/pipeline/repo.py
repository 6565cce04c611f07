"""git and DVC on the repository: a failure is one line naming the command."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from typing import Any, TypeVar

from softmax_regression.errors import PipelineError
from softmax_regression.paths import repo_root

T = TypeVar("T")


def git(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """`git …` at the repository root, its output captured."""
    result = subprocess.run(["git", *args], cwd=repo_root(), capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise PipelineError(f"`git {' '.join(args)}` failed: {_last_line(result.stderr)}")
    return result


def has_experiment(name: str) -> bool:
    """Whether this repository holds the DVC experiment (as a ref under refs/exps/)."""
    refs = git("for-each-ref", "--format=%(refname)", "refs/exps/").stdout.split()
    return any(ref.rsplit("/", 1)[-1] == name for ref in refs)


def dvc(*args: str, quiet: bool = False) -> None:
    """`dvc …` at the repository root. Its output goes to the user as it comes, or with `quiet` only the
    last line of it, in the error, should it fail."""
    if not quiet:
        if subprocess.run(["dvc", *args], cwd=repo_root(), check=False).returncode != 0:
            raise PipelineError(f"`dvc {' '.join(args)}` failed (its message is above)")
        return
    result = subprocess.run(["dvc", *args], cwd=repo_root(), capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise PipelineError(f"`dvc {' '.join(args)}` failed: {_last_line(result.stderr or result.stdout)}")


def dvc_api(command: str, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """`call`, one of DVC's Python functions, doing what `command` does; its errors as one line."""
    from dvc.exceptions import DvcException
    from hydra.errors import HydraException  # DVC parses `-S` with Hydra's override grammar

    try:
        return call(*args, **kwargs)
    except (DvcException, HydraException) as e:
        causes = []  # "Invalid `--set-param` value", then why: the first line of each, as DVC's CLI says it
        while e is not None:
            causes += [line.rstrip(".") for line in str(e).strip().splitlines()[:1]]
            e = e.__cause__
        raise PipelineError(f"`{command}` failed: {': '.join(causes)}") from None


def _last_line(text: str) -> str:
    return (text.strip().splitlines() or ["(no output)"])[-1]


def exp_show() -> list[dict[str, Any]]:
    """The rows of `dvc exp show`: the workspace, its commit and the commit's experiments, each with its
    params and metrics by name (`train.impl`, `val_log_loss`, `run_id`, …)."""
    import dvc.api

    return dvc_api("dvc exp show", dvc.api.exp_show, repo=str(repo_root()))


def stage_outputs() -> list[str]:
    """Every output, metric and plot file of dvc.yaml's stages, relative to the repository root."""
    from dvc.repo import Repo

    with Repo(str(repo_root())) as repo:
        return sorted({str(out.def_path) for stage in repo.index.stages for out in stage.outs})
