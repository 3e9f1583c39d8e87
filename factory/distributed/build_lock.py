"""Turns between factory's builders of a native op, and when torch's build lock is stale.

Torch's extension build takes a ``lock`` file in the build directory
(``torch.utils.file_baton``: an O_EXCL file, no owner recorded); a killed build leaves it
behind and torch then waits on it forever, silently.

So factory builders take turns on a ``factory.lock`` beside it (``flock``: the kernel
releases it when its holder dies), recording pid, host and start. Holding it, a torch
``lock`` is stale, and removed with one line saying so, when no live builder can hold it:

- the previous factory holder recorded on this host died before finishing, and the lock
  dates from its turn, or
- no process has its working directory in the build directory (ninja and the compiler
  run there) and nothing there changed for ``STALE_AFTER_S`` (a build on another host
  sharing the cache writes object files as it goes).

A wait longer than ``REPORT_AFTER_S`` says what it waits on and where, and repeats.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from pathlib import Path
from typing import Callable, Iterator

#: A torch lock with no live builder in sight is stale after this long without a change.
STALE_AFTER_S = 120.0
#: A wait longer than this says what it waits on (and again every as long).
REPORT_AFTER_S = 30.0
TORCH_LOCK = "lock"
FACTORY_LOCK = "factory.lock"

Announce = Callable[[str], None]


def stderr_line(message: str) -> None:
    """The default ``Announce``: one line on the console's stderr, flushed (also during a quiet run:
    a build waited on can take minutes)."""
    from factory.console import notice

    notice(message)


@contextlib.contextmanager
def builder_turn(build_dir: Path, announce: Announce = stderr_line,
                 report_after_s: float = REPORT_AFTER_S) -> Iterator[dict | None]:
    """Hold ``factory.lock`` of ``build_dir`` (one factory builder at a time), recording who holds it.

    Yields:
        The previous holder's record (pid, host, started, done), or None. The record stays
        after release, marked done: one not done names a builder that died while building.
    """
    path = build_dir / FACTORY_LOCK
    with open(path, "a+") as f:
        started = time.monotonic()
        reported = 0
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                waited = time.monotonic() - started
                if waited >= report_after_s * (reported + 1):
                    reported += 1
                    holder = _read_record(path)
                    who = f"pid {holder.get('pid')} on {holder.get('host')}" if holder else "another process"
                    announce(f"factory: waiting {waited:.0f} s for {who}, which is building in {build_dir} "
                             f"(holds {path})")
                time.sleep(min(0.5, report_after_s / 4))
        previous = _read_record(path)
        _write_record(f, {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(),
                          "done": False})
        try:
            yield previous
        finally:
            _write_record(f, {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(),
                              "done": True})
            fcntl.flock(f, fcntl.LOCK_UN)


def settle_lock(build_dir: Path, previous: dict | None = None, announce: Announce = stderr_line,
                stale_after_s: float = STALE_AFTER_S, report_after_s: float = REPORT_AFTER_S) -> None:
    """Return once torch's ``lock`` in ``build_dir`` is gone: removed if stale, else waited for.

    Call while holding ``builder_turn``, with the record it yields as ``previous``. A live
    lock is waited on, with a line every ``report_after_s`` naming the lock and what holds
    it, and removed as soon as it turns stale (rules in the module docstring).
    """
    lock = build_dir / TORCH_LOCK
    started = time.monotonic()
    reported = 0
    while lock.exists():
        stale, why = lock_state(build_dir, previous, stale_after_s)
        if stale:
            with contextlib.suppress(FileNotFoundError):
                lock.unlink()
            announce(f"factory: removed stale build lock {lock} ({why})")
            return
        waited = time.monotonic() - started
        if waited >= report_after_s * (reported + 1):
            reported += 1
            announce(f"factory: waiting {waited:.0f} s on build lock {lock} ({why}); "
                     f"it is removed once stale ({stale_after_s:.0f} s without a change and no builder)")
        time.sleep(min(0.5, report_after_s / 4))


def lock_state(build_dir: Path, previous: dict | None = None,
               stale_after_s: float = STALE_AFTER_S) -> tuple[bool, str]:
    """Whether torch's lock in ``build_dir`` is stale, and why (or what holds it).

    Args:
        previous: the last factory builder's record (``builder_turn`` yields it).
    """
    builders = processes_in(build_dir)
    if builders:
        return False, "held by a build in progress: " + ", ".join(builders)
    record = previous or {}
    if record and not record.get("done") and record.get("host") == socket.gethostname() \
            and _mtime(build_dir / TORCH_LOCK) >= float(record.get("started") or 0) - 1 \
            and not _alive(record.get("pid"), record.get("started")):  # its lock: taken during its turn
        return True, f"left by pid {record.get('pid')}, which died while building"
    idle = time.time() - _last_change(build_dir)
    if idle >= stale_after_s:
        return True, f"no process is building there and nothing changed for {idle:.0f} s"
    return False, f"no builder seen, last change {idle:.0f} s ago"


def processes_in(build_dir: Path) -> list[str]:
    """'name (pid N, ...)' per name of the local processes whose working directory is ``build_dir``."""
    import psutil

    target = os.path.realpath(build_dir)
    pids: dict[str, list[int]] = {}
    for p in psutil.process_iter(["pid", "name", "cwd"]):
        if p.info.get("cwd") and os.path.realpath(p.info["cwd"]) == target:
            pids.setdefault(p.info["name"], []).append(p.info["pid"])
    return [f"{name} (pid {', '.join(map(str, ids))})" for name, ids in pids.items()]


def _alive(pid, started) -> bool:
    """Whether ``pid`` runs and was started no later than ``started`` (not a reused pid)."""
    import psutil

    try:
        return psutil.Process(int(pid)).create_time() <= float(started) + 1
    except (psutil.Error, TypeError, ValueError):
        return False


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def _last_change(build_dir: Path) -> float:
    return max((_mtime(p) for p in build_dir.iterdir() if p.name != FACTORY_LOCK), default=0.0)


def _read_record(path: Path) -> dict | None:
    try:
        record = json.loads(path.read_text() or "null")
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _write_record(f, record: dict) -> None:
    f.seek(0)
    f.truncate()
    f.write(json.dumps(record))
    f.flush()
