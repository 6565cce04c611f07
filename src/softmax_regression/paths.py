"""Every file the pipeline reads or writes, named once, relative to the repository root (dvc.yaml names the
same files: `tests/test_dvc_yaml.py` checks that the two agree); and that root."""

from __future__ import annotations

import os
from pathlib import Path

PARAMS = "params.yaml"

DATASET = "data/interim/dataset.parquet"  # ingest: the raw CSV as a typed table
TRAIN = "data/split/train.parquet"  # split: the rows to train on,
VAL = "data/split/val.parquet"  # to compare and choose runs on,
TEST = "data/split/test.parquet"  # and for the final report alone
CLASSES = "data/split/classes.json"  # the label column and each class's code

MODEL = "models/model.safetensors"  # train: weights, class and feature names, scaling
COEFFICIENTS = "models/coefficients.csv"
RUN = "models/mlflow_run.json"  # the MLflow run that made the model
TRAIN_METRICS = "metrics/train.json"
LOSS_CURVE = "plots/train_loss.csv"
LOG_LOSS_CURVES = "plots/log_loss.csv"
COEFFICIENT_MAP = "plots/coefficients.png"

EVAL_METRICS = "metrics/eval.json"  # evaluate: the headline numbers,
PER_CLASS = "reports/per_class.json"  # and per class, with the confusion matrices
CONFUSION = "plots/confusion.csv"
CONFUSION_MAP = "plots/confusion.png"

STUDIES = "optuna.db"  # make tune's studies, unless --storage names another; neither in git nor DVC
STORE = "mlflow.db"  # MLflow's local store, with its artifacts in ARTIFACTS; neither in git nor DVC
STORE_LOCK = "mlflow.db.lock"
ARTIFACTS = "mlruns"


def repo_root() -> Path:
    """DVC's repository root: DVC_ROOT when a stage runs under DVC, else the nearest folder with `.dvc/`."""
    if "DVC_ROOT" in os.environ:
        return Path(os.environ["DVC_ROOT"]).resolve()
    here = Path.cwd().resolve()
    return next((p for p in (here, *here.parents) if (p / ".dvc").is_dir()), here)
