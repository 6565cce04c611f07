"""MLflow runs: where they go, and how a stage opens, fills and closes one.

The default store is `mlflow.db` at the repository root with artifacts in `mlruns/` beside it, so that
`mlflow ui` run there shows every run. The root is DVC's (`DVC_ROOT`), never the working directory: a
queued experiment runs in a temporary copy that is deleted afterwards. `MLFLOW_TRACKING_URI` overrides it.
A stage calls `connect()` before anything else here.

Each function here that calls MLflow does so with Ctrl-C and SIGTERM deferred (`interrupts`): one that
arrives meanwhile is raised once the call is done, and a run open then is marked KILLED.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow
from filelock import FileLock
from mlflow.data.dataset_source_registry import resolve_dataset_source
from mlflow.data.meta_dataset import MetaDataset
from mlflow.entities import Metric, Run
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.types import ColSpec, Schema

from softmax_regression import interrupts
from softmax_regression.config import flatten
from softmax_regression.errors import interrupted
from softmax_regression.files import file_md5
from softmax_regression.tracking.lineage import baseline_params, changed_params, dvc_hash, git_commit, repo_root
from softmax_regression.tracking.uri import check_reachable, tracking_uri
from softmax_regression.data.tables import parquet_rows

MAX_METRICS_PER_BATCH = 1000  # MLflow's limit for one log_batch call
ERROR_TAG = "error"
INTERRUPTED = "interrupted (Ctrl-C or SIGTERM)"
EVALUATED_TAG = "evaluated"
# MLflow's UI opens an experiment of this kind on its runs table ("Model training"), not on GenAI traces
EXPERIMENT_TAGS = {"mlflow.experimentKind": "custom_model_development"}


@interrupts.deferred()
def connect() -> str:
    """Point MLflow's default client and fluent API at `tracking_uri()`, and check that a server there
    answers; returns the URI. Before any MlflowClient() exists: MLflow's own default, `sqlite:///mlflow.db`,
    is relative to the working directory, which in a queued experiment is a temporary copy."""
    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)  # which also exports MLFLOW_TRACKING_URI: tracking_uri() stays the same
    check_reachable(uri)
    return uri


def _artifact_location(uri: str) -> str | None:
    """`mlruns/` beside a local database (MLflow's default is relative to the working directory); a
    server decides for itself."""
    if uri.startswith("sqlite:///"):
        return (Path(uri.removeprefix("sqlite:///")).parent / "mlruns").as_uri()
    return None


@interrupts.deferred()
def experiment_id(name: str) -> str:
    """The experiment's id, creating the store and the experiment if need be, once, under a file lock."""
    root = repo_root()
    with FileLock(root / "mlflow.db.lock"):
        client = MlflowClient()
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            return client.create_experiment(name, artifact_location=_artifact_location(tracking_uri()),
                                            tags=EXPERIMENT_TAGS)
        for key, value in EXPERIMENT_TAGS.items():  # a store made before these tags
            if experiment.tags.get(key) != value:
                client.set_experiment_tag(experiment.experiment_id, key, value)
        return experiment.experiment_id


@contextmanager
def failing_marks_run(run_id: str) -> Iterator[None]:
    """Any exception in the block ends the run FAILED (KILLED on Ctrl-C or SIGTERM), with the message as a
    tag. So does an interrupt deferred in the block (`interrupts`): it is raised before the block ends."""
    try:
        yield
        interrupts.raise_pending()
    except BaseException as e:
        stopped = interrupted(e)  # the message of an interrupt Python wrapped would name the wrapper
        message = INTERRUPTED if stopped else str(e) or type(e).__name__
        with interrupts.deferred():
            client = MlflowClient()
            client.set_tag(run_id, ERROR_TAG, message[:5000])
            client.set_terminated(run_id, "KILLED" if stopped else "FAILED")
        raise


def create_run(experiment: str, params: Mapping[str, Any], tags: Mapping[str, str] | None = None,
               run_name: str | None = None) -> str:
    """Create a run with the flat params, the provenance tags and `tags`; returns its id.

    What the MLflow UI shows of it: its name, the DVC experiment's (or, outside an experiment, the short
    commit), then only the params that differ from the baseline's params.yaml, so that runs can be told
    apart; its Source, what ran it; its description, one line saying what it is and how to re-run it."""
    commit = git_commit()
    experiment_name = os.environ.get("DVC_EXP_NAME")
    changed = changed_params(params, _flat_baseline(commit))
    label = experiment_name or (commit[:7] if commit else "workspace")
    settings = " ".join(f"{key}={value}" for key, value in changed.items())
    run_name = run_name or f"{label} {settings}".strip()
    how = f"dvc exp run (experiment {experiment_name})" if experiment_name else "dvc repro"
    tags = {"mlflow.source.git.commit": commit, "mlflow.source.name": how, "mlflow.source.type": "LOCAL",
            **(tags or {})}
    if experiment_name:
        tags["dvc.exp_name"] = experiment_name
    exp_id = experiment_id(experiment)
    with interrupts.deferred():  # an interrupt while the run is created is raised in the block that marks it
        run = MlflowClient().create_run(exp_id, run_name=run_name, tags={k: v for k, v in tags.items() if v})
        run_id = run.info.run_id
        with failing_marks_run(run_id):
            what = f"DVC experiment {experiment_name}" if experiment_name else "dvc repro"
            where = f" of commit {commit[:7]}" if commit else ""
            diff = f" with {settings}" if settings else " with the baseline's params"
            MlflowClient().set_tag(run_id, "mlflow.note.content",
                                   f"{what}{where}{diff}. Re-run it: make rerun RUN={run_id}")
            mlflow.log_params(dict(params), run_id=run_id)
    return run_id


def _flat_baseline(commit: str | None) -> dict[str, Any] | None:
    baseline = baseline_params(commit)
    return flatten(baseline) if isinstance(baseline, Mapping) else None


@contextmanager
def active_run(run_id: str) -> Iterator[None]:
    """Make the run active for the block; it ends FINISHED, or FAILED (KILLED on Ctrl-C or SIGTERM) with
    the error as a tag. (Not `with mlflow.start_run()`: on the way out it would turn KILLED into FAILED.)"""
    try:
        with failing_marks_run(run_id):
            with interrupts.deferred():
                mlflow.start_run(run_id=run_id)
            yield
    finally:
        with interrupts.deferred():
            if mlflow.active_run() is not None:
                status = MlflowClient().get_run(run_id).info.status
                mlflow.end_run(status if status in ("FAILED", "KILLED") else "FINISHED")


@interrupts.deferred()
def find_run(run_id: str) -> Run | None:
    """The run, or None when it is not in the current store."""
    try:
        return MlflowClient().get_run(run_id)
    except MlflowException as e:
        if e.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise


def evaluation_run(trained: Run, experiment: str) -> str:
    """The run evaluate logs into: the training run the first time; a new, linked run after that.

    A second evaluation of one training run happens when DVC restored `train` from its run cache (a
    param set back to a value already run) and `evaluate` re-ran: the original run keeps its numbers,
    and the new run says whose model it evaluated.
    """
    if trained.data.tags.get(EVALUATED_TAG) != "true":
        return trained.info.run_id
    name = f"evaluate again: {trained.info.run_name}"
    return create_run(experiment, trained.data.params, {"trained_by_run": trained.info.run_id}, run_name=name)


@interrupts.deferred()
def mark_evaluated() -> None:
    mlflow.set_tag(EVALUATED_TAG, "true")


@interrupts.deferred()
def log_training_data(train_file: str, val_file: str, features: list[str], label: str, raw_file: str) -> None:
    """Lineage: the training and validation rows' files as MLflow dataset inputs (contexts "training" and
    "validation"; none for a validation file without rows), whose digest is the file's md5 (the same as
    DVC's, and the same however many ranks read it), and DVC's hash of the raw file as a tag.

    `make promote` compares only runs whose validation digests are equal."""
    schema = Schema([ColSpec("double", name) for name in features] + [ColSpec("long", label)])
    for name, path, context in (("train", train_file, "training"), ("val", val_file, "validation")):
        if name == "val" and parquet_rows(path) == 0:
            continue
        with warnings.catch_warnings():  # MLflow registers its local-file source twice, and warns about it
            warnings.simplefilter("ignore", UserWarning)
            source = resolve_dataset_source(path)
        mlflow.log_input(MetaDataset(source, name=name, digest=file_md5(path), schema=schema), context=context)
    raw_hash = dvc_hash(raw_file)
    if raw_hash:
        mlflow.set_tags({"dvc.raw_data": raw_file, "dvc.raw_data_md5": raw_hash})


def dataset_digest(run: Run, context: str) -> str | None:
    """The digest of the run's dataset input logged with `context` ("training", "validation"), if any."""
    for dataset_input in run.inputs.dataset_inputs if run.inputs else []:
        if any(tag.key == "mlflow.data.context" and tag.value == context for tag in dataset_input.tags):
            return dataset_input.dataset.digest
    return None


@interrupts.deferred()
def log_metrics(metrics: Mapping[str, float], step: int = 0,
                series: Mapping[str, Iterable[tuple[int, float]]] | None = None) -> None:
    """Metrics of the active run at `step`, and each of `series` as (step, value) pairs, in as few calls as
    MLflow allows: one per MAX_METRICS_PER_BATCH values, not one per value."""
    now = int(time.time() * 1000)
    values = [Metric(key, float(v), now, t) for key, pairs in (series or {}).items() for t, v in pairs]
    values += [Metric(key, float(v), now, step) for key, v in metrics.items()]
    client, run_id = MlflowClient(), mlflow.active_run().info.run_id
    for start in range(0, len(values), MAX_METRICS_PER_BATCH):
        client.log_batch(run_id, metrics=values[start:start + MAX_METRICS_PER_BATCH])


@interrupts.deferred()
def log_artifacts(paths: Sequence[str | Path], artifact_path: str) -> None:
    for path in paths:
        mlflow.log_artifact(str(path), artifact_path)
