"""DeepSpeed's native ops, built once per environment into a cache that every run reuses.

On CPU, DeepSpeed JIT-compiles a shared-memory communication op at its first
initialization (~60 s here) and, for ZeRO-Offload, its CPU Adam (~85 s). Built inside a
worker they look like a hang; built here, in the launching process, they print what is
happening, and the workers find them cached.

The cache is torch's extension cache, one per environment: ``TORCH_EXTENSIONS_DIR`` if
set, else ``~/.cache/torch_extensions/py<XY>-<hash of sys.prefix and torch version>``
(``use_environment_cache`` sets the variable, so the workers the launcher starts agree).
One shared cache made every switch between two checkouts rebuild, reopening the window
in which a killed build leaves torch's ``lock`` file behind; torch then waits on it
forever, silently (``torch.utils.file_baton``: an O_EXCL file, no owner recorded).

So factory builders take turns on a ``factory.lock`` beside it (``flock``: the kernel
releases it when its holder dies), recording pid, host and start. Holding it, a torch
``lock`` is stale, and removed with one line saying so, when no live builder can hold it:

- the previous factory holder recorded on this host died before finishing, and the lock
  dates from its turn, or
- no process has its working directory in the build directory (ninja and the compiler
  run there) and nothing there changed for ``STALE_AFTER_S`` (a build on another host
  sharing the cache writes object files as it goes).

A wait longer than ``REPORT_AFTER_S`` says what it waits on and where, and repeats.

    python -m factory.distributed.native_ops          # prebuild for this environment
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import socket
import sys
import threading
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Callable, Iterator

from factory.errors import FactoryError

#: op name -> (DeepSpeed builder, what it is for, typical first build here)
OPS = {
    "deepspeed_shm_comm": ("ShareMemCommBuilder", "shared-memory collectives on CPU", "about 60 s"),
    "cpu_adam": ("CPUAdamBuilder", "the optimizer step of ZeRO-Offload", "about 85 s"),
}

#: A torch lock with no live builder in sight is stale after this long without a change.
STALE_AFTER_S = 120.0
#: A wait longer than this says what it waits on (and again every as long).
REPORT_AFTER_S = 30.0
TORCH_LOCK = "lock"
FACTORY_LOCK = "factory.lock"

Announce = Callable[[str], None]


class NativeOpError(FactoryError):
    """A DeepSpeed op cannot be built on this machine; the message names the missing piece."""


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def default_extensions_dir() -> Path:
    """This environment's extension cache: keyed to ``sys.prefix`` and torch's version."""
    try:
        torch_version = version("torch")
    except PackageNotFoundError:
        torch_version = "none"
    key = hashlib.sha256(f"{os.path.realpath(sys.prefix)}\n{torch_version}".encode()).hexdigest()[:12]
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "torch_extensions" / f"py{sys.version_info.major}{sys.version_info.minor}-{key}"


def extensions_dir() -> Path:
    """Where torch builds and finds the ops: ``TORCH_EXTENSIONS_DIR``, else this environment's cache."""
    return Path(os.environ.get("TORCH_EXTENSIONS_DIR") or default_extensions_dir())


def use_environment_cache() -> Path:
    """Point torch at this environment's cache unless ``TORCH_EXTENSIONS_DIR`` is set; return it.

    Call before worker processes start: they inherit the variable.
    """
    os.environ.setdefault("TORCH_EXTENSIONS_DIR", str(default_extensions_dir()))
    return extensions_dir()


def is_built(name: str) -> bool:
    return any((extensions_dir() / name).glob(f"{name}*.so"))


def missing_toolchain() -> str | None:
    """The first missing build tool, named, or None."""
    for tool, why in (("c++", "a C++ compiler (g++)"), ("ninja", "ninja (pip install ninja)")):
        if shutil.which(tool) is None and not (tool == "ninja" and _ninja_in_env()):
            return why
    return None


def _ninja_in_env() -> bool:
    return (Path(sys.executable).parent / "ninja").exists()


def ensure_built(name: str, announce: Announce | None = None) -> None:
    """Build op ``name`` (a key of ``OPS``) unless cached, and load it into this process.

    Loading it here, under ``factory.lock`` and after clearing a stale torch lock, means
    DeepSpeed finds it loaded and never waits on torch's lock itself.

    Raises:
        NativeOpError: the op cannot be built here (missing compiler or a failed build).
    """
    announce = announce or _stderr
    builder_name, purpose, typical = OPS[name]
    use_environment_cache()
    built = is_built(name)
    if not built:
        missing = missing_toolchain()
        if missing:
            raise NativeOpError(f"DeepSpeed's {name} op ({purpose}) cannot be built: {missing} is missing")
    build_dir = extensions_dir() / name
    build_dir.mkdir(parents=True, exist_ok=True)
    from deepspeed.ops.op_builder import __dict__ as builders

    with builder_turn(build_dir, announce) as previous:
        settle_lock(build_dir, previous, announce)
        building = not is_built(name)  # another builder may have finished it while we waited
        if building:
            announce(f"factory: building DeepSpeed's {name} op for {purpose}, once for this environment "
                     f"({typical}; cached in {extensions_dir()})")
        start = time.monotonic()
        try:
            with _reporting(f"DeepSpeed's {name} op in {build_dir}", build_dir, announce):
                builders[builder_name]().load(verbose=False)
        except Exception as e:  # noqa: BLE001: compiler failures surface as many types
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise NativeOpError(f"DeepSpeed's {name} op ({purpose}) failed to build: {first}") from e
    if building:
        announce(f"factory: built {name} in {time.monotonic() - start:.0f} s")


@contextlib.contextmanager
def builder_turn(build_dir: Path, announce: Announce = _stderr,
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


def settle_lock(build_dir: Path, previous: dict | None = None, announce: Announce = _stderr,
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
    builders = _processes_in(build_dir)
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


def _processes_in(build_dir: Path) -> list[str]:
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


@contextlib.contextmanager
def _reporting(what: str, build_dir: Path, announce: Announce,
               report_after_s: float = REPORT_AFTER_S) -> Iterator[None]:
    """While the body runs past ``report_after_s``, say every as long what it builds or waits on."""
    done = threading.Event()

    def watch() -> None:
        started = time.monotonic()
        while not done.wait(report_after_s):
            builders = _processes_in(build_dir)
            doing = ("compiling: " + ", ".join(builders)) if builders else \
                f"waiting on {build_dir / TORCH_LOCK}" if (build_dir / TORCH_LOCK).exists() else "loading"
            announce(f"factory: {what}: {time.monotonic() - started:.0f} s so far ({doing})")

    thread = threading.Thread(target=watch, name="native-op-build", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()


def main() -> None:
    for name in OPS:
        ensure_built(name)
        print(f"{name}: ready in {extensions_dir() / name}")


if __name__ == "__main__":
    main()
