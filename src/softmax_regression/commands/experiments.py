"""The experiments side by side, narrow enough for a terminal: `make exps`.

    make exps                                      # = python -m softmax_regression.commands.experiments

One row per DVC experiment of the workspace's commit (and the workspace and the commit itself), with what
tells them apart and what they are compared on: train.impl, train.optimizer, train.lr and train.l2, the
validation log-loss and accuracy, and the MLflow run id that `make rerun` takes. The numbers are DVC's, as
`dvc exp show` has them (whose full table of params and metrics is wider).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from softmax_regression.commands.console import parser, text_table
from softmax_regression.pipeline.repo import exp_show
from softmax_regression.process import run_main

COLUMNS = {"impl": "train.impl", "optimizer": "train.optimizer", "lr": "train.lr", "l2": "train.l2",
           "val log-loss": "val_log_loss", "val accuracy": "val_accuracy", "MLflow run id": "run_id"}


def rows(shown: list[Mapping[str, Any]]) -> list[list[str]]:
    """One row per row of `dvc exp show`: its name (the experiment's, else the revision's), then COLUMNS."""
    table = []
    for row in shown:
        name = row.get("Experiment") or row["rev"]
        state = row.get("State")
        if state not in (None, "Success"):
            name = f"{name} ({state.lower()})"
        table.append([name, *(_cell(row.get(key)) for key in COLUMNS.values())])
    return table


def main(argv: list[str] | None = None) -> None:
    parser("experiments", __doc__).parse_args(argv)
    print(text_table(["experiment", *COLUMNS], rows(exp_show())))


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


if __name__ == "__main__":
    run_main(main)
