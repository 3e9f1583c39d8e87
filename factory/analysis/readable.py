"""Tables as a reader of a report wants them: every cell a value as ``factory.formatting``
writes it (numbers rounded to what matters, no empty cells). Used by ``factory.compare`` and its figures."""
from __future__ import annotations

import pandas as pd

from factory.formatting import MISSING, count, format_value  # noqa: F401  (the one copy; re-exported)

UNSET = "(unset)"  # a hyperparameter a run does not set, on a plot axis


def readable(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with every cell formatted by ``format_value`` (no empty cells, no long floats)."""
    return frame.astype(object).apply(lambda column: column.map(format_value))

