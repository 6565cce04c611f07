"""ingest: stream the raw CSV named in params.yaml into a typed Parquet table, validating it on the way."""

import sys

from softmax_regression import paths
from softmax_regression.config import IngestParams, read_params, section
from softmax_regression.data.raw import ingest_csv
from softmax_regression.process import run_main


def main() -> None:
    params = section(read_params(), "ingest", IngestParams)
    found = ingest_csv(params.path, paths.DATASET, params.label, params.drop, params.delimiter, params.missing)
    dropped = f" ({found.dropped_rows} rows with missing values dropped)" if found.dropped_rows else ""
    print(f"ingest: {found.rows} rows, {len(found.features)} features, {len(found.classes)} classes -> "
          f"{paths.DATASET}{dropped}")
    for name, (low, high) in found.id_like.items():
        print(f"ingest: warning: feature {name!r} of {params.path} looks like a row id (distinct, evenly spaced "
              f"integers from {low} to {high}) and is trained on; if it is one, add it to ingest.drop",
              file=sys.stderr)


if __name__ == "__main__":
    run_main(main)
