"""evaluate: score the model on the test set, write DVC metrics and plots, add them to the MLflow run."""

import sys

from softmax_regression.cli import run_stage
from softmax_regression.config import TrackingParams, read_params, section
from softmax_regression.dataset import read_dataset
from softmax_regression.figures import confusion_heat_map
from softmax_regression.files import read_json, write_csv, write_json
from softmax_regression.metrics import classification_report, confusion_rows
from softmax_regression.model import predict_proba, read_model

TEST, CLASSES, MODEL, RUN = ("data/split/test.parquet", "data/split/classes.json", "models/model.safetensors",
                             "models/mlflow_run.json")
METRICS, PER_CLASS = "metrics/eval.json", "metrics/eval_per_class.json"
CONFUSION_PLOT, CONFUSION_PNG = "plots/confusion.csv", "plots/confusion.png"


def main() -> None:
    experiment = section(read_params(), "tracking", TrackingParams).experiment
    from softmax_regression import tracking  # imports mlflow: seconds

    tracking.connect()
    model = read_model(MODEL)
    data = read_dataset(TEST, CLASSES, features=model.features)
    P = predict_proba(model, data.X)
    report = classification_report(P, data.y, model.classes)
    per_class = {key: report.pop(key) for key in ("per_class", "confusion_matrix")}
    write_json(METRICS, report)
    write_json(PER_CLASS, per_class)
    write_csv(CONFUSION_PLOT, ["actual", "predicted"], confusion_rows(data.y, P.argmax(dim=1), model.classes))
    confusion_heat_map(CONFUSION_PNG, data.y, P.argmax(dim=1), model.classes, report["accuracy"])

    trained_by = read_json(RUN)["run_id"]
    trained = tracking.find_run(trained_by)
    if trained is None:
        print(f"evaluate: MLflow run {trained_by} is not in {tracking.tracking_uri()}; metrics are written for "
              f"DVC but not logged (re-train with `dvc repro -f train` to get a run here)", file=sys.stderr)
        return
    run_id = tracking.evaluation_run(trained, experiment)
    with tracking.active_run(run_id):
        tracking.log_metrics({"test_accuracy": report["accuracy"], "test_log_loss": report["log_loss"],
                              "test_macro_f1": report["macro_f1"]})
        tracking.log_artifacts([METRICS, PER_CLASS, CONFUSION_PLOT, CONFUSION_PNG], "evaluation")
        tracking.mark_evaluated()
    again = "" if run_id == trained_by else f" (a re-evaluation of run {trained_by}, restored by DVC)"
    print(f"evaluate: test accuracy {report['accuracy']:.4f}, log-loss {report['log_loss']:.4f}; "
          f"MLflow run {run_id}{again}; see it with `make ui` (http://127.0.0.1:5000)")


if __name__ == "__main__":
    run_stage(main)
