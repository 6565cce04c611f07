"""One `make tune`: the study's MLflow run and its trials' under it, the study's summary and pictures, and its
best trials made DVC experiments, each a real `dvc exp run` of the trial's params."""

from __future__ import annotations

import json
import tempfile
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import Executor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from filelock import FileLock, Timeout
from optuna.trial import FrozenTrial, TrialState

from softmax_regression.errors import PipelineError
from softmax_regression.pipeline.repo import dvc, exp_show, has_experiment
from softmax_regression.search import study as studies
from softmax_regression.search.trial import Outcome
from softmax_regression.tracking import names, runs, trials


@dataclass
class Report:
    study: optuna.Study
    run_id: str  # the study's MLflow run
    new: int  # trials finished by this call
    experiments: dict[int, str] = field(default_factory=dict)  # trial number: its DVC experiment


def tune(search: studies.Search, study: optuna.Study, experiment: str, materialize: int,
         executor: Callable[[int], Executor] = studies.pool, progress: studies.Progress | None = None) -> Report:
    """Run the search's study (`studies.open_study`: new or resumed) to `tune.trials` finished trials, then sum
    it up and make its best `materialize` trials DVC experiments. A finished study adds nothing."""
    with exclusive(search):
        return _tune(search, study, experiment, materialize, executor, progress)


@contextmanager
def exclusive(search: studies.Search) -> Iterator[None]:
    """One driver at a time on a local study: a second would take the first's trials in flight for orphans."""
    if search.shared:
        yield
        return
    lock = FileLock(f"{search.storage.removeprefix('sqlite:///')}.lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise PipelineError(f"another make tune is running on {search.storage}; wait for it to end") from None
    try:
        yield
    finally:
        lock.release()


def _tune(search: studies.Search, study: optuna.Study, experiment: str, materialize: int,
          executor: Callable[[int], Executor], progress: studies.Progress | None) -> Report:
    complete = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    made = {int(number): name for number, name in study.user_attrs.get(studies.MATERIALIZED, {}).items()}
    wanted = {t.number for t in studies.best(study, materialize)}
    if complete >= search.tune.trials and wanted <= set(made):
        return Report(study, study.user_attrs.get(studies.RUN, ""), 0, {n: made[n] for n in sorted(wanted)})
    with studies.advisory_lock(search) if search.shared else nullcontext():  # one study run, whoever starts first
        run_id = trials.study_run(experiment, search.tune.study, study_params(search), search.params["ingest"]["path"],
                                  study.user_attrs.get(studies.RUN))
        study.set_user_attr(studies.RUN, run_id)
    with runs.failing_marks_run(run_id):
        if not search.shared:
            reconcile(search, experiment, study, run_id)
        with executor(search.tune.parallel) as workers:
            new = studies.run(search, study, workers, recorder(search, experiment, run_id), progress)
        report = Report(study, run_id, new)
        if len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))) >= search.tune.trials:
            finish(search, study, run_id)
            report.experiments = make_experiments(search, study, materialize)
    return report


def study_params(search: studies.Search) -> dict[str, Any]:
    """The study's run's params: its settings, and its space key by key."""
    tune = search.tune
    settings = {"tune.study": tune.study, "tune.seed": tune.seed, "tune.trials": tune.trials,
                "tune.parallel": tune.parallel, "tune.metric": tune.metric, "tune.storage": search.storage}
    return settings | {f"tune.space.{key}": json.dumps(value) for key, value in sorted(tune.space.items())}


def recorder(search: studies.Search, experiment: str, run_id: str) -> studies.Recorder:
    """What records a trial: its MLflow run under the study's, its weights a safetensors file in it."""
    from softmax_regression.training.model import write_model

    def record(planned: FrozenTrial, outcome: Outcome | None, error: str | None) -> str:
        params = search.logged_params(planned.params)
        if outcome is None:
            return trials.log_trial(experiment, search.tune.study, planned.number, run_id, params, None, {}, None, error)
        with tempfile.TemporaryDirectory() as folder:
            weights = Path(folder) / Path(names.LOGGED_MODEL).name
            write_model(weights, outcome.trained.model)
            return trials.log_trial(experiment, search.tune.study, planned.number, run_id, params, outcome.trained,
                                    outcome.metrics, weights)

    return record


