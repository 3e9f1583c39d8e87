"""What the monitor job keeps of each batch for fairness (counts per combination), and how it names the versions seen."""
from __future__ import annotations

import pyarrow as pa

from factory.monitoring.job import _versions
from factory.monitoring.summary import version_name


def _batch(**columns) -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict(columns)


def test_fairness_holds_counts_per_combination_over_every_row():
    from factory.monitoring.fairness_counts import FairnessCounts

    labels = pa.table({"request_id": ["a", "c"], "row": pa.array([0, 0], pa.int32()), "label": [1, 0]})
    counts = FairnessCounts("region", labels)
    for _ in range(1000):  # 3,000 rows: the counts do not grow with them
        counts.update(_batch(request_id=["a", "b", "c"], row=[0, 0, 0], prediction=["1", "0", "1"],
                             region=pa.array(["north", "south", "north"]).dictionary_encode()))
    assert counts.counts == {("north", "1", 1): 1000, ("south", "0", None): 1000, ("north", "1", 0): 1000}
    figures = counts.figures(min_group_size=1)
    assert figures["groups"]["south"] == {**figures["groups"]["south"], "rows": 1000, "selection_rate": 0.0,
                                          "labelled_rows": 0, "tpr": None}
    assert figures["groups"]["north"]["tpr"] == 1.0 and figures["groups"]["north"]["fpr"] == 1.0
    assert figures["demographic_parity_difference"] == 1.0 and figures["labelled_rows"] == 2000
    without = FairnessCounts("region")  # no labels, no target: selection only
    without.update(_batch(prediction=[1, 0], region=["x", "y"]))
    assert without.figures(min_group_size=1)["equalized_odds_difference"] is None


def test_a_sensitive_column_only_in_the_labels_counts_the_labelled_rows():
    from factory.monitoring.fairness_counts import FairnessCounts

    labels = pa.table({"request_id": ["a", "b"], "row": pa.array([0, 1], pa.int32()), "label": [1, 0],
                       "region": ["north", "south"]})
    counts = FairnessCounts("region", labels)
    counts.update(_batch(request_id=["a", "b", "c"], row=[0, 1, 0], prediction=[1, 0, 1]))
    assert counts.counts == {("north", 1, 1): 1, ("south", 0, 0): 1}


def test_versions_seen_are_numbers_for_the_log_and_for_scored_files():
    assert _versions(_batch(version=[1, 1, 2]), "fraud") == {"1": 2, "2": 1}
    assert _versions(_batch(model_version=["fraud@1", "fraud@1", "other@3"]), "fraud") == {"1": 2, "other@3": 1}
    assert _versions(_batch(amount=[1.0]), "fraud") == {}
    assert [version_name(v) for v in ("1", "other@3")] == ["v1", "other@3"]
