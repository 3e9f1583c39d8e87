"""Atomic file writes, inter-process locks, and the UTC time factory's files record.

A crash leaves the previous version of a file readable, never half of it.
"""
from __future__ import annotations

import contextlib
import json
import math
import numbers
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator


def write_text(path: str | os.PathLike, text: str) -> Path:
    """``write_bytes`` of ``text`` in UTF-8."""
    return write_bytes(path, text.encode("utf-8"))


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to a temp file beside ``path``, fsync it, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~current_umask())  # mkstemp's 0600 would hide the file from teammates
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """``write_text`` of ``obj`` as indented strict JSON (see ``json_text``)."""
    return write_text(path, json_text(obj, indent=2) + "\n")


def json_text(obj: Any, indent: int | None = None) -> str:
    """``obj`` as strict JSON: every factory JSON file goes through here.

    Python's ``json`` writes ``NaN``/``Infinity``, which JSON has not and strict readers
    (browsers, ``jq``, other languages) reject; they become ``null`` (as JavaScript's
    ``JSON.stringify`` does). NumPy numbers become JSON numbers, other non-JSON values
    (paths, datetimes) their ``str``.

    Example:
        >>> json_text({"auroc": float("nan"), "n": 3})
        '{"auroc": null, "n": 3}'
    """
    return json.dumps(_finite(obj), indent=indent, sort_keys=False, default=str, allow_nan=False)


def _finite(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {key: _finite(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(value) for value in obj]
    if isinstance(obj, (bool, str)) or obj is None:
        return obj
    if isinstance(obj, numbers.Integral):
        return int(obj)  # numpy.int64 is no int to json
    if isinstance(obj, numbers.Real):
        value = float(obj)
        return value if math.isfinite(value) else None
    return obj


def current_umask() -> int:
    """The process umask (reading it means setting it; set straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


#: The one UTC ``tzinfo``: for reading and converting times (stamp new ones with ``utc_now``).
UTC = timezone.utc


def utc_now() -> datetime:
    """Now, timezone-aware, in UTC."""
    return datetime.now(UTC)


def utc_stamp(timespec: str = "seconds") -> str:
    """``utc_now()`` in ISO 8601 (``2026-01-31T12:00:00+00:00``): every time a factory file records."""
    return utc_now().isoformat(timespec=timespec)


def lock(path: str | os.PathLike, timeout: float = -1, mode: int | None = None):
    """Take the inter-process lock file ``path`` (created, with its directory, and left in place).

    ``flock`` underneath (``filelock``): the kernel drops it when its holder dies, ``kill -9``
    included; each call is its own lock, so threads of one process exclude each other too.

    Args:
        timeout: seconds to wait; -1 waits for ever, 0 tries once.
        mode: the lock file's permissions, for directories people share (``0o666``);
            ``None``: as the umask makes them.

    Returns:
        The held ``filelock.FileLock``: ``release()`` it, or use it in ``with``.

    Raises:
        TimeoutError: another holder kept it past ``timeout`` (``filelock.Timeout``).
    """
    from filelock import FileLock

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    held = FileLock(str(path)) if mode is None else FileLock(str(path), mode=mode)
    held.acquire(timeout=timeout)
    return held


@contextlib.contextmanager
def locked(path: str | os.PathLike, timeout: float = -1, mode: int | None = None) -> Iterator[None]:
    """Hold ``lock(path, timeout, mode)`` for the ``with`` block."""
    held = lock(path, timeout, mode)
    try:
        yield
    finally:
        held.release()


@contextlib.contextmanager
def try_locked(path: str | os.PathLike) -> Iterator[bool]:
    """Hold ``path``'s lock if it is free: yields True while held, False (holding nothing) if not."""
    try:
        held = lock(path, timeout=0)
    except TimeoutError:
        yield False
        return
    try:
        yield True
    finally:
        held.release()
