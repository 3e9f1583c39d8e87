"""Declared column rules (``data.curation.columns``) checked with pandera, every failure at once.

A rule set is plain config::

    columns:
      amount: {dtype: float64, min: 0, max: 10000}
      channel: {allowed: [online, chip, contactless, swipe]}
      merchant_id: {regex: '^M\\d{4}$', nullable: false}
      card_number: {pii: hash}
    unique: [merchant_id, amount]   # together a key: later duplicates of it are quarantined

``validate`` returns one ``Failure`` per (row, rule): the rows a later step quarantines.
A failure of a whole column (a declared column the table lacks) is a ``DataError`` instead:
no row can be kept aside for it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import pyarrow as pa

from factory.errors import ConfigError, DataError

#: The keys one column's rule may hold (``factory.config.schemas.ColumnRuleConf``).
RULE_KEYS = ("dtype", "nullable", "min", "max", "allowed", "regex", "unique", "pii")
PII_ACTIONS = ("hash", "drop")
KEY = "data.curation.columns"


@dataclass(frozen=True)
class Failure:
    """One rule one row broke: ``rule`` reads ``amount: in_range(0, 10000)``.

    ``values`` are the row's raw values of ``columns`` (one column, or a unique key's);
    they stay in memory: ``factory.data.curation.quarantine`` hashes a pii column's.
    """

    row: int
    rule: str
    columns: tuple[str, ...]
    values: tuple


def check_rules(columns: dict, unique: list[str] | tuple[str, ...] = ()) -> None:
    """Raise ``ConfigError`` naming the key of the first rule that cannot be a column rule.

    Hydra configs are checked by their schema already; this catches a notebook's dict.
    """
    for name, rule in columns.items():
        if not isinstance(rule, dict):
            raise ConfigError(f"{KEY}.{name}: expected a mapping of rules ({', '.join(RULE_KEYS)}), got {rule!r}")
        unknown = [k for k in rule if k not in RULE_KEYS]
        if unknown:
            raise ConfigError(f"{KEY}.{name}.{unknown[0]}: unknown rule; expected one of {', '.join(RULE_KEYS)}")
        if rule.get("pii") not in (None, *PII_ACTIONS):
            raise ConfigError(f"{KEY}.{name}.pii: expected hash or drop, got {rule['pii']!r}")
        low, high = rule.get("min"), rule.get("max")
        if low is not None and high is not None and low > high:
            raise ConfigError(f"{KEY}.{name}: min {low} is above max {high}")
    if isinstance(unique, str):
        raise ConfigError(f"data.curation.unique: expected a list of columns, got {unique!r}")


def pii_columns(columns: dict) -> dict[str, str]:
    """Column -> ``hash`` or ``drop`` for each column tagged ``pii``."""
    return {name: rule["pii"] for name, rule in columns.items() if rule.get("pii")}


def build_schema(columns: dict, unique: list[str] | tuple[str, ...] = ()):
    """The pandera ``DataFrameSchema`` of ``columns``' rules and the ``unique`` key.

    Nulls pass unless ``nullable: false`` (the preprocessor imputes missing features, as
    without a declaration); ``dtype`` coerces, so a value that cannot be read as that type
    fails its row (``coerce_dtype('float64')``) rather than the column. Duplicates fail
    after their first occurrence, so the first row of a key is kept.
    """
    import pandera.pandas as pa_

    check_rules(columns, unique)
    schema_columns = {}
    for name, rule in columns.items():
        checks = []
        low, high = rule.get("min"), rule.get("max")
        if low is not None and high is not None:
            checks.append(pa_.Check.in_range(low, high))
        elif low is not None:
            checks.append(pa_.Check.ge(low))
        elif high is not None:
            checks.append(pa_.Check.le(high))
        if rule.get("allowed") is not None:
            checks.append(pa_.Check.isin(list(rule["allowed"])))
        if rule.get("regex") is not None:
            checks.append(pa_.Check.str_matches(rule["regex"]))
        nullable = rule.get("nullable", True) is not False
        schema_columns[name] = pa_.Column(
            _pandas_dtype(rule.get("dtype"), nullable), checks, nullable=nullable,
            unique=bool(rule.get("unique")), report_duplicates="exclude_first",
            coerce=rule.get("dtype") is not None, required=True)
    return pa_.DataFrameSchema(schema_columns, unique=list(unique) or None, report_duplicates="exclude_first",
                               strict=False)


def validate(table: pa.Table, columns: dict, unique: list[str] | tuple[str, ...] = (),
             source: str = "source") -> list[Failure]:
    """Check ``table`` against the declared rules; every failing (row, rule), in row order.

    Args:
        table: the source's table; its row positions are the failures' ``row``.
        columns: ``data.curation.columns`` (column -> rule mapping).
        unique: ``data.curation.unique``: columns that together must be unique.
        source: the source's name, for messages.

    Returns:
        One ``Failure`` per row and broken rule; empty when every row passes.

    Raises:
        DataError: a declared column (or a unique key's) is not in the table.
        ConfigError: a rule is not one of ``RULE_KEYS`` or cannot be checked.
    """
    if not columns and not unique:
        return []
    import pandera.pandas as pa_

    needed = list(dict.fromkeys([*columns, *unique]))
    missing = [c for c in needed if c not in table.column_names]
    if missing:
        where = f"{KEY}.{missing[0]}" if missing[0] in columns else "data.curation.unique"
        raise DataError(f"{where}: source '{source}' has no column {missing[0]!r}; "
                        f"table columns: {', '.join(table.column_names)}")
    frame = table.select(needed).to_pandas()
    frame.index = range(len(frame))  # failure cases' index is then the source row
    try:
        build_schema(columns, unique).validate(frame, lazy=True)
    except pa_.errors.SchemaErrors as e:
        return _failures(e.failure_cases, list(unique), source)
    except (pa_.errors.SchemaError, pa_.errors.SchemaDefinitionError, TypeError, ValueError) as e:
        raise ConfigError(f"{KEY}: {' '.join(str(e).split())[:300]}") from e
    return []


def _failures(cases, unique: list[str], source: str) -> list[Failure]:
    """Pandera's failure cases -> one ``Failure`` per (row, rule); a whole-column failure raises."""
    whole = cases[cases["index"].isna()]
    if len(whole):
        first = whole.iloc[0]
        raise DataError(f"{KEY}.{first['column']}: source '{source}' fails {first['check']} for the whole column "
                        f"(got {first['failure_case']})")
    coerced = {(int(r["index"]), r["column"]) for _, r in cases.iterrows() if str(r["check"]).startswith("coerce_")}
    grouped: dict[tuple[int, str], dict] = {}
    for _, case in cases.iterrows():
        row, column, check = int(case["index"]), case["column"], str(case["check"])
        if check.startswith("dtype(") and (row, column) in coerced:
            continue  # the same value's coercion failure says it already
        if check == "multiple_fields_uniqueness":
            rule, key_columns = f"unique({', '.join(unique)})", tuple(unique)
        else:
            rule = f"{column}: {'unique' if check == 'field_uniqueness' else check}"
            key_columns = (column,)
        entry = grouped.setdefault((row, rule), {"columns": key_columns, "values": {}})
        entry["values"][column] = _plain(case["failure_case"])
    failures = [Failure(row, rule, e["columns"], tuple(e["values"].get(c) for c in e["columns"]))
                for (row, rule), e in grouped.items()]
    return sorted(failures, key=lambda f: (f.row, f.rule))


def _pandas_dtype(dtype: str | None, nullable: bool) -> str | None:
    """A declared dtype as pandera reads it; a nullable integer is pandas' ``Int64`` (NaN-free)."""
    if dtype is None:
        return None
    if nullable and str(dtype).startswith(("int", "uint")):
        return str(dtype).capitalize().replace("Uint", "UInt")
    return str(dtype)


def _plain(value):
    """A failure case as a plain Python value (numpy scalars unwrapped; NaN/NA as None)."""
    if value is None:
        return None
    if hasattr(value, "item"):
        value = value.item()
    try:
        if value != value or (isinstance(value, float) and math.isnan(value)):
            return None
    except (TypeError, ValueError):  # pandas.NA compares as NA
        return None
    return value
