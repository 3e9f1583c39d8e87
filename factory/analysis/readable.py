"""Values and tables as a reader of a report wants them: numbers rounded to what matters,
no empty cells, counts with the right plural. Used by ``factory.compare`` and its figures."""
from __future__ import annotations

import numbers
import re

import numpy as np
import pandas as pd

MISSING = "—"      # a table cell without a value
UNSET = "(unset)"  # a hyperparameter a run does not set, on a plot axis
_ISO_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?([+-]\d{2}:\d{2}|Z)?$")


def format_value(value, missing: str = MISSING) -> str:
    """A value as a reader wants it: numbers to 4 significant digits (integers whole), times
    to the second, ``missing`` for None/NaN/NaT, anything else as text.

    Example:
        >>> format_value(0.30000000000000004), format_value(None)
        ('0.3', '—')
    """
    if value is None or value is pd.NaT:
        return missing
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        return missing if np.isnan(value) else f"{float(value):.4g}"
    if isinstance(value, str) and _ISO_TIME.match(value):  # run.json / sweep.json times
        value = pd.Timestamp(value)
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def readable(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with every cell formatted by ``format_value`` (no empty cells, no long floats)."""
    return frame.astype(object).apply(lambda column: column.map(format_value))


def count(n: int, noun: str) -> str:
    """``1 run``, ``2 runs``, ``0 trials``."""
    return f"{n} {noun}" + ("" if n == 1 else "s")
