"""Reading and validating a raw CSV: numeric features by name, a label column, one clear error per problem.

Read as a stream of blocks, so that ingest's memory does not grow with the file. pandas and pyarrow only,
no torch: ingest and predict start in a fraction of a second.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pv

from softmax_regression.errors import DataError, missing_features

OTHER_DELIMITERS = {";": "';'", "\t": "a tab", "|": "'|'"}
MAX_ROWS_LISTED = 5


# CSV text parsed at a time. ingest's peak grows with it, as pyarrow's reader works on several blocks at once
# (on a 2 GB CSV of 10⁶ × 100: 330 MB at 4 MiB, 500 MB at 8 MiB, 1.36 GB at 32 MiB); 8 MiB is the fastest.
BLOCK_BYTES = 1 << 23


@dataclass
class Ingested:
    """What streaming a CSV into Parquet found."""

    rows: int  # kept
    features: list[str]
    classes: dict[str, int]  # rows per class
    dropped_rows: int  # with a missing value, under missing="drop"
    id_like: dict[str, tuple[int, int]] = field(default_factory=dict)  # feature: (first, last) of its id-like values


MIN_ID_ROWS = 10  # fewer rows than this say too little to call a column an id


class _Spacing:
    """Whether a feature column's values are, in any order, n distinct integers evenly spaced from its minimum
    to its maximum, as a row id's are: every value an integer, and the column's count, sum and sum of squares
    those of that progression. Kept a block at a time; `candidate` turns false at the first non-integer."""

    def __init__(self) -> None:
        self.candidate, self.n, self.total, self.squares = True, 0, 0.0, 0.0
        self.low, self.high = math.inf, -math.inf

    def add(self, column: pa.ChunkedArray) -> None:
        if not self.candidate or len(column) == 0:
            return
        values = column.to_numpy()
        if not np.array_equal(values, np.round(values)) or np.abs(values).max() >= 2**53:
            self.candidate = False
            return
        self.n += len(values)
        self.total += float(values.sum())
        self.squares += float(np.square(values).sum())
        self.low, self.high = min(self.low, float(values.min())), max(self.high, float(values.max()))

    def id_like(self) -> bool:
        if not self.candidate or self.n < MIN_ID_ROWS or self.high == self.low:
            return False
        step, rest = divmod(self.high - self.low, self.n - 1)
        if rest:
            return False
        n, a = self.n, self.low
        total = n * (a + self.high) / 2
        squares = n * a * a + a * step * n * (n - 1) + step * step * (n - 1) * n * (2 * n - 1) / 6
        return math.isclose(self.total, total, rel_tol=1e-9) and math.isclose(self.squares, squares, rel_tol=1e-9)


def ingest_csv(path: str | Path, out: str | Path, label: str, drop: tuple[str, ...] = (), delimiter: str = ",",
               missing: str = "error") -> Ingested:
    """Stream the CSV into a Parquet table, block by block: numeric float64 feature columns followed by the
    label column (strings). The table goes to a temporary file renamed at the end, so any problem, even in
    the last block, leaves no output. The problems are those of `raw_blocks`."""
    import pyarrow.parquet as pq

    from softmax_regression.data.tables import ROW_GROUP
    from softmax_regression.files import atomic_path

    summary = Ingested(0, [], {}, 0)
    with atomic_path(out) as tmp:
        writer, pending = None, []  # blocks gathered into whole row groups of ROW_GROUP rows
        try:
            for block in raw_blocks(path, label, drop, delimiter, missing, summary):
                writer = writer or pq.ParquetWriter(tmp, block.schema)
                pending.append(block)
                if sum(b.num_rows for b in pending) >= ROW_GROUP:
                    table = pa.concat_tables(pending)
                    whole = table.num_rows // ROW_GROUP * ROW_GROUP
                    writer.write_table(table.slice(0, whole), row_group_size=ROW_GROUP)
                    pending = [table.slice(whole)]
            if writer is not None and pending:
                writer.write_table(pa.concat_tables(pending), row_group_size=ROW_GROUP)
        finally:
            if writer is not None:
                writer.close()
    return summary


def raw_blocks(path: str | Path, label: str, drop: tuple[str, ...], delimiter: str, missing: str,
               summary: Ingested) -> Iterator[pa.Table]:
    """The CSV's rows, checked and cleaned, a block of BLOCK_BYTES of text at a time, as Arrow tables of
    float64 features and the (stripped) label; `summary` is filled in.

    Every problem is a DataError naming the file, the column and the line (1 is the header), counted from
    the top of the file. A non-numeric value stops the reading where it is found; infinite and missing
    values are gathered over the whole file (their message lists the first lines and counts the rest), as
    are the checks that need every row (no rows, too few classes), and raised after the last block, before
    the end of the iteration. Rows with a missing value are an error, or with missing="drop" are dropped
    and counted. A feature that looks like a row id (`_Spacing`) is no error: `summary.id_like` names it.
    """
    path = Path(path)
    raw = _read_header(path, delimiter, strip=False)
    header = [name.strip() for name in raw]
    _check_columns(path, header, label, drop, delimiter)
    features = [c for c in header if c != label and c not in drop]
    if not features:
        raise DataError(f"{path}: no feature columns left besides the label {label!r} (check ingest.drop)")
    summary.features = features
    as_read = {name: original for name, original in zip(header, raw, strict=True)}
    types = {**{as_read[c]: pa.float64() for c in features}, as_read[label]: pa.string()}
    found = _Problems(path, hint="; to drop such rows, set ingest.missing: drop")
    spacing = {name: _Spacing() for name in features}
    seen = 0  # data rows read so far: the block's first row is line seen + 2
    for batch in _batches(path, delimiter, types):
        columns = [*batch.columns[:-1], pc.utf8_trim_whitespace(batch.column(len(features)))]
        block = pa.Table.from_arrays(columns, names=[*features, label])
        absent = None
        for name, column in zip(block.column_names, block.columns, strict=True):
            gone = pc.is_null(column, nan_is_null=True)
            if name != label:
                found.add(name, "infinite values", seen, pc.is_inf(column))
            if missing == "error":
                found.add(name, "missing labels" if name == label else "missing values", seen, gone)
            absent = gone if absent is None else pc.or_(absent, gone)
        dropped = pc.sum(absent).as_py() or 0
        if dropped:  # a filtered copy only when there is something to drop
            block = block.filter(pc.invert(absent))
        seen += batch.num_rows
        summary.dropped_rows += dropped
        summary.rows += block.num_rows
        for name in features:
            spacing[name].add(block.column(name))
        for entry in pc.value_counts(block.column(label)).to_pylist():
            summary.classes[entry["values"]] = summary.classes.get(entry["values"], 0) + entry["counts"]
        if not found.any() and block.num_rows:  # once an error is certain, reading goes on only to count it
            yield block
    found.raise_first([*features, label])
    if seen == 0:
        raise DataError(f"{path}: the header has no data rows below it")
    if summary.rows == 0:
        raise DataError(f"{path}: every row has a missing value; nothing is left to train on")
    if len(summary.classes) < 2:
        raise DataError(f"{path}: label column {label!r} has {len(summary.classes)} class; at least 2 are needed")
    summary.id_like = {name: (int(s.low), int(s.high)) for name, s in spacing.items() if s.id_like()}


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


def read_text_columns(path: str | Path, columns: list[str], delimiter: str = ",") -> pd.DataFrame:
    """The columns of a CSV, in that order, as the text they hold (an empty cell is ""): what `make predict
    --keep` carries through. A missing column is a DataError naming it."""
    path = Path(path)
    header = _read_header(path, delimiter, param="the input file")
    missing = [c for c in columns if c not in header]
    if missing:
        raise DataError(f"{path}: column {missing[0]!r} to keep is missing; columns are: {', '.join(header)}")
    try:
        table = pv.read_csv(path, parse_options=pv.ParseOptions(delimiter=delimiter),
                            convert_options=pv.ConvertOptions(include_columns=columns,
                                                              column_types=dict.fromkeys(columns, pa.string()),
                                                              strings_can_be_null=False))
    except pa.ArrowInvalid as e:
        raise DataError(f"{path}: not a well-formed UTF-8 CSV: {_one_line(e)}") from None
    return pd.DataFrame({c: table.column(c).to_pylist() for c in columns}, dtype=object)


def _batches(path: Path, delimiter: str, types: dict[str, pa.DataType]) -> Iterator[pa.RecordBatch]:
    """The CSV's columns `types` (others are skipped unparsed), a block at a time. A value the type cannot
    hold is looked for again, as text, to name its line."""
    reader = _open(path, delimiter, types)
    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            return
        except pa.ArrowInvalid as e:
            if "conversion error" in str(e):
                _raise_non_numeric(path, delimiter, [c for c, t in types.items() if t == pa.float64()])
            raise DataError(f"{path}: not a well-formed CSV: {_one_line(e)}") from None
        yield batch


def _open(path: Path, delimiter: str, types: dict[str, pa.DataType]) -> pv.CSVStreamingReader:
    try:
        return pv.open_csv(path, read_options=pv.ReadOptions(block_size=BLOCK_BYTES),
                           parse_options=pv.ParseOptions(delimiter=delimiter),
                           convert_options=pv.ConvertOptions(column_types=types, include_columns=list(types),
                                                             strings_can_be_null=True))
    except pa.ArrowInvalid as e:  # the first block is read on opening
        if "UTF8" in str(e):
            raise DataError(f"{path}: not a UTF-8 text file") from None
        if "conversion error" in str(e):
            _raise_non_numeric(path, delimiter, [c for c, t in types.items() if t == pa.float64()])
        raise DataError(f"{path}: not a well-formed CSV: {_one_line(e)}") from None


def _raise_non_numeric(path: Path, delimiter: str, features: list[str]) -> None:
    """Find the first value of `features` that is not a number, reading them as text, and name its line."""
    seen = 0
    for batch in _batches(path, delimiter, dict.fromkeys(features, pa.string())):
        block = batch.to_pandas()
        for column in features:
            _numbers(path, block[column], first_line=seen + 2)
        seen += len(block)
    raise DataError(f"{path}: a value that is not a number, in a feature column")  # pragma: no cover


class _Problems:
    """Infinite and missing values found so far, per column and kind: the first lines, and how many. `hint`
    ends the message about missing values."""

    def __init__(self, path: Path, hint: str = "") -> None:
        self.path, self.hint = path, hint
        self.lines: dict[tuple[str, str], list[int]] = {}
        self.counts: dict[tuple[str, str], int] = {}

    def add(self, column: str, what: str, offset: int, mask: pa.Array) -> None:
        """The rows where `mask` is true, of a block whose first row is data row `offset`."""
        count = pc.sum(mask).as_py()
        if count:
            first = self.lines.setdefault((column, what), [])
            rows = np.flatnonzero(mask.to_numpy(zero_copy_only=False))[:MAX_ROWS_LISTED - len(first)]
            first += [_line(offset + r) for r in rows]
            self.counts[column, what] = self.counts.get((column, what), 0) + count

    def any(self) -> bool:
        return bool(self.counts)

    def raise_first(self, columns: list[str]) -> None:
        """Infinite values first, then missing ones, each in column order; with missing ones the hint."""
        for kind in ("infinite values", "missing"):
            for column in columns:
                for (name, what), count in self.counts.items():
                    if name == column and what.startswith(kind):
                        lines = ", ".join(str(line) for line in self.lines[name, what])
                        more = f" and {count - MAX_ROWS_LISTED} more" if count > MAX_ROWS_LISTED else ""
                        hint = self.hint if kind == "missing" else ""
                        raise DataError(f"{self.path}: column {name!r} has {what} at line {lines}{more}{hint}")


def _read_header(path: Path, delimiter: str, param: str = "set ingest.path in params.yaml", strip: bool = True
                 ) -> list[str]:
    """The header's column names, stripped of spaces unless `strip` is false (the names the CSV reader sees)."""
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
    return [name.strip() for name in header] if strip else header


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
    """The column as float64: a value that is not a number, or an infinite one, is a DataError naming its line."""
    values = _numbers(path, column)
    _check_present(path, column.name, np.isinf(values.to_numpy()), "infinite values")
    return values


def _numbers(path: Path, column: pd.Series, first_line: int = 2) -> pd.Series:
    """The column as float64; a value that is not a number is a DataError naming its line (the column's
    first value being on `first_line`)."""
    values = pd.to_numeric(column, errors="coerce").astype("float64")
    bad = values.isna() & column.notna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(f"{path}: column {column.name!r} has a non-numeric value {column.iloc[row]!r} at "
                        f"line {first_line + row} (every column but the label is a feature; drop others with "
                        f"ingest.drop)")
    return values


def _check_present(path: Path, name: str, bad: np.ndarray, what: str) -> None:
    """A DataError naming the first lines where `bad` is true, if any (`what`: "missing values", …)."""
    found = _Problems(path)
    found.add(name, what, 0, pa.array(bad))
    found.raise_first([name])


def _line(row: int) -> int:
    """The line of the file that holds data row `row` (0-based), the header being line 1."""
    return row + 2


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())
