"""factory.formatting: the one way values are written for a reader, without pandas or numpy at import."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from factory.formatting import MISSING, count, format_value, number


@pytest.mark.parametrize(("value", "text"), [
    (np.float64(0.123456789), "0.1235"), (np.float32(0.5), "0.5"), (np.int64(4289), "4289"),
    (np.bool_(True), "True"), (False, "False"), (np.float64("nan"), MISSING), (None, MISSING),
    (pd.NaT, MISSING), (pd.Timestamp("2026-12-07T01:36:52.123+00:00"), "2026-12-07 01:36:52"),
    ("2026-12-07T01:59:57.5Z", "2026-12-07 01:59:57"), ([8, 4], "[8, 4]"),
])
def test_numpy_and_pandas_values_read_as_python_ones(value, text):
    assert format_value(value) == text


def test_missing_marker_can_be_replaced():
    assert format_value(float("nan"), missing="(unset)") == "(unset)"


@pytest.mark.parametrize(("value", "text"), [
    (np.int64(4289), "4,289"), (np.float64(12345.0), "12,345"), (1234.0, "1,234"), (123.4, "123.4"),
    (np.float64("nan"), MISSING), (np.bool_(False), "False"),
])
def test_number_writes_counts_whole_with_separators(value, text):
    assert number(value) == text


def test_count_says_the_plural():
    assert [count(n, "report run") for n in (0, 1, 2)] == ["0 report runs", "1 report run", "2 report runs"]


def test_importing_it_imports_neither_pandas_nor_numpy():
    code = "import sys, factory.formatting; print(sorted({'pandas', 'numpy'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
