"""Atomic writes leave files as readable as a plain open() would (shared registries, sweeps)."""
from __future__ import annotations

import os
import stat

from factory import files


def test_written_files_follow_the_umask_not_mkstemps_0600(tmp_path):
    previous = os.umask(0o022)
    try:
        path = files.write_json(tmp_path / "index.json", {"a": 1})
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
        os.umask(0o002)  # a group-shared directory
        files.write_text(path, "x")
        assert stat.S_IMODE(path.stat().st_mode) == 0o664
    finally:
        os.umask(previous)
    assert files.current_umask() == previous
