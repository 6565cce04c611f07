"""ingest: read the raw CSV named in params.yaml, validate it, write a typed Parquet table."""

from softmax_regression.cli import run_stage
from softmax_regression.config import IngestParams, read_params, section
from softmax_regression.raw import read_raw
from softmax_regression.tables import write_parquet

OUTPUT = "data/interim/dataset.parquet"


def main() -> None:
    params = section(read_params(), "ingest", IngestParams)
    table = read_raw(params.path, params.label, params.drop, params.delimiter, params.missing)
    write_parquet(table, OUTPUT)
    dropped = table.attrs["dropped_rows"]
    print(f"ingest: {len(table)} rows, {table.shape[1] - 1} features, {table[params.label].nunique()} "
          f"classes -> {OUTPUT}" + (f" ({dropped} rows with missing values dropped)" if dropped else ""))


if __name__ == "__main__":
    run_stage(main)
