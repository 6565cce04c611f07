"""split: encode the labels as 0..k-1 and hold out stratified, seeded validation and test sets, a row group
at a time."""

from softmax_regression import paths
from softmax_regression.config import SplitParams, read_params, section
from softmax_regression.data.split import split_parquet
from softmax_regression.files import write_json
from softmax_regression.process import run_main


def main() -> None:
    params = read_params()
    split = section(params, "split", SplitParams)
    label = params["ingest"]["label"]  # checked by ingest, which wrote the table with it
    classes, sizes = split_parquet(paths.DATASET, label, split.test_size, split.val_size, split.seed,
                                   (paths.TRAIN, paths.VAL, paths.TEST))
    write_json(paths.CLASSES, {"label": label, "classes": {name: i for i, name in enumerate(classes)}})
    print(f"split: {sizes[0]} train, {sizes[1]} validation and {sizes[2]} test rows, classes {classes}")


if __name__ == "__main__":
    run_main(main)
