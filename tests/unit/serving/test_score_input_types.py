"""Batch scoring's reader on real files of awkward column types: a DataError naming file, column and
type (never an Arrow traceback) for what cannot be read as the model reads it, and CSV categories read
as the text they are ("007" stays "007"; a late "A1" after thousands of digits is no error)."""
from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from factory.errors import DataError
from factory.serving.score_input import batches, feature_columns, find_files, open_files

KINDS = {"amount": "numeric", "merchant": "categorical"}
FEATURES = list(KINDS)


def read_all(path: Path, batch_rows: int = 1000) -> dict[str, np.ndarray]:
    """Every batch of the file through ``feature_columns``, concatenated."""
    (file,) = open_files(find_files(path), FEATURES, KINDS)
    parts = [feature_columns(b, FEATURES, KINDS, lambda i, s=file.path: f"{s}: row {i + 1}")
             for b in batches(file, KINDS, batch_rows)]
    return {name: np.concatenate([p[name] for p in parts]) for name in FEATURES}


BAD_TYPES = {
    "a list of strings as a category": ("merchant", pa.array([["a", "b"], ["c"]], pa.list_(pa.string())),
                                        r"column 'merchant' is list<\w+: string>; the model reads it as text"),
    "a struct as a category": ("merchant", pa.array([{"id": 1}, {"id": 2}]),
                               r"column 'merchant' is struct<id: int64>; the model reads it as text"),
    "a dictionary of lists as a category": (
        "merchant", pa.DictionaryArray.from_arrays(pa.array([0, 0], pa.int32()),
                                                   pa.array([["a"]], pa.list_(pa.string()))),
        r"column 'merchant' is list<\w+: string>; the model reads it as text"),
    "binary that is not UTF-8 as a category": ("merchant", pa.array([b"\xff\xfe", b"ok"], pa.binary()),
                                               r"column 'merchant' is binary; the model reads it as text"),
    "a struct as a number": ("amount", pa.array([{"x": 1.0}, {"x": 2.0}]),
                             r"column 'amount' is struct<x: double>; the model reads it as a number"),
    "a list as a number": ("amount", pa.array([[1.0], [2.0]]),
                           r"column 'amount' is list<\w+: double>; the model reads it as a number"),
    "a date as a number": ("amount", pa.array([date(2026, 1, 1), None], pa.date32()),
                           r"column 'amount' is date32\[day\]; the model reads it as a number"),
}


@pytest.mark.parametrize("case", list(BAD_TYPES))
def test_a_column_of_a_type_the_model_cannot_read_is_one_data_error(case, tmp_path):
    name, values, message = BAD_TYPES[case]
    good = {"amount": pa.array([1.0, 2.0]), "merchant": pa.array(["a", "b"])}
    path = tmp_path / "in.parquet"
    try:
        pq.write_table(pa.table({**good, name: values}), path)
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid):  # Parquet cannot hold it: the IPC format can
        path = tmp_path / "in.arrow"
        with pa.ipc.new_file(path, pa.table({**good, name: values}).schema) as writer:
            writer.write_table(pa.table({**good, name: values}))
    with pytest.raises(DataError, match=rf"^{path}: row 1: {message}") as info:
        read_all(path)
    assert "\n" not in str(info.value)


def test_csv_categories_are_read_as_text(tmp_path):
    """``007`` stays ``007`` (inferred, it was 7), and ``A1`` after 200,000 rows of digits is a category,
    not "unreadable after row ..."; empty cells are missing; numbers are float64 as before."""
    n = 200_000  # past the first 1 MB block, where Arrow infers types
    merchant = ["007"] + [str(i % 97) for i in range(1, n)] + ["A1", ""]
    lines = ["amount,merchant"] + [f"{i % 13}.5,{m}" for i, m in enumerate(merchant)]
    path = tmp_path / "in.csv"
    path.write_text("\n".join(lines) + "\n")
    got = read_all(path, batch_rows=4096)
    assert got["merchant"][0] == "007" and got["merchant"][n] == "A1" and got["merchant"][n + 1] == ""
    assert got["merchant"].tolist()[1:4] == ["1", "2", "3"]
    assert got["amount"].dtype == np.float64 and got["amount"][1] == 1.5
