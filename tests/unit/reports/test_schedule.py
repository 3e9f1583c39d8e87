"""Cron schedules with an injected clock: due ticks, state, locks, failures, crontab lines."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from factory.reports import schedule
from factory.reports.spec import cron_error
from factory.reports.schedule import Scheduled

T0 = datetime(2026, 11, 24, 6, 0, 0, tzinfo=timezone.utc)  # a Tuesday, 06:00


class Clock:
    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.mark.parametrize("expression,now,last,due", [
    ("0 6 * * *", T0, None, True),                                 # tick exactly now, never run
    ("0 6 * * *", T0 + timedelta(seconds=59), None, True),         # within the minute
    ("0 6 * * *", T0 + timedelta(minutes=5), None, False),         # missed before the first run: not replayed
    ("0 6 * * *", T0 + timedelta(hours=3), T0 - timedelta(days=1), True),  # missed since the last run
    ("0 6 * * *", T0 + timedelta(hours=3), T0, False),              # already ran for this tick
    ("*/15 * * * *", T0 + timedelta(minutes=15), T0, True),
    ("0 6 * * 1", T0, None, False),                                # Mondays only (cron: 1 = Monday)
    ("0 6 * * 2", T0, None, True),
])
def test_is_due(expression, now, last, due):
    assert schedule.is_due(expression, now, last) is due


@pytest.mark.parametrize("expression", ["* * *", "61 * * * *", "every day", "0 6 * * 9"])
def test_bad_cron_expressions_are_named(expression):
    assert expression in cron_error(expression)


def test_good_cron_expression():
    assert cron_error("0 6 * * 1-5") is None


def test_run_due_runs_each_due_report_once_and_records_state(tmp_path: Path):
    clock, ran = Clock(T0), []
    reports = [Scheduled("daily", "0 6 * * *"), Scheduled("hourly", "0 * * * *"), Scheduled("later", "30 6 * * *")]
    results = schedule.run_due(reports, tmp_path, lambda name: ran.append(name) or True, clock)
    assert results == {"daily": True, "hourly": True}
    assert ran == ["daily", "hourly"]
    state = json.loads((tmp_path / schedule.STATE).read_text())
    assert state["daily"] == {"last_run": T0.isoformat(), "status": "completed"}
    # Same minute again: nothing is due twice.
    assert schedule.run_due(reports, tmp_path, lambda name: ran.append(name) or True, clock) == {}
    clock.now = T0 + timedelta(minutes=30)
    assert list(schedule.run_due(reports, tmp_path, lambda name: True, clock)) == ["later"]


def test_a_failing_report_does_not_stop_the_others(tmp_path: Path):
    def runner(name: str) -> bool:
        if name == "crashes":
            raise RuntimeError("kernel exploded")
        return name != "fails"

    reports = [Scheduled(n, "0 6 * * *") for n in ("crashes", "fails", "works")]
    assert schedule.run_due(reports, tmp_path, runner, Clock(T0)) == {"crashes": False, "fails": False, "works": True}
    state = json.loads((tmp_path / schedule.STATE).read_text())
    assert state["crashes"]["status"] == "failed" and state["works"]["status"] == "completed"


def test_a_report_never_runs_twice_at_once(tmp_path: Path):
    reports = [Scheduled("slow", "0 6 * * *")]
    with schedule.report_lock(tmp_path, "slow") as held:  # another process is running it
        assert held
        assert schedule.run_due(reports, tmp_path, lambda name: pytest.fail("ran twice"), Clock(T0)) == {"slow": None}


def test_serve_runs_on_ticks_with_an_injected_clock(tmp_path: Path):
    clock, ran = Clock(T0 - timedelta(minutes=1)), []
    reports = [Scheduled("quarter", "*/15 * * * *")]
    stop_at = T0 + timedelta(minutes=31)
    schedule.serve(reports, tmp_path, lambda name: ran.append(clock.now) or True, clock=clock,
                   sleep=clock.sleep, stop=lambda: clock.now >= stop_at, workers=0)
    minutes = [(t - T0).total_seconds() // 60 for t in ran]
    assert minutes == [0, 15, 30]


def test_crontab_lines(tmp_path: Path):
    lines = schedule.crontab_lines([Scheduled("run_report", "0 6 * * 1-5")], tmp_path)
    assert lines[0].startswith(f"0 6 * * 1-5 cd {tmp_path} && ")
    assert lines[0].endswith(f"scripts/schedule.py --once --report run_report --expected-schedule '0 6 * * 1-5' >> "
                             f"{tmp_path}/reports/run_report/schedule.log 2>&1  # factory report run_report")


def _report_dir(tmp_path: Path) -> Path:
    """Four reports: one good, a bad cron line, a required parameter unset, one without a schedule."""
    d = tmp_path / "report"
    d.mkdir()
    (d / "good.yaml").write_text("name: good\nnotebook: notebooks/compare_runs.ipynb\nschedule: '0 6 * * *'\n")
    (d / "badcron.yaml").write_text("name: badcron\nnotebook: notebooks/compare_runs.ipynb\nschedule: every day\n")
    (d / "needsrun.yaml").write_text("name: needsrun\nnotebook: notebooks/run_report.ipynb\n"
                                     "parameters: {run_dir: null}\nrequired: [run_dir]\nschedule: '0 7 * * *'\n")
    (d / "manual.yaml").write_text("name: manual\nnotebook: notebooks/compare_runs.ipynb\n")
    return d


def test_each_bad_report_is_named_with_its_file_and_skipped(tmp_path: Path):
    found, bad = schedule.scheduled_reports(report_dir=_report_dir(tmp_path))
    assert found == [Scheduled("good", "0 6 * * *")]
    assert [b.name for b in bad] == ["badcron", "needsrun"]
    assert "badcron.yaml" in str(bad[0]) and "'every day'" in str(bad[0]) and "\n" not in str(bad[0])
    assert "needsrun.yaml" in str(bad[1]) and "report.parameters.run_dir" in str(bad[1])


def test_crontab_lists_the_good_reports_and_exits_2_naming_the_bad(tmp_path: Path, monkeypatch, capsys):
    import importlib.util

    import factory.config
    from factory.rundir.provenance import CODE_DIR

    monkeypatch.setattr(factory.config, "CONFIG_DIR", _report_dir(tmp_path).parent)
    spec = importlib.util.spec_from_file_location("schedule_script", CODE_DIR / "scripts" / "schedule.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.main(["--crontab"]) == 2
    out, err = capsys.readouterr()
    assert out.strip().endswith("--once --report good --expected-schedule '0 6 * * *' >> "
                                f"{tmp_path}/reports/good/schedule.log 2>&1  # factory report good")
    errors = err.strip().splitlines()
    assert errors[0].startswith("error: report badcron (") and "badcron.yaml" in errors[0]
    assert errors[1].startswith("error: report needsrun (") and "needsrun.yaml" in errors[1]
    assert errors[-1] == "error: 2 report(s) skipped: badcron, needsrun (exit 2)"
