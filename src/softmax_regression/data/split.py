"""Label encoding and the stratified, seeded split into train, validation and test rows, streamed from one
Parquet table to three. numpy and pyarrow only."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from softmax_regression.errors import DataError

TRAIN, VAL, TEST = 0, 1, 2  # a row's part, as Assignment.parts gives it
MAX_CLASS_ROWS = 10**9  # numpy's hypergeometric draws take fewer than this many rows of a class


def split_sizes(counts: np.ndarray, classes: list[str], test_size: float, val_size: float) -> np.ndarray:
    """Rows of each class for (train, validation, test), shape (k, 3): round(test_size · n_c) for test and
    round(val_size · n_c) for validation, the rest for training. Each class keeps at least one row in train
    and in test, and in validation when val_size > 0."""
    needed = 3 if val_size > 0 else 2
    sizes = np.zeros((len(classes), 3), dtype=np.int64)
    for c, (name, n) in enumerate(zip(classes, counts.tolist(), strict=True)):
        if n < needed:
            sides = "train, validation and test" if val_size > 0 else "train and test"
            raise DataError(f"class {name!r} has {n} row{'s' * (n != 1)}; the stratified split needs at least "
                            f"{needed} per class (one each for {sides})")
        if n >= MAX_CLASS_ROWS:
            raise DataError(f"class {name!r} has {n} rows; the split draws from at most {MAX_CLASS_ROWS - 1} "
                            "per class")
        n_test = min(max(round(test_size * n), 1), n - needed + 1)
        n_val = min(max(round(val_size * n), 1), n - n_test - 1) if val_size > 0 else 0
        sizes[c] = (n - n_test - n_val, n_val, n_test)
    return sizes


class Assignment:
    """The part of every row, drawn one group of rows at a time in file order, holding only the rows of each
    class still to place: exact counts per class over the whole table, and memory that does not grow with it.

    In each group, a class's rows for test are drawn from a hypergeometric (its rows in the group, out of its
    rows left to place, of which `left[c, TEST]` go to test), then those for validation from the rest in the
    same way; a seeded permutation of the class's rows in the group then picks them. Every way of choosing a
    class's test (then validation) rows is equally likely, as with one permutation of all the class's rows,
    which is exactly what one group does. The test draws do not depend on val_size, so neither do the test
    rows.
    """

    def __init__(self, sizes: np.ndarray, seed: int):
        self.left = sizes.copy()  # (k, 3): rows of each class still to place in (train, validation, test)
        self._order = np.random.default_rng(seed)
        self._tests, self._vals = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))

    def parts(self, codes: np.ndarray) -> np.ndarray:
        """TRAIN, VAL or TEST for each row of the next group, given its class codes 0..k-1."""
        part = np.empty(len(codes), dtype=np.int8)
        by_class = np.argsort(codes, kind="stable")  # each class's rows, in file order
        counts = np.bincount(codes, minlength=len(self.left))
        for c, (end, n) in enumerate(zip(np.cumsum(counts).tolist(), counts.tolist(), strict=True)):
            if n == 0:
                continue
            train, val, test = self.left[c].tolist()
            if n == train + val + test:  # the class's last rows: no choice left
                n_test, n_val = test, val
            else:
                n_test = int(self._tests.hypergeometric(test, train + val, n))
                n_val = int(self._vals.hypergeometric(val, train, n - n_test))
            rows = self._order.permutation(by_class[end - n:end])
            part[rows[:n_test]] = TEST
            part[rows[n_test:n_test + n_val]] = VAL
            part[rows[n_test + n_val:]] = TRAIN
            self.left[c] -= (n - n_test - n_val, n_val, n_test)
        return part


def split_parquet(source: str | Path, label: str, test_size: float, val_size: float, seed: int,
                  outputs: tuple[str | Path, str | Path, str | Path]) -> tuple[list[str], list[int]]:
    """Split a Parquet table into train, validation and test files, a row group at a time, the labels encoded
    as 0..k-1. Returns the classes and the three files' row counts.

    A first pass reads the label column a row group at a time to count each class; a second pass reads each
    row group, draws its rows' parts (`Assignment`: exact counts per class, seeded) and sends them to their
    files. Memory: a row group or two and a count per class, whatever the table's size. Each file is written
    to a temporary file renamed at the end.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from softmax_regression.data.tables import ROW_GROUP
    from softmax_regression.files import atomic_path

    with pq.ParquetFile(source) as f:
        classes, counts = _class_counts(f, label)
        sizes = split_sizes(counts, classes, test_size, val_size)
        draw = Assignment(sizes, seed)
        known = pa.array(classes, pa.string())
        schema = f.schema_arrow
        index = schema.get_field_index(label)
        schema = schema.set(index, pa.field(label, pa.int64())).remove_metadata()  # pandas would read strings
        with (atomic_path(outputs[0]) as train, atomic_path(outputs[1]) as val, atomic_path(outputs[2]) as test,
              pq.ParquetWriter(train, schema) as w0, pq.ParquetWriter(val, schema) as w1,
              pq.ParquetWriter(test, schema) as w2):
            for g in range(f.num_row_groups):
                group = f.read_row_group(g)
                codes = _codes(group.column(label), known)
                group = group.set_column(index, pa.field(label, pa.int64()), pa.array(codes))
                part = draw.parts(codes)
                for p, writer in zip((TRAIN, VAL, TEST), (w0, w1, w2), strict=True):
                    chosen = part == p
                    if chosen.any():
                        writer.write_table(group.filter(pa.array(chosen)), row_group_size=ROW_GROUP)
    return classes, sizes.sum(axis=0).tolist()


def _class_counts(f, label: str) -> tuple[list[str], np.ndarray]:
    """The classes, sorted, and the rows of each, reading the label column a row group at a time."""
    counts: dict[str, int] = {}
    for g in range(f.num_row_groups):
        for entry in f.read_row_group(g, columns=[label]).column(label).value_counts().to_pylist():
            counts[entry["values"]] = counts.get(entry["values"], 0) + entry["counts"]
    classes = sorted(counts)
    return classes, np.array([counts[name] for name in classes], dtype=np.int64)


def _codes(labels, known) -> np.ndarray:
    """Each label's index in the sorted classes `known`, as int64."""
    import pyarrow.compute as pc

    encoded = labels.combine_chunks().dictionary_encode()
    return pc.index_in(encoded.dictionary, value_set=known).to_numpy()[encoded.indices.to_numpy()].astype(np.int64)
