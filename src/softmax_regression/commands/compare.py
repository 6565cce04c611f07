"""The standard comparison: the three implementations on the same params, as queued DVC experiments run all
at once (one queue worker each), then one table of their numbers.

    make compare                                   # = python -m softmax_regression.commands.compare
    make compare ARGS='-S train.optimizer=lbfgs -S train.tol=1e-5'

The numbers are each experiment's DVC metrics; the train time and the run id are from its MLflow run. The
experiment whose params are the workspace's has nothing to run: its row is the workspace's outputs, whose
MLflow run may be in another store (a teammate's, after `dvc pull`), and the table says so.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import Any

from softmax_regression.commands.console import parser, text_table
from softmax_regression.config import Impl, choices
from softmax_regression.pipeline.queue import experiment_rows, queue, run_queue
from softmax_regression.pipeline.repo import dvc
from softmax_regression.process import run_main

# Validation, not test: runs are compared and chosen on validation rows alone
COLUMNS = ("implementation", "final train loss", "train accuracy", "val log-loss", "val accuracy", "train time (s)",
           "MLflow run id")
SHARED = ("ingest.path", "split.val_size", "split.seed")  # besides train.*: what the three rows share


def table(rows: Mapping[str, Mapping[str, Any]]) -> tuple[list[tuple[str, ...]], list[str]]:
    """One row per experiment, and a note for each run that is not in the store."""
    from softmax_regression.tracking import runs  # mlflow: seconds, once the experiments have run

    uri = runs.connect()
    lines, notes = [], []
    for name, row in rows.items():
        run = runs.find_run(row["run_id"]) if row.get("run_id") else None
        if run is None:
            notes.append(f"compare: {name}'s MLflow run {row.get('run_id')} is not in {uri}: its outputs were made "
                         f"elsewhere (`dvc repro -f train` on its params makes a run here)")
        seconds = run.data.metrics.get("train_seconds") if run else None
        lines.append((row["train.impl"], _fmt(row.get("train_loss_final"), ".6f"),
                      _fmt(row.get("train_accuracy"), ".4f"), _fmt(row.get("val_log_loss"), ".6f"),
                      _fmt(row.get("val_accuracy"), ".4f"), _fmt(seconds, ".2f"),
                      row.get("run_id") + ("" if run else " (not in this store)")))
    return sorted(lines), notes


def shared(row: Mapping[str, Any]) -> str:
    """The params the three experiments share, as one line above the table."""
    keys = [*SHARED, *(key for key in row if key.startswith("train.") and key != "train.impl")]
    return "params: " + " ".join(f"{key}={_param(row[key])}" for key in keys if key in row)


def main(argv: list[str] | None = None) -> None:
    arguments = parser("compare", __doc__)
    arguments.add_argument("-S", "--set-param", action="append", default=[], metavar="KEY=VALUE",
                           help="a params.yaml setting shared by the three experiments, as for dvc exp run -S")
    arguments.add_argument("-j", "--jobs", type=int, default=len(choices(Impl)),
                           help="experiments at once (default: %(default)s, all)")
    args = arguments.parse_args(argv)
    if args.jobs < 1:
        arguments.error(f"--jobs must be 1 or more, not {args.jobs}")
    stamp = time.strftime("%m%d-%H%M%S")  # the implementation first: MLflow's runs table shows a name's start
    experiments = {f"{impl}-{stamp}": [f"train.impl={impl}", *args.set_param] for impl in choices(Impl)}
    jobs = args.jobs
    if any(setting.startswith(("ingest.", "split.")) for setting in args.set_param):
        jobs = 1  # each experiment builds its own ingest and split outputs: one at a time (docs/known-issues.md)
    else:
        dvc("repro", "split", quiet=True)  # built once here, the experiments find them in DVC's cache
    queue(experiments)
    run_queue(list(experiments), jobs)
    rows = experiment_rows(list(experiments))
    lines, notes = table(rows)
    print(shared(next(iter(rows.values()))))
    print(text_table(COLUMNS, lines))
    for note in notes:
        print(note, file=sys.stderr)


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _param(value: Any) -> str:
    """A param as params.yaml spells it: `dvc exp show` gives every number as a float."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return str(value)


if __name__ == "__main__":
    run_main(main)
