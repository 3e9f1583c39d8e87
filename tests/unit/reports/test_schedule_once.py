"""One tick, one run: whether a report is due is decided again under its lock."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from factory.reports import schedule
from factory.reports.schedule import Scheduled

T0 = datetime(2026, 11, 24, 6, 0, 0, tzinfo=timezone.utc)


def test_a_report_that_ran_since_it_was_found_due_is_not_run_again(tmp_path: Path):
    report = Scheduled("daily", "0 6 * * *")
    [due] = schedule.due_reports([report], tmp_path, T0 + timedelta(seconds=2))
    # Before this process takes the lock, another one (the same crontab tick) runs it to the end.
    assert schedule.run_one(report, tmp_path, lambda name: True, T0) is True
    assert schedule.run_one(due, tmp_path, lambda name: pytest.fail("ran twice this tick"),
                            T0 + timedelta(seconds=2)) is None
    assert schedule.load_state(tmp_path)["daily"] == {"last_run": T0.isoformat(), "status": "completed"}


def test_the_next_tick_still_runs(tmp_path: Path):
    report, ran = Scheduled("daily", "0 6 * * *"), []
    schedule.run_one(report, tmp_path, lambda name: True, T0)
    assert schedule.run_one(report, tmp_path, lambda name: ran.append(name) or True, T0 + timedelta(days=1))
    assert ran == ["daily"]
