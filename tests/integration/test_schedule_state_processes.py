"""The schedule state file under concurrent processes: each crontab line is its own
`scripts/schedule.py --once --report <name>`, so two reports due in the same minute record
their runs at once; neither record may be lost (a lost one stays "running")."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from factory.reports import schedule

RUNS = 150  # start + finish records per process; without a file lock dozens are lost here

# One process recording its report's runs as run_one does ("running", then "completed"), counting
# the times its own last record was overwritten by the other's stale copy of the file.
RECORDER = """
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from factory.reports import schedule

reports_dir, name, runs = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
start = datetime(2026, 11, 24, 6, 0, tzinfo=timezone.utc)
print("ready", flush=True)
sys.stdin.readline()  # both processes start recording together
written, lost = None, 0
for i in range(runs):
    tick = start + timedelta(minutes=i)
    for ok in (None, True):
        lost += written is not None and schedule.load_state(reports_dir).get(name) != written
        schedule._save_run(reports_dir, name, tick, ok)
        written = {"last_run": tick.isoformat(), "status": "running" if ok is None else "completed"}
print("lost", lost, flush=True)
"""


def _reject_constant(token: str):
    raise ValueError(f"not strict JSON: {token}")


def test_two_processes_recording_runs_lose_neither(tmp_path: Path):
    names = ["nightly", "hourly"]
    recorders = [subprocess.Popen([sys.executable, "-c", RECORDER, str(tmp_path), name, str(RUNS)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for name in names]
    for recorder in recorders:  # imports done in both ...
        assert recorder.stdout.readline() == "ready\n"
    for recorder in recorders:  # ... then release them at once
        recorder.stdin.write("go\n")
        recorder.stdin.flush()
    for recorder in recorders:
        out, _ = recorder.communicate(timeout=60)
        assert recorder.returncode == 0 and out == "lost 0\n"

    state = json.loads((tmp_path / schedule.STATE).read_text(), parse_constant=_reject_constant)
    last = schedule.load_state(tmp_path)  # what the scheduler reads
    assert state == last
    assert sorted(state) == sorted(names)
    for name in names:
        assert state[name]["status"] == "completed", state
        assert state[name]["last_run"] == f"2026-11-24T{6 + (RUNS - 1) // 60:02d}:{(RUNS - 1) % 60:02d}:00+00:00"
