"""train: fit softmax regression with train.impl and train.optimizer on train.world_size ranks, write the
model, record the MLflow run."""

from functools import partial

from softmax_regression.process import run_stage
from softmax_regression.config import TrackingParams, TrainParams, flatten, read_params, section
from softmax_regression.tracking.uri import check_reachable, tracking_uri
from softmax_regression.data.tables import parquet_rows

TRAIN, VAL, CLASSES = "data/split/train.parquet", "data/split/val.parquet", "data/split/classes.json"
MODEL, COEFFICIENTS, RUN = "models/model.safetensors", "models/coefficients.csv", "models/mlflow_run.json"
METRICS, LOSS_PLOT, LOG_LOSS_PLOT = "metrics/train.json", "plots/train_loss.csv", "plots/log_loss.csv"
HEAT_MAP = "plots/coefficients.png"


def main() -> None:
    all_params = read_params()
    params = section(all_params, "train", TrainParams)
    experiment = section(all_params, "tracking", TrackingParams).experiment
    params.check_world_size(parquet_rows(TRAIN))
    check_reachable(tracking_uri())
    # Every param is checked by now, and the tracking server answers. torch and MLflow cost seconds to import,
    # so they come after.
    import pandas as pd

    from softmax_regression.training.dataset import read_dataset
    from softmax_regression.files import write_csv, write_json
    from softmax_regression.parallel.launch import launch, torchrun_rank
    from softmax_regression.training.model import write_model
    from softmax_regression.training.loop import coefficient_rows, device_for, kernel_level, train_shard

    device = device_for(params.device)
    training = partial(launch, params.world_size, device, train_shard, params, TRAIN, VAL, CLASSES)
    rank = torchrun_rank(params.world_size)
    if rank is not None and not rank.leader:  # one of several ranks under torchrun: rank 0 reports
        training()
        return

    from softmax_regression.serving import pyfunc  # mlflow: seconds, so only once the params are good

    from softmax_regression.tracking import runs as tracking
    from softmax_regression.training.figures import coefficient_heat_map  # matplotlib: rank 0 only

    tracking.connect()
    example = read_dataset(TRAIN, CLASSES, rows=(0, 5))  # for the model's signature
    run_id = tracking.create_run(experiment, flatten(all_params), {"cpu_kernels": kernel_level()})
    with tracking.active_run(run_id):
        tracking.log_training_data(TRAIN, VAL, example.features, example.label, all_params["ingest"]["path"])
        trained = training()
        model, losses, curves, metrics = trained.model, trained.fit.losses, trained.curves, trained.metrics
        write_model(MODEL, model)
        write_csv(COEFFICIENTS, ["feature", *model.classes, "mean", "scale"], coefficient_rows(model))
        coefficient_heat_map(HEAT_MAP, model)
        write_csv(LOSS_PLOT, ["iteration", "train_loss"], enumerate(losses.tolist()))
        write_csv(LOG_LOSS_PLOT, ["iteration", "train_log_loss", "val_log_loss"], curves.rows())
        write_json(METRICS, metrics)  # timings go to MLflow only: DVC outputs stay the same bits
        write_json(RUN, {"run_id": run_id})

        tracking.log_metrics(metrics | {"train_seconds": trained.seconds}, step=len(losses), series={
            "train_loss": enumerate(losses.tolist()),
            "log_loss/train": zip(curves.iteration, curves.train_log_loss, strict=True),
            "log_loss/val": zip(curves.iteration, curves.val_log_loss)})  # none without validation rows
        tracking.log_artifacts([MODEL, COEFFICIENTS, HEAT_MAP], "weights")
        pyfunc.log_model(MODEL, pd.DataFrame(example.X.numpy(), columns=example.features))
    ranks = "" if params.world_size == 1 else f" on {params.world_size} ranks"
    print(f"train: {params.impl}+{params.optimizer}, {len(losses)} iterations{ranks} in "
          f"{trained.seconds:.2f} s, train accuracy {metrics['train_accuracy']:.4f}, "
          f"final loss {metrics['train_loss_final']:.6f}; MLflow run {run_id}")


if __name__ == "__main__":
    run_stage(main)
