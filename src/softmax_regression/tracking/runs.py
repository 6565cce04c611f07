"""MLflow runs: where they go, and how a stage opens, fills and closes one.

The default store is `mlflow.db` at the repository root with artifacts in `mlruns/` beside it, so that
`mlflow ui` run there shows every run. The root is DVC's (`DVC_ROOT`), never the working directory: a
queued experiment runs in a temporary copy that is deleted afterwards. `MLFLOW_TRACKING_URI` overrides it.
A process calls `connect()` before anything else here.

Every function here that calls MLflow does so with Ctrl-C and SIGTERM deferred (`interrupts`): one that
arrives meanwhile is raised once the call is done, and a run open then is marked KILLED.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
from filelock import FileLock
from mlflow.entities import Metric, Run
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from softmax_regression import interrupts, paths
from softmax_regression.config import flatten
from softmax_regression.data.tables import parquet_rows
from softmax_regression.files import file_md5
from softmax_regression.paths import ARTIFACTS, STORE_LOCK, repo_root
from softmax_regression.tracking import names
from softmax_regression.tracking.lineage import baseline_params, changed_params, dvc_hash, git_commit
from softmax_regression.tracking.uri import check_reachable, tracking_uri

if TYPE_CHECKING:
    import pandas as pd

    from softmax_regression.training.loop import Trained

MAX_METRICS_PER_BATCH = 1000  # MLflow's limit for one log_batch call
INTERRUPTED = "interrupted (Ctrl-C or SIGTERM)"


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
        return (Path(uri.removeprefix("sqlite:///")).parent / ARTIFACTS).as_uri()
    return None


@interrupts.deferred()
def experiment_id(name: str, create: bool = True) -> str | None:
    """The experiment's id, creating the store and the experiment if need be (unless not `create`), once,
    under a file lock."""
    with FileLock(repo_root() / STORE_LOCK):
        client = MlflowClient()
        experiment = client.get_experiment_by_name(name)
        if experiment is not None:
            return experiment.experiment_id
        if not create:
            return None
        return client.create_experiment(name, artifact_location=_artifact_location(tracking_uri()),
                                        tags=names.EXPERIMENT_TAGS)


@contextmanager
def failing_marks_run(run_id: str) -> Iterator[None]:
    """Any exception in the block ends the run FAILED (KILLED on Ctrl-C or SIGTERM), with the message as a
    tag. So does an interrupt deferred in the block (`interrupts`): it is raised before the block ends."""
    try:
        yield
        interrupts.raise_pending()
    except BaseException as e:
        stopped = interrupts.interrupted(e)  # the message of an interrupt Python wrapped would name the wrapper
        message = INTERRUPTED if stopped else str(e) or type(e).__name__
        with interrupts.deferred():
            client = MlflowClient()
            client.set_tag(run_id, names.ERROR, message[:5000])
            client.set_terminated(run_id, "KILLED" if stopped else "FAILED")
        raise


@dataclass(frozen=True)
class Source:
    """What made a run, as the MLflow UI shows it: its name starts with `label`, its Source is `how`, and its
    description starts with `what`, followed by the commit and the params that differ from the commit's."""

    label: str
    how: str
    what: str
    rerun: bool = True  # the description ends with the `make rerun` line


def pipeline_source(commit: str | None) -> Source:
    """A stage's run: under `dvc exp run`, the experiment's; else the commit's."""
    experiment_name = os.environ.get("DVC_EXP_NAME")
    if experiment_name:
        return Source(experiment_name, f"dvc exp run (experiment {experiment_name})", f"DVC experiment {experiment_name}")
    return Source(commit[:7] if commit else "workspace", "dvc repro", "dvc repro")


