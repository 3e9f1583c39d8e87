"""What the monitor job keeps of each batch for fairness without labels, and how it names the versions seen."""
from __future__ import annotations

import pyarrow as pa

from factory.monitoring.job import _fairness_columns, _versions
from factory.monitoring.summary import version_name


def _batch(**columns) -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict(columns)


def test_fairness_without_labels_keeps_two_columns_the_group_dictionary_encoded():
    batch = _batch(request_id=["a", "b", "c"], amount=[1.0, 2.0, 3.0], prediction=["1", "0", "1"],
                   score=[0.9, 0.1, 0.8], region=["north", "south", "north"])
    kept = _fairness_columns(batch, "region", "is_fraud")  # no target column in this window
    assert kept.schema.names == ["prediction", "region"]
    assert pa.types.is_dictionary(kept.schema.field("region").type)
    assert kept.column(1).dictionary_decode().to_pylist() == ["north", "south", "north"]
    with_target = _fairness_columns(batch.append_column("is_fraud", pa.array([1, 0, 0])), "region", "is_fraud")
    assert with_target.schema.names == ["prediction", "region", "is_fraud"]


def test_versions_seen_are_numbers_for_the_log_and_for_scored_files():
    assert _versions(_batch(version=[1, 1, 2]), "fraud") == {"1": 2, "2": 1}
    assert _versions(_batch(model_version=["fraud@1", "fraud@1", "other@3"]), "fraud") == {"1": 2, "other@3": 1}
    assert _versions(_batch(amount=[1.0]), "fraud") == {}
    assert [version_name(v) for v in ("1", "other@3")] == ["v1", "other@3"]
