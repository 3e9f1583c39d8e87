"""DeepSpeed's native-op cache (native_ops): one per environment; no silent wait on a stale torch lock (build_lock)."""
from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from factory.distributed import build_lock, native_ops


@pytest.fixture
def build_dir(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path / "ext"))
    d = tmp_path / "ext" / "deepspeed_shm_comm"
    d.mkdir(parents=True)
    return d


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


def _torch_waits_on(lock: Path, seconds: float) -> bool:
    """Whether torch's own FileBaton.wait (what DeepSpeed's build calls) still waits after ``seconds``."""
    from torch.utils.file_baton import FileBaton

    waiter = threading.Thread(target=FileBaton(str(lock)).wait, daemon=True)
    waiter.start()
    waiter.join(seconds)
    return waiter.is_alive()


def test_default_cache_is_per_environment_and_torch_extensions_dir_wins(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", "restored after the test")
    monkeypatch.delenv("TORCH_EXTENSIONS_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    mine = native_ops.use_environment_cache()
    assert os.environ["TORCH_EXTENSIONS_DIR"] == str(mine)
    assert mine.parent == tmp_path / "cache" / "torch_extensions"
    from torch.utils.cpp_extension import _get_build_directory

    assert Path(_get_build_directory("probe", verbose=False)).parent == mine  # torch builds there

    monkeypatch.setattr(sys, "prefix", str(tmp_path / "other-checkout" / ".venv"))
    assert native_ops.default_extensions_dir() != mine  # another venv, another cache: no rebuild on switch

    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path / "chosen"))
    assert native_ops.use_environment_cache() == tmp_path / "chosen"


def test_lock_left_by_a_killed_factory_build_is_cleared_with_one_line(build_dir):
    lock = build_dir / "lock"
    lock.touch()  # just now: only the dead builder's record tells it is stale
    (build_dir / "factory.lock").write_text(json.dumps(
        {"pid": _dead_pid(), "host": socket.gethostname(), "started": time.time() - 5, "done": False}))
    lines: list[str] = []
    with build_lock.builder_turn(build_dir, lines.append) as previous:
        build_lock.settle_lock(build_dir, previous, lines.append)
    assert not lock.exists()
    assert len(lines) == 1 and "removed stale build lock" in lines[0] and str(lock) in lines[0]
    assert "died while building" in lines[0]
    assert not _torch_waits_on(lock, 2)
    assert json.loads((build_dir / "factory.lock").read_text())["done"] is True


def test_a_dead_builders_record_does_not_clear_a_lock_older_than_its_turn(build_dir):
    lock = build_dir / "lock"
    lock.touch()
    before = time.time() - 30
    os.utime(lock, (before, before))  # taken by someone else before that builder's turn
    record = {"pid": _dead_pid(), "host": socket.gethostname(), "started": time.time() - 5, "done": False}
    stale, why = build_lock.lock_state(build_dir, record, stale_after_s=120)
    # 30 s and then some: a subprocess spawn and a process scan ran since, slow under load
    assert not stale and re.search(r"last change 3\d s ago", why), why


def test_old_lock_with_no_builder_is_cleared(build_dir):
    lock = build_dir / "lock"
    lock.touch()
    old = time.time() - 3600
    os.utime(lock, (old, old))
    assert _torch_waits_on(lock, 1)  # the hang of the issue: torch waits on it forever
    lines: list[str] = []
    with build_lock.builder_turn(build_dir, lines.append) as previous:
        build_lock.settle_lock(build_dir, previous, lines.append)
    assert not lock.exists()
    assert len(lines) == 1 and str(lock) in lines[0] and "nothing changed for" in lines[0]


