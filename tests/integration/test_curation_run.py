"""Declared rules on the fraud data through scripts/train.py: run.json counts, the quarantine file,
the one-line failure past max_quarantine, and data.snapshot replaying the run's exact table."""
from __future__ import annotations

import pyarrow.parquet as pq

from tests.integration.helpers import manifest, run_dirs, run_script, trained_run

TINY = ["experiment=fraud_detection", "logger=csv", "baseline=null", "trainer.max_epochs=1", "data.batch_size=128",
        "data.source.rows=400"]
RULES = ["+data.curation.columns.amount={max:300}", "+data.curation.columns.channel={allowed:[online,chip,contactless]}"]


def test_rules_quarantine_rows_and_a_snapshot_replays_the_run(tmp_path):
    run_dir = trained_run(tmp_path, [*TINY, *RULES, "data.curation.max_quarantine=0.5"])
    data = manifest(run_dir)["data"]
    report = data["curation"]
    held = pq.read_table(data["quarantine"])
    assert data["quarantine"].startswith(str(tmp_path / "data" / "quarantine"))
    assert set(report["by_rule"]) == {"amount: less_than_or_equal_to(300)",
                                      "channel: isin(['online', 'chip', 'contactless'])"}
    assert report["quarantined"] == len(set(held.column("_row").to_pylist())) > 0
    assert sum(report["by_rule"].values()) == held.num_rows
    assert sum(data["rows"].values()) == report["rows_out"] == 400 - report["quarantined"] - report["duplicates"]
    assert (tmp_path / "data" / "snapshots" / data["snapshot"] / "data.parquet").is_file()
    import factory
    from factory.analysis.run_summary import quarantine_counts

    shown = quarantine_counts(factory.load_run(str(run_dir)))  # the run report's table
    assert shown["rows"].to_dict() == report["by_rule"]

    # the source changes (more rows, no rules); the snapshot still gives the run's exact data
    replay_dir = trained_run(tmp_path, [*TINY, "data.source.rows=500", f"data.snapshot={data['snapshot']}"])
    replay = manifest(replay_dir)["data"]
    assert (replay["fingerprint"], replay["rows"], replay["snapshot"]) == (data["fingerprint"], data["rows"],
                                                                           data["snapshot"])
    assert replay["curation"] == report and replay["quarantine"] == data["quarantine"]


def test_too_many_quarantined_rows_fail_the_run_in_one_line(tmp_path):
    done = run_script(tmp_path, "train.py", *TINY, *RULES)
    assert done.returncode == 2, done.stderr
    (line,) = [ln for ln in done.stderr.splitlines() if ln.startswith("error:")]
    assert line.startswith("error: data.curation.max_quarantine: ")
    assert "(limit 5.0%): " in line and "amount: less_than_or_equal_to(300) " in line
    quarantine = line.rsplit("rows in ", 1)[1]
    assert pq.read_table(quarantine).num_rows > 0
    (run_dir,) = run_dirs(tmp_path)
    assert manifest(run_dir)["status"] == "failed"
