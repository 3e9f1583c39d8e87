"""A crontab line outlives an edit of its report's schedule: run then, it says in one line that
the crontab is stale (exit 2) instead of quietly logging "nothing due now"."""
from __future__ import annotations

import importlib.util
import shlex
from pathlib import Path

import pytest

from factory.reports import schedule
from factory.reports.schedule import Scheduled

NIGHTLY = "name: nightly\nnotebook: notebooks/compare_runs.ipynb\n"


@pytest.fixture
def script(tmp_path: Path, monkeypatch):
    """scripts/schedule.py's main, reading reports from tmp_path/conf/report/, writing under tmp_path."""
    import factory.config
    from factory.rundir.provenance import CODE_DIR

    (tmp_path / "conf" / "report").mkdir(parents=True)
    monkeypatch.setattr(factory.config, "CONFIG_DIR", tmp_path / "conf")
    monkeypatch.delenv("FACTORY_CONFIG_DIR", raising=False)
    monkeypatch.setenv("FACTORY_ROOT", str(tmp_path))
    spec = importlib.util.spec_from_file_location("schedule_script", CODE_DIR / "scripts" / "schedule.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def _declare(tmp_path: Path, schedule_line: str = "") -> Path:
    path = tmp_path / "conf" / "report" / "nightly.yaml"
    path.write_text(NIGHTLY + schedule_line)
    return path


def _printed_line_args(script, tmp_path: Path, capsys) -> list[str]:
    """The arguments the printed crontab line gives scripts/schedule.py, as its shell splits them."""
    assert script(["--crontab"]) == 0
    line = capsys.readouterr().out.strip()
    words = shlex.split(line.split(None, 5)[5].replace("\\%", "%"))
    return words[words.index("--once"):words.index(">>")]


def test_a_changed_schedule_is_named_not_run(script, tmp_path: Path, capsys):
    path = _declare(tmp_path, "schedule: '0 6 * * *'\n")
    args = _printed_line_args(script, tmp_path, capsys)
    assert args == ["--once", "--report", "nightly", "--expected-schedule", "0 6 * * *"]
    path.write_text(NIGHTLY + "schedule: '30 7 * * 1-5'\n")  # edited; the crontab not regenerated
    assert script(args) == 2
    assert capsys.readouterr().err == (
        f"error: report nightly ({path}) is scheduled at '30 7 * * 1-5' now, this crontab line at '0 6 * * *': "
        "regenerate the crontab (scripts/schedule.py --crontab); not run\n")
    assert not (tmp_path / "reports" / schedule.STATE).exists()  # nothing ran, nothing recorded


def test_a_removed_schedule_says_no_schedule_any_more(script, tmp_path: Path, capsys):
    path = _declare(tmp_path, "schedule: '0 6 * * *'\n")
    args = _printed_line_args(script, tmp_path, capsys)
    _declare(tmp_path)  # schedule: deleted from the file
    assert script(args) == 2
    assert capsys.readouterr().err == (
        f"error: report nightly ({path}) has no schedule any more (this crontab line runs it at '0 6 * * *'): "
        "regenerate the crontab (scripts/schedule.py --crontab)\n")


def test_a_line_without_its_schedule_still_names_a_missing_one(script, tmp_path: Path, capsys):
    path = _declare(tmp_path)  # a crontab line printed before lines carried their schedule
    assert script(["--once", "--report", "nightly"]) == 2
    assert capsys.readouterr().err == (
        f"error: report nightly ({path}) has no schedule (set schedule: \"<cron>\" in the file); "
        "if a crontab line runs it, "
        "regenerate the crontab (scripts/schedule.py --crontab)\n")


def test_the_expected_schedule_needs_once_and_one_report(script, capsys):
    with pytest.raises(SystemExit) as exited:
        script(["--crontab", "--report", "nightly", "--expected-schedule", "0 6 * * *"])
    assert exited.value.code == 2
    assert "--expected-schedule needs --once and one --report" in capsys.readouterr().err


def test_the_same_schedule_spaced_differently_is_not_stale():
    assert schedule.stale_crontab([Scheduled("nightly", "0 6 * * *")], [], "0  6 * * *") == {}
    assert list(schedule.stale_crontab([Scheduled("nightly", "0 6 * * *")], [], "0 7 * * *")) == ["nightly"]
