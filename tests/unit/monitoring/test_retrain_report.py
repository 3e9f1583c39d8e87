"""A retrain record in words and tables: the CLI's summary and the report's tables."""
from __future__ import annotations

from factory.monitoring.gate import decide
from factory.monitoring.retrain_report import comparison, fairness_table, steps_table, summary


def _record(champion=0.40, challenger=0.45, margin=0.01) -> dict:
    decision = decide(champion, challenger, mode="max", margin=margin)
    decision.update(challenger="fraud@2", champion="fraud@1" if champion is not None else None, stage="production")
    score = {"status": "completed", "metric": {"name": "pr_auc", "mode": "max"}, "champion": champion,
             "challenger": challenger, "holdout": {"rows": 3000}}
    return {"pipeline": "fraud", "path": "outputs/pipeline/fraud/x/pipeline.json", "decision": decision,
            "champion": {"registered_metric": {"name": "val/pr_auc", "val": 0.3, "test": None}},
            "steps": {"score": score, "train": {"status": "completed", "metrics": {"val": {"val/pr_auc": 0.5}}}}}


def test_summary_says_what_was_done_and_why():
    promoted = summary(_record())
    assert promoted.startswith("retrain fraud: promoted fraud@2 to production (champion was fraud@1): "
                               "pr_auc 0.4500 vs champion 0.4000; pr_auc: challenger 0.45 beats champion 0.4")
    assert promoted.endswith("\nrecord: outputs/pipeline/fraud/x/pipeline.json")
    kept = summary(_record(margin=0.1))
    assert kept.startswith("retrain fraud: kept fraud@1 at production; fraud@2 registered without a stage")
    assert "less than the margin 0.1" in kept


def test_comparison_puts_the_holdout_metric_first_and_marks_what_is_missing():
    table = comparison(_record())
    assert list(table.columns) == ["champion", "challenger"]
    assert table.iloc[0].tolist() == ["0.4", "0.45"] and table.index[0] == "pr_auc on the holdout (3000 rows)"
    assert table.loc["val/pr_auc on its own data"].tolist() == ["0.3", "0.5"]
    assert table.loc["test/pr_auc on its own data"].tolist() == ["—", "—"]


def test_a_job_that_stopped_early_has_no_comparison_and_its_steps_say_why():
    record = {"pipeline": "fraud", "decision": None, "champion": None,
              "steps": {"config": {"status": "completed", "train_overrides": ["experiment=fraud_detection"]},
                        "check_data": {"status": "failed", "error": "DataError: no column 'is_fraud'"}}}
    assert comparison(record) is None and fairness_table(record) is None
    steps = steps_table(record)
    assert steps.loc["check_data", "details"] == "DataError: no column 'is_fraud'"
    assert "experiment=fraud_detection" in steps.loc["config", "details"]
