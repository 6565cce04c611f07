"""A reproducible search: `make tune` runs the Optuna study params.yaml's `tune:` section defines.

    make tune                                      # = python -m softmax_regression.commands.tune
    make tune ARGS='--trials 40 --parallel 2'
    make tune ARGS='--storage postgresql://user:password@host/db'   # a study shared by several machines

Each trial trains with the train stage's own code, in worker processes that import torch once, and is scored on
the validation rows as evaluate scores them; each is an MLflow run under the study's. The best trial (the best
K with --materialize K) then runs as a real `dvc exp run`. The study lives in its own storage: `optuna.db` at
the repository root by default. The same command again resumes a study that was stopped, and adds nothing to
one that is finished (docs/tuning.md).
"""

from __future__ import annotations

import sys
from typing import Any

from softmax_regression import paths
from softmax_regression.commands.console import parser, text_table
from softmax_regression.config import (
    TrackingParams,
    TrainParams,
    TuneParams,
    lower_is_better,
    read_params,
    section,
)
from softmax_regression.data.tables import parquet_rows
from softmax_regression.errors import ParamError, PipelineError
from softmax_regression.files import file_md5
from softmax_regression.pipeline.repo import dvc
from softmax_regression.process import run_main
from softmax_regression.tracking.lineage import dvc_hash
from softmax_regression.tracking.uri import check_reachable, tracking_uri

BEST_SHOWN = 5


def storage_url(given: str | None) -> str:
    """The study's storage: `given` (a PostgreSQL URL through psycopg 3), else optuna.db at the repository root."""
    if not given:
        return f"sqlite:///{paths.repo_root() / paths.STUDIES}"
    return "postgresql+psycopg://" + given.removeprefix("postgresql://") if given.startswith("postgresql://") else given


def make_search(params: dict, tune: TuneParams, storage: str) -> Any:
    """The search params.yaml and the split's files define, its study at `storage`."""
    from softmax_regression.search import space, study

    data = {"raw": dvc_hash(params["ingest"]["path"]) or "", "train": file_md5(paths.TRAIN), "val": file_md5(paths.VAL)}
    return study.Search(tune, space.parse(tune.space, params["train"]), params, storage, data)


def main(argv: list[str] | None = None) -> None:
    arguments = parser("tune", __doc__)
    arguments.add_argument("--trials", type=int, help="the study's total of finished trials (default: tune.trials)")
    arguments.add_argument("--parallel", type=int, help="trials in flight at once here (default: tune.parallel)")
    arguments.add_argument("--storage", help="where the study lives (default: optuna.db at the repository root)")
    arguments.add_argument("--materialize", type=int, default=1, metavar="K",
                           help="the best K trials become DVC experiments (default: %(default)s; 0: none)")
    args = arguments.parse_args(argv)
    params = read_params()
    overrides = {key: value for key, value in (("trials", args.trials), ("parallel", args.parallel)) if value is not None}
    given = params.get("tune")
    tune = section({"tune": {**given, **overrides}} if isinstance(given, dict) else params, "tune", TuneParams)
    experiment = section(params, "tracking", TrackingParams).experiment
    if section(params, "train", TrainParams).world_size != 1:
        raise ParamError("train.world_size must be 1 for make tune: each trial trains in one process")
    if args.materialize < 0:
        arguments.error(f"--materialize must be 0 or more, not {args.materialize}")
    check_reachable(tracking_uri())
    dvc("repro", "split", quiet=True)  # the rows the trials train and are scored on, made or brought up to date
    if parquet_rows(paths.VAL) == 0:
        raise ParamError("split.val_size is 0: make tune chooses on validation rows, and there are none")
    from softmax_regression.search import study

    search = make_search(params, tune, storage_url(args.storage))
    opened = study.open_study(search)  # refuses another search's study before torch and MLflow, seconds to import
    from softmax_regression.search import session
    from softmax_regression.tracking import runs

    uri = runs.connect()
    with progress_bar(tune.trials, lower_is_better(tune.metric)) as bar:
        report = session.tune(search, opened, experiment, args.materialize, progress=bar.show)
    print(summary(report, tune, experiment, uri))


class progress_bar:  # noqa: N801 - used as a function
    """The finished trials out of tune.trials, and the best value so far, on one updating terminal line; silent
    where stderr is no terminal (CI, logs)."""

    def __init__(self, total: int, lower: bool) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=total, desc="tune", unit="trial", file=sys.stderr, disable=not sys.stderr.isatty(),
                        dynamic_ncols=True)
        self.best: float | None = None
        self.sign = 1 if lower else -1

    def show(self, trial: Any) -> None:
        if trial.value is not None and (self.best is None or self.sign * trial.value < self.sign * self.best):
            self.best = trial.value
        if self.best is not None:
            self.bar.set_postfix_str(f"best {self.best:.6f}", refresh=False)
        self.bar.update(1)

    def __enter__(self) -> progress_bar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.close()


def summary(report: Any, tune: TuneParams, experiment: str, uri: str) -> str:
    """The best trials as a table, the study's run, and the winners' DVC experiments."""
    from softmax_regression.commands.ui import run_page, ui_base
    from softmax_regression.search.study import best
    from softmax_regression.tracking import names, runs, trials

    top = best(report.study, BEST_SHOWN)
    if not top:
        raise PipelineError(f"study {tune.study!r} has no finished trial yet")
    keys = sorted(tune.space)
    run_ids = {int(run.data.tags.get(names.TRIAL, -1)): run.info.run_id
               for run in (trials.trials_of(experiment, report.run_id) if report.run_id else [])
               if run.info.status == "FINISHED"}
    rows = [(t.number, *(_cell(t.params.get(key)) for key in keys), f"{t.value:.6f}", run_ids.get(t.number, "-"))
            for t in top]
    lines = [f"tune: study {tune.study!r}, {len(report.study.trials)} trials ({report.new} run now), the best "
             f"{tune.metric} first:", text_table(("trial", *keys, tune.metric, "MLflow run id"), rows)]
    if report.run_id:
        page = run_page(ui_base(uri), runs.experiment_id(experiment), report.run_id)
        lines.append(f"tune: the study's MLflow run, its trials under it: {page}")
    for number, name in report.experiments.items():
        lines.append(f"tune: trial {number} is DVC experiment {name}; to bring it to the workspace: dvc exp apply {name}")
    return "\n".join(lines)


def _cell(value: object) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


if __name__ == "__main__":
    run_main(main)
