"""Apply a trained model to a new CSV: the predicted class and the probability of every class, per row.

    make predict INPUT=new.csv [OUTPUT=predictions.csv] [ARGS='--keep Id']
    python -m softmax_regression.commands.predict new.csv --output predictions.csv --keep Id

The CSV needs the model's feature columns, in any order; other columns are ignored unless kept (`--keep`,
written first, as they are in the CSV). Output rows are in input order.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from softmax_regression import paths
from softmax_regression.commands.console import parser
from softmax_regression.data.raw import read_features, read_text_columns
from softmax_regression.errors import DataError
from softmax_regression.files import read_json, write_csv
from softmax_regression.process import run_main


def predict_csv(model_file: str | Path, input_file: str | Path, output_file: str | Path, delimiter: str = ",",
                keep: Sequence[str] = ()) -> int:
    """Write the prediction table of input_file's rows to output_file, after the columns `keep` of the input
    as they are written there; returns the number of rows."""
    from softmax_regression.serving.predictions import (
        prediction_table,  # torch: only once the arguments are good
    )
    from softmax_regression.training.model import read_model

    try:
        model = read_model(model_file)
    except FileNotFoundError:
        raise DataError(f"{model_file}: no model here; run the pipeline first (make run)") from None
    table = prediction_table(model, read_features(input_file, model.features, delimiter))
    if keep:
        clash = [c for c in keep if c in table.columns]
        if clash:
            raise DataError(f"column {clash[0]!r} to keep has the name of an output column; rename it in the CSV")
        table = pd.concat([read_text_columns(input_file, list(keep), delimiter), table], axis=1)
    write_csv(output_file, list(table.columns), table.itertuples(index=False))
    return len(table)


def trained_by(model_file: str) -> str:
    """What made the model: the MLflow run recorded beside it (`models/mlflow_run.json`), if one is."""
    record = Path(model_file).with_name(Path(paths.RUN).name)
    try:
        return f", trained by MLflow run {read_json(record)['run_id']}"
    except (OSError, ValueError, KeyError):
        return ""


def main(argv: list[str] | None = None) -> None:
    arguments = parser("predict", __doc__)
    arguments.add_argument("input", help="CSV with the model's feature columns")
    arguments.add_argument("--output", default="predictions.csv", help="where to write (default: %(default)s)")
    arguments.add_argument("--model", default=paths.MODEL, help="model file (default: %(default)s)")
    arguments.add_argument("--keep", action="append", default=[], metavar="COLUMN",
                           help="a column of the input to write before the predictions (repeat for more)")
    arguments.add_argument("--delimiter", default=",")
    args = arguments.parse_args(argv)
    rows = predict_csv(args.model, args.input, args.output, args.delimiter, args.keep)
    print(f"predict: {rows} rows -> {args.output} (model {args.model}{trained_by(args.model)})", file=sys.stderr)


if __name__ == "__main__":
    run_main(main)
