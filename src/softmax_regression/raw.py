"""Reading and validating a raw CSV: numeric features by name, a label column, one clear error per problem.

pandas and pyarrow only, no torch: ingest and predict start in a fraction of a second.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pv

from softmax_regression.errors import DataError, missing_features

OTHER_DELIMITERS = {";": "';'", "\t": "a tab", "|": "'|'"}
MAX_ROWS_LISTED = 5


def read_raw(path: str | Path, label: str, drop: tuple[str, ...] = (), delimiter: str = ",",
             missing: str = "error") -> pd.DataFrame:
    """Read a CSV into numeric float64 feature columns followed by the label column (as strings).

    Every problem is a DataError naming the file, the column and the line (1 is the header). Rows with
    a missing value are an error, or with missing="drop" are dropped: `attrs["dropped_rows"]` counts them.
    """
    path = Path(path)
    header = _read_header(path, delimiter)
    _check_columns(path, header, label, drop, delimiter)
    try:  # pyarrow's reader is multi-threaded, several times faster than pandas' own on large files
        df = pv.read_csv(path, parse_options=pv.ParseOptions(delimiter=delimiter),
                         convert_options=pv.ConvertOptions(column_types={label: pa.string()},
                                                           strings_can_be_null=True)).to_pandas()
    except pa.ArrowInvalid as e:
        if "UTF8" in str(e):
            raise DataError(f"{path}: not a UTF-8 text file") from None
        raise DataError(f"{path}: not a well-formed CSV: {_one_line(e)}") from None
    if df.empty:
        raise DataError(f"{path}: the header has no data rows below it")

    df = df.drop(columns=list(drop))
    features = [c for c in df.columns if c != label]
    if not features:
        raise DataError(f"{path}: no feature columns left besides the label {label!r} (check ingest.drop)")
    clean = pd.DataFrame({c: _numeric_column(path, df.pop(c)) for c in features})  # pop: one copy at a time
    clean[label] = df[label].astype("str").str.strip().where(df[label].notna())
    del df
    incomplete = clean.isna().any(axis=1).to_numpy()
    if missing == "error":
        for column in clean.columns:
            what = "missing labels" if column == label else "missing values"
            _check_present(path, column, clean[column].isna().to_numpy(), what,
                           hint="; to drop such rows, set ingest.missing: drop")
    if incomplete.any():  # a filtered copy only when there is something to drop
        clean = clean[~incomplete].reset_index(drop=True)
    clean.attrs["dropped_rows"] = int(incomplete.sum())
    if clean.empty:
        raise DataError(f"{path}: every row has a missing value; nothing is left to train on")
    n_classes = clean[label].nunique()
    if n_classes < 2:
        raise DataError(f"{path}: label column {label!r} has {n_classes} class; at least 2 are needed")
    return clean


def read_features(path: str | Path, features: list[str], delimiter: str = ",") -> pd.DataFrame:
    """The columns `features` of a CSV, in that order, as float64; other columns are ignored.

    Missing columns, non-numeric, missing or infinite values are DataErrors naming the column and line.
    """
    path = Path(path)
    header = _read_header(path, delimiter, param="the input file")
    problem = missing_features(features, header)
    if problem:
        raise DataError(f"{path}: {problem}")
    try:
        df = pv.read_csv(path, parse_options=pv.ParseOptions(delimiter=delimiter),
                         convert_options=pv.ConvertOptions(include_columns=features)).to_pandas()
    except pa.ArrowInvalid as e:
        raise DataError(f"{path}: not a well-formed UTF-8 CSV: {_one_line(e)}") from None
    columns = {c: _numeric_column(path, df[c]) for c in features}
    for name, values in columns.items():
        _check_present(path, name, values.isna().to_numpy(), "missing values")
    return pd.DataFrame(columns)


def _read_header(path: Path, delimiter: str, param: str = "set ingest.path in params.yaml") -> list[str]:
    if not path.exists():
        raise DataError(f"{path}: file not found ({param})")
    if not path.is_file():
        raise DataError(f"{path}: not a file ({param})")
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            header = next(csv.reader(f, delimiter=delimiter), None)
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a UTF-8 text file (is it a CSV?)") from None
    if not header:
        raise DataError(f"{path}: the file is empty; expected a header line and data rows")
    return [name.strip() for name in header]


def _check_columns(path: Path, header: list[str], label: str, drop: tuple[str, ...], delimiter: str) -> None:
    seen = set()
    for name in header:
        if name in seen:
            raise DataError(f"{path}: column {name!r} appears more than once in the header")
        seen.add(name)
    if len(header) == 1:
        for other, said in OTHER_DELIMITERS.items():
            if other != delimiter and other in header[0]:
                raise DataError(f"{path}: the header is one column with delimiter {delimiter!r}, but it "
                                f"contains {said}: set ingest.delimiter in params.yaml")
    if label not in seen:
        raise DataError(f"{path}: label column {label!r} not found (set ingest.label); columns are: "
                        f"{', '.join(header)}")
    missing = [c for c in drop if c not in seen]
    if missing:
        raise DataError(f"{path}: column {missing[0]!r} in ingest.drop not found; columns are: "
                        f"{', '.join(header)}")


def _numeric_column(path: Path, column: pd.Series) -> pd.Series:
    values = pd.to_numeric(column, errors="coerce").astype("float64")
    bad = values.isna() & column.notna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(f"{path}: column {column.name!r} has a non-numeric value {column.iloc[row]!r} at "
                        f"line {_line(row)} (every column but the label is a feature; drop others with "
                        f"ingest.drop)")
    _check_present(path, column.name, np.isinf(values.to_numpy()), "infinite values")
    return values


def _check_present(path: Path, name: str, bad: np.ndarray, what: str, hint: str = "") -> None:
    rows = np.flatnonzero(bad)
    if len(rows):
        lines = ", ".join(str(_line(r)) for r in rows[:MAX_ROWS_LISTED])
        more = f" and {len(rows) - MAX_ROWS_LISTED} more" if len(rows) > MAX_ROWS_LISTED else ""
        raise DataError(f"{path}: column {name!r} has {what} at line {lines}{more}{hint}")


def _line(row: int) -> int:
    """The line of the file that holds data row `row` (0-based), the header being line 1."""
    return row + 2


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())