def create_run(experiment: str, params: Mapping[str, Any], tags: Mapping[str, str] | None = None,
               run_name: str | None = None, source: Source | None = None) -> str:
    """Create a run with the flat params, the provenance tags and `tags`; returns its id.

    What the MLflow UI shows of it: its name, the DVC experiment's (or, outside an experiment, the short
    commit; or `source`'s label), then only the params that differ from the baseline's params.yaml, so that
    runs can be told apart; its Source, what ran it; its description, one line saying what it is and how to
    re-run it."""
    commit = git_commit()
    source = source or pipeline_source(commit)
    changed = changed_params(params, _flat_baseline(commit))
    settings = " ".join(f"{key}={value}" for key, value in changed.items())
    run_name = run_name or f"{source.label} {settings}".strip()
    tags = {names.GIT_COMMIT: commit, names.SOURCE_NAME: source.how, names.SOURCE_TYPE: "LOCAL", **(tags or {})}
    if os.environ.get("DVC_EXP_NAME"):
        tags[names.EXP_NAME] = os.environ["DVC_EXP_NAME"]
    exp_id = experiment_id(experiment)
    with interrupts.deferred():  # an interrupt while the run is created is raised in the block that marks it
        run = MlflowClient().create_run(exp_id, run_name=run_name, tags={k: v for k, v in tags.items() if v})
        run_id = run.info.run_id
        with failing_marks_run(run_id):
            where = f" of commit {commit[:7]}" if commit else ""
            diff = f" with {settings}" if settings else " with the baseline's params"
            again = f" Re-run it: make rerun RUN={run_id}" if source.rerun else ""
            MlflowClient().set_tag(run_id, names.NOTE, f"{source.what}{where}{diff}.{again}")
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


@contextmanager
def new_run(experiment: str, params: Mapping[str, Any], tags: Mapping[str, str] | None = None
            ) -> Iterator[str]:
    """`create_run`, then the block in `active_run`; yields the run's id."""
    run_id = create_run(experiment, params, tags)
    with active_run(run_id):
        yield run_id


@interrupts.deferred()
def end(run_id: str, status: str, error: str | None = None) -> None:
    """End a run that is not the active one, with `error` as its error tag if given."""
    client = MlflowClient()
    if error is not None:
        client.set_tag(run_id, names.ERROR, error[:5000])
    client.set_terminated(run_id, status)


@interrupts.deferred()
def find_run(run_id: str) -> Run | None:
    """The run, or None when it is not in the current store."""
    try:
        return MlflowClient().get_run(run_id)
    except MlflowException as e:
        if e.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise


@interrupts.deferred()
def search(experiment: str, query: str = "", order_by: Sequence[str] = ()) -> list[Run]:
    """Every run of the experiment that `query` (MLflow's search syntax) selects; none without the experiment."""
    client = MlflowClient()
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return []
    runs, token = [], None
    while True:
        page = client.search_runs([found.experiment_id], query, max_results=1000, order_by=list(order_by),
                                  page_token=token)
        runs += page
        token = page.token
        if not token:
            return runs


@interrupts.deferred()
def download(run_id: str, artifact: str, folder: str | Path) -> Path:
    """One artifact of the run, downloaded into `folder`."""
    return Path(MlflowClient().download_artifacts(run_id, artifact, str(folder)))


def evaluation_run(trained: Run, experiment: str) -> str:
    """The run evaluate logs into: the training run the first time; a new, linked run after that.

    A second evaluation of one training run happens when DVC restored `train` from its run cache (a
    param set back to a value already run) and `evaluate` re-ran: the original run keeps its numbers,
    and the new run says whose model it evaluated.
    """
    if trained.data.tags.get(names.EVALUATED) != "true":
        return trained.info.run_id
    name = f"evaluate again: {trained.info.run_name}"
    return create_run(experiment, trained.data.params, {names.TRAINED_BY_RUN: trained.info.run_id}, run_name=name)


