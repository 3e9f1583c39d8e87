"""Bounds of numeric config values, declared beside each schema field (``bounded(COUNT, 1024)``).

``factory.config.validate`` checks them before anything loads, naming the full key:
``data.batch_size: must be >= 1, got 0``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Union

from omegaconf import MISSING


@dataclass(frozen=True)
class Range:
    """Bounds of a number (of each item, for a list); ``special`` values outside them mean something.

    Example: ``Range(ge=0, special={-1: "no limit"})`` accepts 0, 1, ... and -1.
    """

    ge: Optional[float] = None
    gt: Optional[float] = None
    le: Optional[float] = None
    lt: Optional[float] = None
    special: Dict[Any, str] = field(default_factory=dict)

    def problem(self, value: float) -> Optional[str]:
        """Why ``value`` is out of range (``must be >= 1, got 0``), or ``None``."""
        if value in self.special:
            return None
        low = (self.ge is None or value >= self.ge) and (self.gt is None or value > self.gt)
        high = (self.le is None or value <= self.le) and (self.lt is None or value < self.lt)
        if low and high:
            return None
        also = "".join(f" or {v} ({meaning})" for v, meaning in self.special.items())
        return f"must be {self}{also}, got {value!r}"

    def __str__(self) -> str:
        """``>= 1``, or ``in [0, 1)`` when bounded on both sides."""
        low = ("[", self.ge) if self.ge is not None else ("(", self.gt)
        high = ("]", self.le) if self.le is not None else (")", self.lt)
        if low[1] is not None and high[1] is not None:
            return f"in {low[0]}{_number(low[1])}, {_number(high[1])}{high[0]}"
        if low[1] is not None:
            return f"{'>=' if low[0] == '[' else '>'} {_number(low[1])}"
        return f"{'<=' if high[0] == ']' else '<'} {_number(high[1])}"


def range_of(rng: Union[Range, Dict[type, Range], None], value: Any) -> Optional[Range]:
    """The range that applies to ``value`` (booleans and non-numbers have none)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(rng, dict):
        return rng.get(type(value))
    return rng


def _number(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() else f"{bound:g}"


def bounded(rng: Union[Range, Dict[type, Range]], default: Any = MISSING, default_factory: Any = None) -> Any:
    """A numeric field checked against ``rng`` (or a range per type: ``{int: ..., float: ...}``)."""
    if default_factory is not None:
        return field(default_factory=default_factory, metadata={"range": rng})
    return field(default=default, metadata={"range": rng})


# The ranges numeric knobs share.
COUNT = Range(ge=1)  # sizes, widths, counts of things
NON_NEGATIVE = Range(ge=0)
POSITIVE = Range(gt=0)  # rates, learning rates, weights
FRACTION = Range(ge=0, lt=1)  # dropout, split shares, momentum
SEED = Range(ge=0, le=2**32 - 1)  # what numpy and Lightning's seed_everything accept


def not_one_of(value: Any, allowed: tuple) -> str:
    """``'x' is not one of: a, b`` (a string that reads like another choice, ``'16'`` beside 16, is quoted)."""
    shown = ", ".join("null" if a is None else repr(a) if isinstance(a, str) and
                      any(str(b) == a for b in allowed if not isinstance(b, str)) else str(a) for a in allowed)
    return f"{value!r} is not one of: {shown}"


def check_argument(schema: type, name: str, value: Any, key: str, error: type[Exception] = ValueError) -> None:
    """Raise ``error`` (``key: must be ...``) unless ``value`` meets the choices or range of ``schema.name``.

    For a component built in Python, whose arguments no config validation saw: the same
    declaration, and the same message, as ``factory.config.validate`` gives a config's value.
    """
    declared = next(f for f in dataclasses.fields(schema) if f.name == name).metadata
    allowed = declared.get("choices")
    if allowed is not None and value not in allowed:
        raise error(f"{key}: {not_one_of(value, allowed)}")
    bounds = range_of(declared.get("range"), value)
    problem = bounds.problem(value) if bounds is not None else None
    if problem:
        raise error(f"{key}: {problem}")
