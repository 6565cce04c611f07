"""evaluate: score the model on the validation rows (to choose between runs) and on the test rows (the final
report), write DVC metrics and plots, add them to the MLflow run."""

import sys

from softmax_regression.process import run_stage
from softmax_regression.config import TrackingParams, read_params, section
from softmax_regression.tracking.uri import check_reachable, tracking_uri

VAL, TEST, CLASSES = "data/split/val.parquet", "data/split/test.parquet", "data/split/classes.json"
MODEL, RUN = "models/model.safetensors", "models/mlflow_run.json"
METRICS, PER_CLASS = "metrics/eval.json", "metrics/eval_per_class.json"
CONFUSION_PLOT, CONFUSION_PNG = "plots/confusion.csv", "plots/confusion.png"
SUMMARY = ("accuracy", "log_loss", "macro_f1")  # of each set, as DVC and MLflow metrics: val_accuracy, …


def main() -> None:
    experiment = section(read_params(), "tracking", TrackingParams).experiment
    check_reachable(tracking_uri())
    # The params are checked and the tracking server answers: now torch and MLflow, seconds to import.
    from softmax_regression.tracking import runs as tracking
    from softmax_regression.training.dataset import read_dataset
    from softmax_regression.training.figures import confusion_heat_map
    from softmax_regression.files import read_json, write_csv, write_json
    from softmax_regression.training.metrics import classification_report, confusion_rows
    from softmax_regression.training.model import predict_proba, read_model
    from softmax_regression.data.tables import parquet_rows

    tracking.connect()
    model = read_model(MODEL)
    test = read_dataset(TEST, CLASSES, features=model.features)
    P = predict_proba(model, test.X)
    reports = {"test": classification_report(P, test.y, model.classes)}
    if parquet_rows(VAL):  # none when split.val_size is 0
        val = read_dataset(VAL, CLASSES, features=model.features)
        reports["val"] = classification_report(predict_proba(model, val.X), val.y, model.classes)
    metrics = {f"{name}_{key}": reports[name].pop(key) for name in ("val", "test") if name in reports
               for key in SUMMARY}
    write_json(METRICS, metrics)
    write_json(PER_CLASS, {name: reports[name] for name in ("val", "test") if name in reports})
    write_csv(CONFUSION_PLOT, ["actual", "predicted"], confusion_rows(test.y, P.argmax(dim=1), model.classes))
    confusion_heat_map(CONFUSION_PNG, test.y, P.argmax(dim=1), model.classes, metrics["test_accuracy"])

    trained_by = read_json(RUN)["run_id"]
    trained = tracking.find_run(trained_by)
    if trained is None:
        print(f"evaluate: MLflow run {trained_by} is not in {tracking.tracking_uri()}; metrics are written for "
              f"DVC but not logged (re-train with `dvc repro -f train` to get a run here)", file=sys.stderr)
        return
    run_id = tracking.evaluation_run(trained, experiment)
    with tracking.active_run(run_id):
        tracking.log_metrics(metrics)
        tracking.log_artifacts([METRICS, PER_CLASS, CONFUSION_PLOT, CONFUSION_PNG], "evaluation")
        tracking.mark_evaluated()
    again = "" if run_id == trained_by else f" (a re-evaluation of run {trained_by}, restored by DVC)"
    val = (f"validation accuracy {metrics['val_accuracy']:.4f}, log-loss {metrics['val_log_loss']:.4f}; "
           if "val_accuracy" in metrics else "no validation rows; ")
    print(f"evaluate: {val}test accuracy {metrics['test_accuracy']:.4f}, log-loss {metrics['test_log_loss']:.4f}; "
          f"MLflow run {run_id}{again}; see it with `make ui`")


if __name__ == "__main__":
    run_stage(main)