@interrupts.deferred()
def log_training_data(train_file: str, val_file: str, raw_file: str, run_id: str | None = None) -> None:
    """Lineage: the training and validation rows' files as MLflow dataset inputs (contexts "training" and
    "validation"; none for a validation file without rows), whose digest is the file's md5 (the same as
    DVC's, and the same however many ranks read it), and DVC's hash of the raw file as tags; of the active
    run, or of `run_id`.

    `make promote` compares only runs whose validation digests are equal, and `make ui` shows those alone."""
    import pyarrow.parquet as pq
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.tracking.fluent import _create_dataset_input
    from mlflow.types import ColSpec, Schema

    client, run_id = MlflowClient(), run_id or mlflow.active_run().info.run_id

    columns = pq.read_schema(train_file)
    schema = Schema([ColSpec("long" if str(field.type) == "int64" else "double", field.name) for field in columns])
    for name, path, context in (("train", train_file, names.TRAINING), ("val", val_file, names.VALIDATION)):
        if name == "val" and parquet_rows(path) == 0:
            continue
        with warnings.catch_warnings():  # MLflow registers its local-file source twice, and warns about it
            warnings.simplefilter("ignore", UserWarning)
            source = resolve_dataset_source(path)
        dataset = MetaDataset(source, name=name, digest=file_md5(path), schema=schema)
        client.log_inputs(run_id, datasets=[_create_dataset_input(dataset, context)])
    raw_hash = dvc_hash(raw_file)
    if raw_hash:
        client.set_tag(run_id, names.RAW_DATA, raw_file)
        client.set_tag(run_id, names.RAW_DATA_MD5, raw_hash)


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


@interrupts.deferred()
def set_tags(tags: Mapping[str, str]) -> None:
    """Tags of the active run."""
    mlflow.set_tags(dict(tags))


@interrupts.deferred()
def log_model(model_file: str | Path, example: pd.DataFrame) -> None:
    """Log the MLflow model (`serving.pyfunc`) of the weights in `model_file` in the active run. `example`:
    a few rows of raw features, by name; they give the signature (feature names in, `predicted` and
    `p(<class>)` out) and the input example."""
    from mlflow.models import infer_signature

    from softmax_regression.serving import pyfunc
    from softmax_regression.serving.predictions import prediction_table
    from softmax_regression.training.model import read_model

    answer = prediction_table(read_model(model_file), example)
    mlflow.pyfunc.log_model(name=names.MODEL, python_model=str(pyfunc.CODE),
                            artifacts={pyfunc.WEIGHTS: str(model_file)}, code_paths=[str(pyfunc.PACKAGE)],
                            signature=infer_signature(example, answer), input_example=example,
                            pip_requirements=pyfunc.requirements())


def log_training(trained: Trained) -> None:
    """What the train stage adds to its run: the train metrics and the training time, the loss at every
    iteration and the log-loss curves, the weights' files, and the MLflow model."""
    log_fit(trained)
    log_artifacts([paths.MODEL, paths.COEFFICIENTS, paths.COEFFICIENT_MAP], names.WEIGHTS)
    log_model(paths.MODEL, example_rows(paths.TRAIN, paths.CLASSES))


def log_fit(trained: Trained, metrics: Mapping[str, float] | None = None) -> None:
    """A training's metrics (and `metrics`) and its curves, in the active run: the train metrics and time at
    the last iteration, the loss at every iteration, the log-loss on training and validation rows."""
    curves = trained.curves
    losses = trained.fit.losses.tolist()
    log_metrics(trained.metrics | {"train_seconds": trained.seconds} | dict(metrics or {}), step=len(losses), series={
        "train_loss": enumerate(losses),
        "log_loss/train": zip(curves.iteration, curves.train_log_loss, strict=True),
        "log_loss/val": zip(curves.iteration, curves.val_log_loss, strict=False)})  # none without validation rows


def example_rows(table: str, classes_file: str, rows: int = 5) -> pd.DataFrame:
    """The first rows of a split file's features, by name: the MLflow model's input example."""
    import pandas as pd

    from softmax_regression.data.tables import read_matrix
    from softmax_regression.files import read_json

    features, X, _ = read_matrix(table, read_json(classes_file)["label"], rows=(0, min(rows, parquet_rows(table))))
    return pd.DataFrame(X, columns=features)


def log_evaluation(trained_by: str, experiment: str, metrics: Mapping[str, float]) -> str | None:
    """What the evaluate stage adds to the run of the model it evaluated (`evaluation_run`): its metrics and
    files. Returns the run's id, or None when the model's run is not in this store."""
    trained = find_run(trained_by)
    if trained is None:
        return None
    run_id = evaluation_run(trained, experiment)
    with active_run(run_id):
        log_metrics(metrics)
        log_artifacts([paths.EVAL_METRICS, paths.PER_CLASS, paths.CONFUSION, paths.CONFUSION_MAP], names.EVALUATION)
        set_tags({names.EVALUATED: "true"})
    return run_id
