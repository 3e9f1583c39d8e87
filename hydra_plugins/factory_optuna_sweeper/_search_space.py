"""Hydra's sweep syntax (``interval``, ``tag(log, ...)``, ``choice``, ``range``) as Optuna
distributions, and trial parameters back as override strings."""
from __future__ import annotations

import math
from typing import Any, Iterable

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Glob, IntervalSweep, Override, RangeSweep, Transformer
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from factory.errors import ConfigError


def split(overrides: Iterable[str]) -> tuple[dict[str, BaseDistribution], dict[str, str]]:
    """(search space, fixed overrides) from override strings; a later one for a key wins.

    Raises:
        ConfigError: an override Optuna cannot search (named with its key).
    """
    space: dict[str, BaseDistribution] = {}
    fixed: dict[str, str] = {}
    for override in OverridesParser.create().parse_overrides(list(overrides)):
        key = override.get_key_element()
        space.pop(key, None)
        fixed.pop(key, None)
        if override.is_sweep_override():
            try:
                space[key] = distribution(override)
            except ValueError as e:  # Optuna's own checks: empty range, log of zero, ...
                raise ConfigError(f"{key}: {override.input_line!r}: {e}") from e
        else:
            fixed[key] = override.input_line
    return space, fixed


def distribution(override: Override) -> BaseDistribution:
    """The Optuna distribution of one sweep override."""
    key, value = override.get_key_element(), override.value()
    if isinstance(value, Glob):  # config group options by pattern: list them instead
        raise ConfigError(f"{key}: {override.input_line!r} is not a sweep Optuna can search "
                          f"(list the options: choice(a, b))")
    if override.is_choice_sweep() or (override.is_range_sweep() and value.shuffle):
        choices = list(override.sweep_iterator(transformer=Transformer.encode))
        return CategoricalDistribution(choices)
    if override.is_range_sweep():
        assert isinstance(value, RangeSweep)
        start, stop, step = value.start, value.stop, value.step
        if step is None or step <= 0 or stop <= start:
            raise ConfigError(f"{key}: {override.input_line!r}: Optuna searches increasing ranges only "
                              "(start < stop, step > 0)")
        # range(a, b, s) excludes b, as Python's range: its last value is a + k*s < b
        last = start + math.ceil((stop - start) / step - 1) * step
        if any(isinstance(v, float) for v in (start, stop, step)):
            return FloatDistribution(float(start), float(last), step=float(step))
        return IntDistribution(int(start), int(last), step=int(step))
    if override.is_interval_sweep():
        assert isinstance(value, IntervalSweep)
        log = "log" in value.tags
        if isinstance(value.start, int) and isinstance(value.end, int):  # int(interval(a, b))
            return IntDistribution(value.start, value.end, log=log)
        return FloatDistribution(float(value.start), float(value.end), log=log)
    raise ConfigError(f"{key}: {override.input_line!r} is not a sweep Optuna can search "
                      f"(use interval(a, b), tag(log, interval(a, b)), choice(...) or range(a, b, step))")


def as_override(key: str, value: Any) -> str:
    """``key=value`` in override syntax for a sampled parameter."""
    if value is None:
        text = "null"
    elif isinstance(value, bool):
        text = str(value).lower()
    elif isinstance(value, (int, float)):
        text = repr(value)
    else:
        text = str(value)  # strings and encoded lists/dicts, as the user wrote them
    return f"{key}={text}"
