"""evaluate: score the model on the test set, write DVC metrics and plots, add them to the MLflow run."""

import sys

from softmax_regression.cli import run_stage
from softmax_regression.files import read_json, write_json, write_text
from softmax_regression.metrics import classification_report, confusion_csv
from softmax_regression.model import predict_proba, read_model
from softmax_regression.dataset import read_dataset

TEST, CLASSES, MODEL, RUN = ("data/split/test.parquet", "data/split/classes.json", "models/model.safetensors",
                             "models/mlflow_run.json")
METRICS, PER_CLASS, CONFUSION_PLOT = "metrics/eval.json", "metrics/eval_per_class.json", "plots/confusion.csv"


def main() -> None:
    from softmax_regression import tracking  # imports mlflow: seconds

    tracking.check_reachable()
    model = read_model(MODEL)
    data = read_dataset(TEST, CLASSES, features=model.features)
    P = predict_proba(model, data.X)
    report = classification_report(P, data.y, model.classes)
    per_class = {key: report.pop(key) for key in ("per_class", "confusion_matrix")}
    write_json(METRICS, report)
    write_json(PER_CLASS, per_class)
    write_text(CONFUSION_PLOT, confusion_csv(data.y, P.argmax(dim=1), model.classes))

    run_id = read_json(RUN)["run_id"]
    if not tracking.find_run(run_id):
        print(f"evaluate: MLflow run {run_id} is not in {tracking.tracking_uri()}; metrics are written for DVC "
              f"but not logged (re-train with `dvc repro -f train` to get a run here)", file=sys.stderr)
        return
    with tracking.active_run(run_id):
        tracking.log_metrics({"test_accuracy": report["accuracy"], "test_log_loss": report["log_loss"],
                              "test_macro_f1": report["macro_f1"]})
        tracking.log_artifacts([METRICS, PER_CLASS, CONFUSION_PLOT], "evaluation")
    print(f"evaluate: test accuracy {report['accuracy']:.4f}, log-loss {report['log_loss']:.4f}; "
          f"MLflow run {run_id}")


if __name__ == "__main__":
    run_stage(main)
