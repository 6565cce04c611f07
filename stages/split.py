"""split: encode the labels as 0..k-1 and hold out stratified, seeded validation and test sets."""

from softmax_regression.cli import run_stage
from softmax_regression.config import SplitParams, read_params, section
from softmax_regression.files import write_json
from softmax_regression.splitting import encode_labels, stratified_split
from softmax_regression.tables import read_parquet, write_parquet

INPUT = "data/interim/dataset.parquet"
TRAIN, VAL, TEST = "data/split/train.parquet", "data/split/val.parquet", "data/split/test.parquet"
CLASSES = "data/split/classes.json"


def main() -> None:
    params = read_params()
    split = section(params, "split", SplitParams)
    label = params["ingest"]["label"]
    table = read_parquet(INPUT)
    y, classes = encode_labels(table[label])
    rows = stratified_split(y, classes, split.test_size, split.seed, split.val_size)
    table[label] = y
    for path, part in zip((TRAIN, VAL, TEST), rows, strict=True):
        write_parquet(table.iloc[part], path)  # val.parquet has no rows when split.val_size is 0
    write_json(CLASSES, {"label": label, "classes": {name: i for i, name in enumerate(classes)}})
    print(f"split: {len(rows[0])} train, {len(rows[1])} validation and {len(rows[2])} test rows, "
          f"classes {classes}")


if __name__ == "__main__":
    run_stage(main)
