"""split: encode the labels as 0..k-1 and hold out a stratified, seeded test set."""

from softmax_regression.cli import run_stage
from softmax_regression.config import SplitParams, read_params, section
from softmax_regression.files import write_json
from softmax_regression.splitting import encode_labels, stratified_split
from softmax_regression.tables import read_parquet, write_parquet

INPUT = "data/interim/dataset.parquet"
TRAIN, TEST, CLASSES = "data/split/train.parquet", "data/split/test.parquet", "data/split/classes.json"


def main() -> None:
    params = read_params()
    split = section(params, "split", SplitParams)
    label = params["ingest"]["label"]
    table = read_parquet(INPUT)
    y, classes = encode_labels(table[label])
    train_rows, test_rows = stratified_split(y, classes, split.test_size, split.seed)
    table[label] = y
    write_parquet(table.iloc[train_rows], TRAIN)
    write_parquet(table.iloc[test_rows], TEST)
    write_json(CLASSES, {"label": label, "classes": {name: i for i, name in enumerate(classes)}})
    print(f"split: {len(train_rows)} train rows, {len(test_rows)} test rows, classes {classes}")


if __name__ == "__main__":
    run_stage(main)
