"""evaluate: score the model on the validation rows (to choose between runs) and on the test rows (the final
report), write DVC metrics and plots, add them to the model's MLflow run."""

import sys

from softmax_regression import paths
from softmax_regression.config import TrackingParams, read_params, section
from softmax_regression.files import read_json
from softmax_regression.process import run_main
from softmax_regression.tracking.uri import check_reachable, tracking_uri


def main() -> None:
    experiment = section(read_params(), "tracking", TrackingParams).experiment
    check_reachable(tracking_uri())
    # The params are checked and the tracking server answers: now torch and MLflow, seconds to import.
    from softmax_regression.tracking import runs
    from softmax_regression.training.outputs import evaluate

    uri = runs.connect()
    metrics = evaluate()
    trained_by = read_json(paths.RUN)["run_id"]
    run_id = runs.log_evaluation(trained_by, experiment, metrics)
    if run_id is None:
        print(f"evaluate: MLflow run {trained_by} is not in {uri}; metrics are written for DVC but not logged "
              f"(re-train with `dvc repro -f train` to get a run here)", file=sys.stderr)
        return
    again = "" if run_id == trained_by else f" (a re-evaluation of run {trained_by}, restored by DVC)"
    val = (f"validation accuracy {metrics['val_accuracy']:.4f}, log-loss {metrics['val_log_loss']:.4f}; "
           if "val_accuracy" in metrics else "no validation rows; ")
    print(f"evaluate: {val}test accuracy {metrics['test_accuracy']:.4f}, log-loss {metrics['test_log_loss']:.4f}; "
          f"MLflow run {run_id}{again}; see it with `make ui`")


if __name__ == "__main__":
    run_main(main)
