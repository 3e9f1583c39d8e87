"""factory.files: the UTC stamps every record carries, and the one lock helper every writer takes."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from factory import files


def test_utc_stamp_is_iso_utc_to_the_second_or_finer():
    stamp = files.utc_stamp()
    parsed = datetime.fromisoformat(stamp)
    assert parsed.utcoffset() == timedelta(0) and stamp.endswith("+00:00") and parsed.microsecond == 0
    assert abs(files.utc_now() - parsed) < timedelta(seconds=5)
    assert files.utc_now().tzinfo is timezone.utc
    assert len(files.utc_stamp("milliseconds").split("+")[0].rsplit(".", 1)[1]) == 3


def test_a_held_lock_excludes_other_takers_in_this_thread_and_others(tmp_path: Path):
    path = tmp_path / "sub" / "x.lock"
    with files.locked(path):
        assert path.exists()  # created with its directory
        with files.try_locked(path) as held:
            assert held is False
        seen = []
        thread = threading.Thread(target=lambda: seen.append(files.try_locked(path).__enter__()))
        thread.start()
        thread.join()
        assert seen == [False]
        with pytest.raises(TimeoutError):
            files.lock(path, timeout=0.05)
    with files.try_locked(path) as held:
        assert held is True
    assert path.exists()  # left in place: waiters share one file


def test_a_lock_dies_with_its_holder(tmp_path: Path):
    path = tmp_path / "x.lock"
    code = f"from factory import files; held = files.lock({str(path)!r}); print('held', flush=True); input()"
    holder = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with files.try_locked(path) as held:
            assert held is False
    finally:
        holder.kill()
        holder.wait()
    with files.try_locked(path) as held:
        assert held is True


def test_shared_lock_files_are_open_to_everyone(tmp_path: Path):
    with files.locked(tmp_path / "shared.lock", mode=0o666):
        assert (tmp_path / "shared.lock").stat().st_mode & 0o777 == 0o666
    with files.locked(tmp_path / "own.lock"):
        assert (tmp_path / "own.lock").stat().st_mode & 0o777 == 0o666 & ~files.current_umask()


def test_no_module_locks_or_stamps_time_on_its_own():
    """One helper each: raw fcntl locks only where a lock file also holds a record (build_lock)."""
    root = Path(files.__file__).parent
    own = {"files.py"}
    for path in root.rglob("*.py"):
        text = path.read_text()
        name = str(path.relative_to(root))
        if name not in own:
            assert "timezone.utc" not in text and "utcnow" not in text, name
            assert "from filelock" not in text and "import filelock" not in text, name
            assert "import fcntl" not in text or name == os.path.join("distributed", "build_lock.py"), name
