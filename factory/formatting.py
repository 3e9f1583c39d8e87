"""Values as a reader of a table, a summary or a report index wants them: numbers rounded to
what matters, ``—`` for a missing value, counts with the right plural.

The one copy every layer uses (reports' index, the analysis tables, the run report's summary),
hence at the bottom layer and free of pandas and numpy: numpy's scalars are ``numbers``, and
pandas' ``Timestamp`` and ``NaT`` are ``datetime``s.
"""
from __future__ import annotations

import math
import numbers
import re
from datetime import datetime

MISSING = "—"  # a table cell without a value (None, NaN, NaT)
_ISO_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?([+-]\d{2}:\d{2}|Z)?$")


def format_value(value, missing: str = MISSING) -> str:
    """A value as a reader wants it: numbers to 4 significant digits (integers whole), times
    to the second, ``missing`` for None/NaN/NaT, anything else as text.

    Example:
        >>> format_value(0.30000000000000004), format_value(None)
        ('0.3', '—')
    """
    if value is None:
        return missing
    if isinstance(value, bool):  # numpy's bool_ is no number: str() below gives the same text
        return str(value)
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        return missing if math.isnan(value) else f"{float(value):.4g}"
    if isinstance(value, str) and _ISO_TIME.match(value):  # run.json / sweep.json times
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime):
        return missing if value != value else value.strftime("%Y-%m-%d %H:%M:%S")  # NaT != NaT
    return str(value)


def number(value, digits: int = 4) -> str:
    """``value`` as ``format_value`` shows it, with counts and large values whole and thousands
    separated (``4,289``, ``123,456,789``, not ``1.235e+08``); ``digits`` significant digits."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool) and not math.isnan(value) and (
            isinstance(value, numbers.Integral) or abs(value) >= 10 ** digits
            or float(value).is_integer() and abs(value) >= 10 ** (digits - 1)):
        return f"{round(value):,}"
    return format_value(value)


def count(n: int, noun: str) -> str:
    """``1 run``, ``2 runs``, ``0 trials``."""
    return f"{n} {noun}" + ("" if n == 1 else "s")
