"""train: fit softmax regression with train.impl, write the model, and record the run in MLflow."""

from softmax_regression.cli import run_stage
from softmax_regression.config import TrackingParams, TrainParams, flatten, read_params, section
from softmax_regression.files import write_json, write_text
from softmax_regression.model import write_model
from softmax_regression.trainers import trainer
from softmax_regression.dataset import DTYPES, read_dataset
from softmax_regression.training import coefficients_csv, train, train_metrics

TRAIN, CLASSES = "data/split/train.parquet", "data/split/classes.json"
MODEL, COEFFICIENTS, RUN = "models/model.safetensors", "models/coefficients.csv", "models/mlflow_run.json"
METRICS, LOSS_PLOT = "metrics/train.json", "plots/train_loss.csv"


def main() -> None:
    all_params = read_params()
    params = section(all_params, "train", TrainParams)
    experiment = section(all_params, "tracking", TrackingParams).experiment
    trainer(params.impl)  # an unknown implementation fails here, before any work

    from softmax_regression import tracking  # imports mlflow: seconds, so only once the params are good

    tracking.check_reachable()
    data = read_dataset(TRAIN, CLASSES, DTYPES[params.dtype])
    run_name = f"{params.impl} lr={params.lr} l2={params.l2} it={params.iterations}"
    run_id = tracking.create_run(experiment, run_name, flatten(all_params))
    with tracking.active_run(run_id):
        model, losses = train(data, params)
        metrics = train_metrics(model, data, params.l2)
        write_model(MODEL, model)
        write_text(COEFFICIENTS, coefficients_csv(model))
        write_text(LOSS_PLOT, "iteration,train_loss\n" + "".join(
            f"{t},{loss!r}\n" for t, loss in enumerate(losses.tolist())))
        write_json(METRICS, metrics)
        write_json(RUN, {"run_id": run_id})

        tracking.log_series(run_id, "train_loss", losses.tolist())
        tracking.log_metrics(metrics, step=params.iterations)
        tracking.log_artifacts([MODEL, COEFFICIENTS], "weights")
        tracking.log_model(model, data.X[:5])
    print(f"train: {params.impl}, train accuracy {metrics['train_accuracy']:.4f}, "
          f"final loss {metrics['train_loss_final']:.6f}; MLflow run {run_id}")


if __name__ == "__main__":
    run_stage(main)
