"""train: fit softmax regression with train.impl and train.optimizer on train.world_size ranks, write the
model and its outputs, record the MLflow run."""

from softmax_regression import paths
from softmax_regression.config import TrackingParams, TrainParams, read_params, run_params, section
from softmax_regression.data.tables import parquet_rows
from softmax_regression.process import run_main
from softmax_regression.tracking.uri import check_reachable, tracking_uri


def main() -> None:
    params = read_params()
    train = section(params, "train", TrainParams)
    experiment = section(params, "tracking", TrackingParams).experiment
    train.check_world_size(parquet_rows(paths.TRAIN))
    check_reachable(tracking_uri())
    # Every param is checked and the tracking server answers: now torch and MLflow, seconds to import.
    from softmax_regression.parallel.launch import follower
    from softmax_regression.training.loop import kernel_level, train_split

    if follower(train.world_size):  # one of several ranks under torchrun: rank 0 reports
        train_split(train)
        return
    from softmax_regression.tracking import names, runs
    from softmax_regression.training.outputs import write_training_outputs

    runs.connect()
    with runs.new_run(experiment, run_params(params), {names.CPU_KERNELS: kernel_level()}) as run_id:
        runs.log_training_data(paths.TRAIN, paths.VAL, params["ingest"]["path"])
        trained = train_split(train)
        write_training_outputs(trained, run_id)
        runs.log_training(trained)
    print(f"train: {trained.summary(train)}; MLflow run {run_id}")


if __name__ == "__main__":
    run_main(main)
