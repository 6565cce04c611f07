"""Apply a trained model to a new CSV: the predicted class and the probability of every class, per row.

    python -m softmax_regression.commands.predict new.csv --output predictions.csv
    make predict INPUT=new.csv OUTPUT=predictions.csv

The CSV needs the model's feature columns, in any order; other columns are ignored. Output rows are in
input order.
"""

from __future__ import annotations

import argparse
import sys

from softmax_regression.process import run_stage
from softmax_regression.errors import DataError
from softmax_regression.files import write_csv
from softmax_regression.data.raw import read_features

MODEL = "models/model.safetensors"


def predict_csv(model_file: str, input_file: str, output_file: str, delimiter: str = ",") -> int:
    """Write predictions for input_file to output_file; returns the number of rows."""
    from softmax_regression.training.model import read_model
    from softmax_regression.serving.predictions import prediction_table  # torch: only once the arguments are good

    try:
        model = read_model(model_file)
    except FileNotFoundError:
        raise DataError(f"{model_file}: no model here; run the pipeline first (make run)") from None
    table = prediction_table(model, read_features(input_file, model.features, delimiter))
    write_csv(output_file, list(table.columns), table.itertuples(index=False))
    return len(table)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m softmax_regression.commands.predict", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", help="CSV with the model's feature columns")
    parser.add_argument("--output", default="predictions.csv", help="where to write (default: %(default)s)")
    parser.add_argument("--model", default=MODEL, help="model file (default: %(default)s)")
    parser.add_argument("--delimiter", default=",")
    args = parser.parse_args(argv)
    rows = predict_csv(args.model, args.input, args.output, args.delimiter)
    print(f"predict: {rows} rows -> {args.output}", file=sys.stderr)


if __name__ == "__main__":
    run_stage(main)
