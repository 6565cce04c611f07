"""Label encoding and the stratified, seeded split into train, validation and test rows, streamed from one
Parquet table to three. numpy, pandas and pyarrow only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from softmax_regression.errors import DataError


def encode_labels(labels: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Map class names to contiguous integers 0..k-1, in sorted order of the names."""
    classes = sorted(labels.unique().tolist())
    index = {name: i for i, name in enumerate(classes)}
    return labels.map(index).to_numpy(dtype=np.int64), classes


def stratified_split(y: np.ndarray, classes: list[str], test_size: float, seed: int, val_size: float = 0.0
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row indices (train, validation, test), disjoint and sorted: round(test_size · n_c) rows of each class c
    for test and round(val_size · n_c) for validation, the rest for training.

    Each class keeps at least one row in train and in test, and in validation when val_size > 0. The test
    rows are drawn first, so they do not depend on val_size. Same y, sizes and seed give the same split.
    """
    rng = np.random.default_rng(seed)
    parts: tuple[list[np.ndarray], ...] = ([], [], [])
    needed = 3 if val_size > 0 else 2
    for c, name in enumerate(classes):
        rows = np.flatnonzero(y == c)
        if len(rows) < needed:
            sides = "train, validation and test" if val_size > 0 else "train and test"
            raise DataError(f"class {name!r} has {len(rows)} row{'s' * (len(rows) != 1)}; the stratified split "
                            f"needs at least {needed} per class (one each for {sides})")
        n_test = min(max(round(test_size * len(rows)), 1), len(rows) - needed + 1)
        n_val = min(max(round(val_size * len(rows)), 1), len(rows) - n_test - 1) if val_size > 0 else 0
        rows = rng.permutation(rows)
        parts[2].append(rows[:n_test])
        parts[1].append(rows[n_test:n_test + n_val])
        parts[0].append(rows[n_test + n_val:])
    train, val, test = (np.sort(np.concatenate(part)) for part in parts)
    return train, val, test


def split_parquet(source: str | Path, label: str, test_size: float, val_size: float, seed: int,
                  outputs: tuple[str | Path, str | Path, str | Path]) -> tuple[list[str], list[int]]:
    """Split a Parquet table into train, validation and test files, a row group at a time, the labels encoded
    as 0..k-1. Returns the classes and the three files' row counts.

    A first pass reads the label column alone, to count each class and draw the seeded, stratified
    assignment of every row (`stratified_split`: exact counts per class); a second pass sends each row group's
    rows to their files. Memory: the labels, a byte per row, and a row group or two, whatever the table's
    size. Each file is written to a temporary file renamed at the end.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from softmax_regression.files import atomic_path
    from softmax_regression.tables import ROW_GROUP

    with pq.ParquetFile(source) as f:
        classes, y = _encoded_labels(f, label)
        parts = stratified_split(y, classes, test_size, seed, val_size)
        part = np.empty(len(y), dtype=np.int8)
        for p, rows in enumerate(parts):
            part[rows] = p
        schema = f.schema_arrow
        index = schema.get_field_index(label)
        schema = schema.set(index, pa.field(label, pa.int64())).remove_metadata()  # pandas would read strings
        with (atomic_path(outputs[0]) as train, atomic_path(outputs[1]) as val, atomic_path(outputs[2]) as test,
              pq.ParquetWriter(train, schema) as w0, pq.ParquetWriter(val, schema) as w1,
              pq.ParquetWriter(test, schema) as w2):
            offset = 0
            for g in range(f.num_row_groups):
                group = f.read_row_group(g)
                size = group.num_rows
                group = group.set_column(index, pa.field(label, pa.int64()), pa.array(y[offset:offset + size]))
                for p, writer in enumerate((w0, w1, w2)):
                    chosen = part[offset:offset + size] == p
                    if chosen.any():
                        writer.write_table(group.filter(pa.array(chosen)), row_group_size=ROW_GROUP)
                offset += size
    return classes, [len(rows) for rows in parts]


def _encoded_labels(f, label: str) -> tuple[list[str], np.ndarray]:
    """The classes, sorted, and each row's class index, reading the labels a row group at a time: their text
    is held for one row group, then 4 bytes a row (a dictionary code), then the 8 of the index."""
    import pyarrow as pa
    import pyarrow.compute as pc

    groups = [f.read_row_group(g, columns=[label]).column(label).combine_chunks().dictionary_encode()
              for g in range(f.num_row_groups)]
    classes = sorted({name for group in groups for name in group.dictionary.to_pylist()})
    known = pa.array(classes, pa.string())
    codes = [pc.index_in(group.dictionary, value_set=known).to_numpy()[group.indices.to_numpy()] for group in groups]
    return classes, np.concatenate(codes).astype(np.int64) if codes else np.empty(0, dtype=np.int64)
