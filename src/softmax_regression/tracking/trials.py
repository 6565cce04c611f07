"""The MLflow runs of a `make tune` study: one for the study, and under it (mlflow.parentRunId) one per trial,
with the params, curves, validation metrics and weights a pipeline run has, and the lineage `make rerun` needs.

Every call runs with Ctrl-C and SIGTERM deferred (`interrupts`), as in `runs`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from softmax_regression import interrupts, paths
from softmax_regression.tracking import names, runs

if TYPE_CHECKING:
    from softmax_regression.training.loop import Trained


def study_run(experiment: str, study: str, params: Mapping[str, Any], raw_file: str, run_id: str | None) -> str:
    """The study's run: `run_id` again, RUNNING, when the store has it; else a new one with the study's params
    and the rows its trials train and are scored on."""
    found = runs.find_run(run_id) if run_id else None
    if found is not None:
        with interrupts.deferred():
            MlflowClient().update_run(run_id, status="RUNNING")
        return run_id
    source = runs.Source(f"tune {study}", "make tune", f"make tune, study {study}", rerun=False)
    run_id = runs.create_run(experiment, params, {names.STUDY: study}, run_name=source.label, source=source)
    runs.log_training_data(paths.TRAIN, paths.VAL, raw_file, run_id)  # shown with its trials, nested, by make ui
    return run_id


def trials_of(experiment: str, study_run_id: str) -> list[Run]:
    """The runs under the study's run."""
    return runs.search(experiment, f"tags.`{names.PARENT_RUN}` = '{study_run_id}'")


def log_trial(experiment: str, study: str, number: int, study_run_id: str, params: Mapping[str, Any],
              trained: Trained | None, metrics: Mapping[str, float], weights: Path | None, error: str | None = None
              ) -> str:
    """A trial's run under the study's: its params under their params.yaml names, its curves, metrics and
    weights (`weights/model.safetensors`); or, with `error`, FAILED with it. Returns its id."""
    tags = {names.PARENT_RUN: study_run_id, names.STUDY: study, names.TRIAL: str(number)}
    source = runs.Source(f"{study} trial {number}", "make tune", f"Trial {number} of study {study} (make tune)")
    run_id = runs.create_run(experiment, params, tags, source=source)
    if error is not None:
        runs.end(run_id, "FAILED", error)
        return run_id
    with runs.active_run(run_id):
        runs.log_training_data(paths.TRAIN, paths.VAL, params.get("ingest.path", ""))
        runs.log_fit(trained, metrics)
        runs.log_artifacts([weights], names.WEIGHTS)
    return run_id


def close_study_run(run_id: str, status: str, metrics: Mapping[str, float], tags: Mapping[str, str],
                    files: Sequence[Path]) -> None:
    """The study's summary (the best trial's value and params, the pictures) in its run, which then ends."""
    with interrupts.deferred():
        client = MlflowClient()
        for key, value in metrics.items():
            client.log_metric(run_id, key, value)
        for key, value in tags.items():
            client.set_tag(run_id, key, value)
        for file in files:
            client.log_artifact(run_id, str(file), "study")
        client.set_terminated(run_id, status)


@interrupts.deferred()
def set_tags(run_id: str, tags: Mapping[str, str]) -> None:
    """Tags of a run of the store, active or not."""
    client = MlflowClient()
    for key, value in tags.items():
        client.set_tag(run_id, key, value)


