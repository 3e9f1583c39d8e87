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
forever, silently. Builds here take turns and clear a stale lock with one line
(``factory.distributed.build_lock`` holds the rule); a build longer than ``REPORT_AFTER_S``
says what it compiles or waits on, and repeats.

    python -m factory.distributed.native_ops          # prebuild for this environment
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import sys
import threading
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Iterator

from factory.distributed.build_lock import (
    REPORT_AFTER_S,
    TORCH_LOCK,
    Announce,
    builder_turn,
    processes_in,
    settle_lock,
    stderr_line,
)
from factory.errors import FactoryError

#: op name -> (DeepSpeed builder, what it is for, typical first build here)
OPS = {
    "deepspeed_shm_comm": ("ShareMemCommBuilder", "shared-memory collectives on CPU", "about 60 s"),
    "cpu_adam": ("CPUAdamBuilder", "the optimizer step of ZeRO-Offload", "about 85 s"),
}


class NativeOpError(FactoryError):
    """A DeepSpeed op cannot be built on this machine; the message names the missing piece."""


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
    announce = announce or stderr_line
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
def _reporting(what: str, build_dir: Path, announce: Announce,
               report_after_s: float = REPORT_AFTER_S) -> Iterator[None]:
    """While the body runs past ``report_after_s``, say every as long what it builds or waits on."""
    done = threading.Event()

    def watch() -> None:
        started = time.monotonic()
        while not done.wait(report_after_s):
            builders = processes_in(build_dir)
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
