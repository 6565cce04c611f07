"""The everyday loop: `dvc repro` on Iris in a fresh clone, after a change of `train.lr` and with nothing to
do, each stage against the floor of starting Python and importing what it needs."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import clone, tool_env

STAGE_IMPORTS = {  # the packages each stage needs, imported in a fresh interpreter: the floor of its time
    "ingest": "import pandas, pyarrow, pyarrow.csv, yaml",
    "split": "import pandas, pyarrow, pyarrow.parquet, yaml",
    "train": "import torch, mlflow, pandas, pyarrow.parquet, safetensors, yaml, filelock, matplotlib.pyplot",
    "evaluate": "import torch, mlflow, pandas, pyarrow.parquet, safetensors, yaml, filelock, matplotlib.pyplot",
}
SQL_STORE = "mlflow.store.tracking.sqlalchemy_store"  # what MLflow imports to open the local store
TARGET = 1.3


def timed_repro(repo: Path, env: dict) -> tuple[float, dict[str, float]]:
    """`dvc repro` in `repo`: its wall time, and each stage's, from the line where DVC announces it to the
    next announcement (or DVC's last line), so DVC's hashing and lock writing after a stage count in it;
    what is left, DVC's start-up before the first stage and its last words, is DVC's own."""
    start = time.perf_counter()
    marks: list[tuple[str, float]] = []
    last = start
    with subprocess.Popen(["dvc", "repro"], cwd=repo, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True) as process:
        for line in process.stdout:
            if line.startswith("Running stage '"):
                marks.append((line.split("'")[1], time.perf_counter()))
            elif line.startswith(("To track the changes", "Use `dvc push`")) or not marks:
                continue
            last = time.perf_counter()
    total = time.perf_counter() - start
    if process.returncode:
        raise RuntimeError(f"dvc repro failed in {repo}")
    ends = [t for _, t in marks[1:]] + [last] if marks else []
    return total, {name: end - begun for (name, begun), end in zip(marks, ends, strict=True)}


def import_floor(statement: str, env: dict, repeats: int = 3) -> float:
    """The median time to start Python and run `statement` (imports), in a fresh interpreter each time."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", statement], env=env, check=True)
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def run() -> dict:
    """`dvc repro` on Iris against the import floor, side by side: in a fresh clone (no MLflow store yet),
    after a change of `train.lr` (train and evaluate re-run; the median of three), and a no-op."""
    env = tool_env()
    floors = {stage: import_floor(statement, env) for stage, statement in STAGE_IMPORTS.items()}
    with_store = {stage: import_floor(f"{STAGE_IMPORTS[stage]}, {SQL_STORE}", env) for stage in ("train", "evaluate")}
    with tempfile.TemporaryDirectory() as tmp:
        repo = clone(Path(tmp) / "clone")
        fresh, stages = timed_repro(repo, env)
        noop, _ = timed_repro(repo, env)  # nothing changed since
        changed = []
        params = (repo / "params.yaml").read_text()
        for lr in (0.11, 0.12, 0.13):
            (repo / "params.yaml").write_text(params.replace("  lr: ", f"  lr: {lr}  # instead of ", 1))
            changed.append(timed_repro(repo, env))
    change, change_stages = sorted(changed, key=lambda r: r[0])[1]
    floor_all, floor_two = sum(floors.values()), floors["train"] + floors["evaluate"]
    return {
        "per_stage": {stage: {"wall_s": stages[stage], "import_floor_s": floors[stage]} for stage in STAGE_IMPORTS},
        "dvc_own_s": fresh - sum(stages.values()),
        "import_floor_with_sql_store_s": with_store,
        "fresh_clone_s": fresh, "fresh_clone_floor_s": floor_all, "fresh_clone_over_floor": fresh / floor_all,
        "after_train_change_s": change, "after_train_change_floor_s": floor_two,
        "after_train_change_over_floor": change / floor_two, "per_stage_after_train_change": change_stages,
        "noop_s": noop,
    }


def markdown(r: dict) -> str:
    rows = [f"| {stage} | {m['wall_s']:.2f} | {m['import_floor_s']:.2f} | {m['wall_s'] - m['import_floor_s']:.2f} |"
            for stage, m in r["per_stage"].items()]
    met = {key: "met" if r[key] <= TARGET else "**not met**"
           for key in ("fresh_clone_over_floor", "after_train_change_over_floor")}
    return "\n".join([
        "## The everyday loop: `dvc repro` on Iris",
        "",
        "Each stage's wall time in a fresh clone, from DVC's announcement of it to the next, against the floor of "
        "starting Python and importing the packages it needs (the median of three cold starts).",
        "",
        "| stage | wall (s) | import floor (s) | rest (s) |",
        "| --- | ---: | ---: | ---: |",
        *rows,
        f"| DVC's start-up and last words | {r['dvc_own_s']:.2f} | | |",
        "",
        "| run | wall (s) | floor (s) | ratio | target ≤ 1.3× |",
        "| --- | ---: | ---: | ---: | --- |",
        f"| fresh clone | {r['fresh_clone_s']:.2f} | {r['fresh_clone_floor_s']:.2f} | "
        f"{r['fresh_clone_over_floor']:.2f}× | {met['fresh_clone_over_floor']} |",
        f"| after a `train.lr` change (median of 3) | {r['after_train_change_s']:.2f} | "
        f"{r['after_train_change_floor_s']:.2f} | {r['after_train_change_over_floor']:.2f}× | "
        f"{met['after_train_change_over_floor']} |",
        f"| nothing changed | {r['noop_s']:.2f} | | | |",
        "",
        "The floor with MLflow's SQL store module imported too (what opening the local store needs): "
        + ", ".join(f"{stage} {s:.2f} s" for stage, s in r["import_floor_with_sql_store_s"].items()) + ".",
    ])
