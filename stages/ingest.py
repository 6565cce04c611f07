"""ingest: stream the raw CSV named in params.yaml into a typed Parquet table, validating it on the way."""

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


if __name__ == "__main__":
    run_main(main)