def test_live_lock_is_waited_on_and_reported_not_cleared(build_dir):
    lock = build_dir / "lock"
    # A builder like ninja: working directory in the build directory, releases the lock itself
    # when told to (after the waiter has reported it: no race with a loaded machine's clock).
    holder = subprocess.Popen(
        [sys.executable, "-c", "import os, sys; open('lock', 'x').close(); print('held', flush=True); "
                               "sys.stdin.readline(); os.remove('lock')"],
        cwd=build_dir, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    lines: list[str] = []
    stale, why = build_lock.lock_state(build_dir, None, stale_after_s=0)
    assert not stale and f"pid {holder.pid}" in why

    def release_once_reported():
        deadline = time.monotonic() + 60
        while not lines and time.monotonic() < deadline:
            time.sleep(0.05)
        holder.stdin.write("done\n")
        holder.stdin.flush()

    threading.Thread(target=release_once_reported, daemon=True).start()
    build_lock.settle_lock(build_dir, None, lines.append, stale_after_s=0, report_after_s=0.5)
    assert holder.wait(10) == 0  # it removed its own lock: nobody removed it under it
    assert lines and all(str(lock) in line and f"pid {holder.pid}" in line for line in lines)
    assert not any("removed stale" in line for line in lines)


def test_live_lock_cleared_once_its_builder_dies(build_dir):
    lock = build_dir / "lock"
    holder = subprocess.Popen([sys.executable, "-c", "open('lock', 'x').close(); print(1, flush=True); "
                                                     "import time; time.sleep(60)"],
                              cwd=build_dir, stdout=subprocess.PIPE, text=True)
    holder.stdout.readline()
    threading.Timer(1.0, holder.kill).start()
    lines: list[str] = []
    build_lock.settle_lock(build_dir, None, lines.append, stale_after_s=2, report_after_s=0.5)
    holder.wait(10)
    assert not lock.exists()
    assert "removed stale build lock" in lines[-1]
    assert any("waiting" in line and str(lock) in line for line in lines[:-1])


def test_waiting_for_another_factory_builder_says_who(build_dir):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; "
                               "from factory.distributed.build_lock import builder_turn\n"
                               "with builder_turn(Path(sys.argv[1])):\n print('in', flush=True); time.sleep(2)",
         str(build_dir)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "in"
    lines: list[str] = []
    with build_lock.builder_turn(build_dir, lines.append, report_after_s=0.5):
        pass
    assert holder.wait(10) == 0
    assert lines and f"pid {holder.pid}" in lines[0] and str(build_dir) in lines[0]


@pytest.mark.slow
def test_deepspeed_loads_the_op_despite_a_stale_lock(tmp_path, monkeypatch):
    """End to end: a built op with a lock left behind; DeepSpeed's own load must not hang."""
    import shutil

    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", os.environ.get("TORCH_EXTENSIONS_DIR")
                       or str(native_ops.default_extensions_dir()))
    source = native_ops.extensions_dir() / "deepspeed_shm_comm"
    if not native_ops.is_built("deepspeed_shm_comm"):
        native_ops.ensure_built("deepspeed_shm_comm")
    shutil.copytree(source, tmp_path / "ext" / "deepspeed_shm_comm", ignore=shutil.ignore_patterns("*lock"))
    lock = tmp_path / "ext" / "deepspeed_shm_comm" / "lock"
    lock.touch()
    (tmp_path / "ext" / "deepspeed_shm_comm" / "factory.lock").write_text(json.dumps(
        {"pid": _dead_pid(), "host": socket.gethostname(), "started": time.time() - 5, "done": False}))
    script = ("from factory.distributed.native_ops import ensure_built; ensure_built('deepspeed_shm_comm'); "
              "from deepspeed.ops.op_builder import ShareMemCommBuilder; ShareMemCommBuilder().load(); print('loaded')")
    env = {**os.environ, "TORCH_EXTENSIONS_DIR": str(tmp_path / "ext"), "OMP_NUM_THREADS": "1"}
    try:
        done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail(f"hung on {lock}")
    assert done.returncode == 0, done.stderr
    assert "loaded" in done.stdout
    stale = [line for line in done.stderr.splitlines() if "stale build lock" in line]
    assert len(stale) == 1 and str(lock) in stale[0]
