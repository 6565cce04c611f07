"""The files DVC tracks of the train and evaluate stages, written from their results (atomically, as every
file here). Timings go to MLflow only, so that these stay the same bits for the same params."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from softmax_regression import paths
from softmax_regression.data.tables import parquet_rows
from softmax_regression.files import write_csv, write_json
from softmax_regression.training.dataset import read_dataset
from softmax_regression.training.figures import coefficient_heat_map, confusion_heat_map
from softmax_regression.training.metrics import classification_report, confusion_rows
from softmax_regression.training.model import Model, predict_proba, read_model, write_model

if TYPE_CHECKING:
    from softmax_regression.training.loop import Trained

SUMMARY = ("accuracy", "log_loss", "macro_f1")  # of each set, as DVC and MLflow metrics: val_accuracy, …


def write_training_outputs(trained: Trained, run_id: str) -> None:
    """The model, its coefficients (a table and a heat map), the loss curves, the train metrics, and the
    MLflow run that made them."""
    model, curves = trained.model, trained.curves
    write_model(paths.MODEL, model)
    write_csv(paths.COEFFICIENTS, ["feature", *model.classes, "mean", "scale"], coefficient_rows(model))
    coefficient_heat_map(paths.COEFFICIENT_MAP, model)
    write_csv(paths.LOSS_CURVE, ["iteration", "train_loss"], enumerate(trained.fit.losses.tolist()))
    write_csv(paths.LOG_LOSS_CURVES, ["iteration", "train_log_loss", "val_log_loss"], curves.rows())
    write_json(paths.TRAIN_METRICS, trained.metrics)
    write_json(paths.RUN, {"run_id": run_id})


def coefficient_rows(model: Model) -> list[list[object]]:
    """One row per feature and one for the bias, one column per class, then the feature's mean and scale:
    the weights act on standardised features, z = (x − mean) / scale."""
    rows: list[list[object]] = [[name, *row, mean, scale] for name, row, mean, scale in
                                zip(model.features, model.W.tolist(), model.mean.tolist(), model.scale.tolist(),
                                    strict=True)]
    return [*rows, ["(bias)", *model.b.tolist(), "", ""]]


def scores(model: Model, table: str | Path) -> dict:
    """The model's accuracy, log-loss, macro F1, per-class scores and confusion matrix on a split file's rows:
    what evaluate reports of the validation rows, and `make tune` of a trial."""
    data = read_dataset(table, paths.CLASSES, features=model.features)
    return classification_report(predict_proba(model, data.X), data.y, model.classes)


def headline(name: str, report: dict) -> dict[str, float]:
    """The metrics DVC and MLflow show of a report on the rows `name` ("val", "test"): val_log_loss, …"""
    return {f"{name}_{key}": report[key] for key in SUMMARY}


def evaluate(model_file: str | Path = paths.MODEL) -> dict[str, float]:
    """Score the model on the validation rows (to choose between runs; none when split.val_size is 0) and on
    the test rows (the final report), and write the evaluate stage's files; returns the headline metrics."""
    model = read_model(model_file)
    reports = {"val": scores(model, paths.VAL)} if parquet_rows(paths.VAL) else {}
    test = read_dataset(paths.TEST, paths.CLASSES, features=model.features)
    P = predict_proba(model, test.X)
    reports["test"] = classification_report(P, test.y, model.classes)
    metrics = {key: value for name, report in reports.items() for key, value in headline(name, report).items()}
    write_json(paths.EVAL_METRICS, metrics)
    write_json(paths.PER_CLASS, {name: {key: value for key, value in report.items() if key not in SUMMARY}
                                 for name, report in reports.items()})
    predicted = P.argmax(dim=1)
    write_csv(paths.CONFUSION, ["actual", "predicted"], confusion_rows(test.y, predicted, model.classes))
    confusion_heat_map(paths.CONFUSION_MAP, test.y, predicted, model.classes, metrics["test_accuracy"])
    return metrics
