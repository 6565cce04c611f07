"""`make tune` against one plain `dvc exp run`, side by side in a fresh clone after `dvc repro`: a search of 20
trials on Iris, the winner's DVC experiment included, should cost at most three experiments."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import clone, tool_env

TARGET = 3.0


def timed(command: list[str], repo: Path) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=repo, env=tool_env(), check=True, capture_output=True)
    return time.perf_counter() - start


def run(trials: int = 20) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        repo = clone(Path(tmp) / "clone")
        subprocess.run(["dvc", "repro"], cwd=repo, env=tool_env(), check=True, capture_output=True)
        experiments = sorted(timed(["dvc", "exp", "run", "-S", f"train.lr={lr}"], repo) for lr in (0.05, 0.06, 0.07))
        search = timed([sys.executable, "-m", "softmax_regression.commands.tune", "--trials", str(trials)], repo)
    one = experiments[1]  # the median of three
    return {"trials": trials, "one_experiment_s": one, "tune_s": search, "ratio": search / one}


def markdown(r: dict) -> str:
    met = "met" if r["ratio"] <= TARGET else "**not met**"
    return "\n".join([
        "## A search against one experiment: `make tune`",
        "",
        f"`make tune` of {r['trials']} trials on Iris (params.yaml's `tune:` section), the winner's DVC experiment "
        "included, against one plain `dvc exp run -S train.lr=…` (the median of three), in a fresh clone after "
        "`dvc repro`.",
        "",
        "| one `dvc exp run` (s) | `make tune` (s) | ratio | target ≤ 3× |",
        "| ---: | ---: | ---: | --- |",
        f"| {r['one_experiment_s']:.1f} | {r['tune_s']:.1f} | {r['ratio']:.2f}× | {met} |",
    ])