def reconcile(search: studies.Search, experiment: str, study: optuna.Study, run_id: str) -> None:
    """After an interruption, the trials left unfinished: one whose MLflow run FINISHED (or FAILED) is told so,
    not run again; a run left RUNNING is ended KILLED, its trial to run again."""
    waiting = {t.number for t in studies.unfinished(study) if t.state == TrialState.RUNNING}
    for run in trials.trials_of(experiment, run_id):
        number = int(run.data.tags.get(names.TRIAL, -1))
        if number not in waiting:
            continue
        status = run.info.status
        if status == "FINISHED" and search.tune.metric in run.data.metrics:
            study.tell(number, run.data.metrics[search.tune.metric])
        elif status == "FAILED":
            study.tell(number, state=TrialState.FAIL)
        elif status == "RUNNING":
            runs.end(run.info.run_id, "KILLED", "interrupted: the search stopped before this trial was recorded")
            continue
        waiting.discard(number)


def finish(search: studies.Search, study: optuna.Study, run_id: str) -> None:
    """The study's run gets the best trial's value and params, the space, and two pictures (the history of the
    search, and how the params relate to the metric), then ends FINISHED."""
    best = studies.best(study, 1)[0]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "best.json").write_text(json.dumps({"trial": best.number, "params": best.params,
                                                      search.tune.metric: best.value}, indent=2) + "\n")
        (folder / "space.json").write_text(json.dumps(search.tune.space, indent=2) + "\n")
        files = [folder / "best.json", folder / "space.json", *pictures(study, folder)]
        trials.close_study_run(run_id, "FINISHED", {f"best_{search.tune.metric}": best.value},
                               {"tune.best_trial": str(best.number)}, files)


def pictures(study: optuna.Study, folder: Path) -> list[Path]:
    """Optuna's matplotlib pictures of the study as PNG: the optimisation history and the parallel coordinates."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as plots

    files = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        for name, draw in (("optimization_history", plots.plot_optimization_history),
                           ("parallel_coordinate", plots.plot_parallel_coordinate)):
            axes = draw(study)
            figure = axes.flat[0].figure if hasattr(axes, "flat") else axes.figure
            figure.set_size_inches(10, 6)
            figure.tight_layout()
            files.append(folder / f"{name}.png")
            figure.savefig(files[-1], dpi=100)
            plt.close(figure)
    return files


def make_experiments(search: studies.Search, study: optuna.Study, k: int) -> dict[int, str]:
    """The k best trials as DVC experiments, each named `<study>-<trial>` and run by `dvc exp run --temp` with
    the trial's params (the workspace is left as it is); their MLflow runs tagged with the study and the trial."""
    made = {int(number): name for number, name in study.user_attrs.get(studies.MATERIALIZED, {}).items()}
    for best in studies.best(study, k):
        name = f"{search.tune.study}-{best.number}"
        if best.number not in made and not has_experiment(name):  # made here, or on another machine
            settings = [part for key, value in best.params.items() for part in ("-S", f"{key}={_yaml(value)}")]
            dvc("exp", "run", "--temp", "-n", name, *settings, quiet=True)
        made[best.number] = name
        study.set_user_attr(studies.MATERIALIZED, {str(n): e for n, e in made.items()})
    rows = {row.get("Experiment"): row for row in exp_show()} if made else {}
    for number, name in made.items():
        if rows.get(name, {}).get("run_id"):
            trials.set_tags(rows[name]["run_id"], {names.STUDY: search.tune.study, names.TRIAL: str(number)})
    return {number: made[number] for number in sorted(made) if number in {t.number for t in studies.best(study, k)}}


def _yaml(value: Any) -> str:
    """A param's value as `dvc exp run -S` takes it, read back as the same value (the same bits, for a float)."""
    if isinstance(value, bool):
        return str(value).lower()
    return repr(value) if isinstance(value, float) else str(value)
