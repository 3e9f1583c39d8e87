"""Failing rows set aside with their rule and value; the share checked against the limit."""
from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from factory.data.curation.columns import Failure
from factory.data.curation.quarantine import COLUMNS, by_rule, check_share, quarantine_table, split, write
from factory.errors import DataError

TABLE = pa.table({"amount": [5.0, 20000.0, -1.0], "email": ["a@x.io", "b@x.io", "c@x.io"]})
RANGE = "amount: in_range(0, 10000)"


def failures() -> list[Failure]:
    return [Failure(1, RANGE, ("amount",), (20000.0,)), Failure(2, RANGE, ("amount",), (-1.0,)),
            Failure(2, "email: isin(['a@x.io'])", ("email",), ("c@x.io",))]


def test_split_keeps_the_passing_rows_in_order():
    kept, bad = split(TABLE, failures())
    assert kept.to_pydict() == {"amount": [5.0], "email": ["a@x.io"]}
    assert bad.tolist() == [1, 2]
    assert split(TABLE, [])[0] is TABLE


def test_one_row_per_broken_rule_with_the_row_columns():
    held = quarantine_table(TABLE, failures())
    assert held.column_names == [*COLUMNS, "amount", "email"]
    assert held.column("_row").to_pylist() == [1, 2, 2]
    assert held.column("_rule").to_pylist() == [RANGE, RANGE, "email: isin(['a@x.io'])"]
    assert held.column("_column").to_pylist() == ["amount", "amount", "email"]
    assert held.column("_value").to_pylist() == ["20000.0", "-1.0", "c@x.io"]
    assert held.column("amount").to_pylist() == [20000.0, -1.0, -1.0]
    assert by_rule(failures()) == {RANGE: 2, "email: isin(['a@x.io'])": 1}


def test_no_failures_is_an_empty_table_with_the_columns():
    held = quarantine_table(TABLE, [])
    assert held.num_rows == 0 and held.column_names == [*COLUMNS, "amount", "email"]


def test_a_unique_key_names_its_columns_and_values():
    held = quarantine_table(TABLE, [Failure(2, "unique(amount, email)", ("amount", "email"), (-1.0, None))])
    assert held.column("_column").to_pylist() == ["amount, email"]
    assert held.column("_value").to_pylist() == ["-1.0, null"]


def test_pii_columns_are_hashed_or_dropped_in_the_quarantine():
    from factory.data.curation import pii

    key = b"k" * 32
    held = quarantine_table(TABLE, failures(), {"email": "hash"}, key)
    assert held.column("_value").to_pylist()[2] == pii.hash_value("c@x.io", key)
    assert held.column("email").to_pylist() == [pii.hash_value(v, key) for v in ["b@x.io", "c@x.io", "c@x.io"]]
    dropped = quarantine_table(TABLE, failures(), {"email": "drop"}, None)
    assert "email" not in dropped.column_names and dropped.column("_value").to_pylist()[2] is None
    for table in (held, dropped):  # the rule names the config's allowed values; the data's are gone
        assert "x.io" not in str(table.drop_columns(["_rule"]).to_pydict())


def test_a_source_column_named_like_ours_is_kept_renamed():
    held = quarantine_table(pa.table({"_rule": ["a", "b", "c"]}), [Failure(0, "r", ("_rule",), ("a",))])
    assert held.column_names == [*COLUMNS, "_rule_source"]


def test_share_above_the_limit_is_one_line_naming_the_top_rules(tmp_path):
    report = {"rows_in": 3, "quarantined": 2, "by_rule": by_rule(failures())}
    check_share(report, 0.7, tmp_path / "q.parquet")
    with pytest.raises(DataError) as e:
        check_share(report, 0.05, tmp_path / "q.parquet")
    assert str(e.value) == (f"data.curation.max_quarantine: 66.7% of 3 rows quarantined (limit 5.0%): {RANGE} 2, "
                            f"email: isin(['a@x.io']) 1; rows in {tmp_path / 'q.parquet'}")
    assert "\n" not in str(e.value)


def test_write_is_parquet(tmp_path):
    held = quarantine_table(TABLE, failures())
    path = write(held, tmp_path / "quarantine" / "abc.parquet")
    assert pq.read_table(path).equals(held)
    assert [p.name for p in path.parent.iterdir()] == ["abc.parquet"]  # no temp file left
