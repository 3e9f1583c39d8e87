"""Where a run came from: code version, library versions, command line."""
from __future__ import annotations

import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

#: The checkout factory runs from: its commit is the code version of a run.
CODE_DIR = Path(__file__).resolve().parents[2]


#: Where a run's code and configs live: an untracked file here (a new ``conf/experiment/*.yaml``,
#: a new module) can define a run, so it makes the checkout dirty. Untracked files elsewhere
#: (data, notes) and ignored ones (outputs/, .venv) do not.
SOURCE_DIRS = ("conf", "factory", "scripts", "notebooks", "hydra_plugins")


def git_state(directory: str | Path = ".") -> dict | None:
    """The code version of the repository holding ``directory``, or None outside one.

    Returns:
        ``{"commit": sha, "dirty": bool}``: dirty when a tracked file differs from the commit,
        or an untracked, not ignored file sits under one of ``SOURCE_DIRS``.
    """
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=directory, capture_output=True, text=True,
                              check=True, timeout=10).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no")
                     or git("ls-files", "--others", "--exclude-standard", "--", *SOURCE_DIRS))
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": dirty}


def versions() -> dict[str, str]:
    """Versions of Python and the libraries that decide a run's numbers."""
    found = {"python": platform.python_version()}
    for package in ("factory", "torch", "pytorch-lightning", "torchmetrics", "numpy"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "not installed"
    return found


def factory_version() -> str:
    """The installed factory's version (pyproject.toml is its one copy); "unknown" when run from
    a checkout that was never installed."""
    try:
        return metadata.version("factory")
    except metadata.PackageNotFoundError:
        return "unknown"


def command_line() -> list[str]:
    """This process's command line, credentials masked (``factory.redact``)."""
    from factory import redact

    return [sys.executable, *map(redact.text, sys.argv)]
