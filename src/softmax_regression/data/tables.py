"""Parquet tables on disk: written atomically, in row groups that a rank can read alone."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from softmax_regression.files import atomic_path

ROW_GROUP = 65_536  # rows per Parquet row group: a rank reads the groups its shard overlaps, not the file


def write_parquet(df: pd.DataFrame, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, engine="pyarrow", index=False, row_group_size=ROW_GROUP)


def parquet_rows(path: str | Path) -> int:
    """The number of rows, from the file's footer."""
    return pq.read_metadata(path).num_rows
