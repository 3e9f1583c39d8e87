"""Upload offline wandb runs later: find ``<run_dir>/wandb/offline-run-*`` and hand them to ``wandb sync``.

Runs train offline by default (``logger=wandb``); ``make sync`` or ``scripts/sync.py`` uploads
them once a machine has network and a wandb API key.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Iterable

from factory.errors import FactoryError

OFFLINE_PREFIX = "offline-run-"
DEFAULT_HOST = "https://api.wandb.ai"


def offline_runs(paths: Iterable[str | Path]) -> list[Path]:
    """The offline wandb run directories in or under each path, sorted.

    Args:
        paths: outputs directories, task or run directories, or offline run directories themselves.

    Raises:
        FactoryError: a path does not exist.
    """
    found: set[Path] = set()
    for path in map(Path, paths):
        if not path.is_dir():
            raise FactoryError(f"{path}: no such directory")
        if path.name.startswith(OFFLINE_PREFIX):
            found.add(path)
        else:
            found.update(d for d in path.glob(f"**/wandb/{OFFLINE_PREFIX}*") if d.is_dir())
    return sorted(found)


def has_credentials() -> bool:
    """Whether ``wandb sync`` will find a key: ``WANDB_API_KEY``, an identity token, or ``wandb login``'s netrc."""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    try:
        from wandb import env
        from wandb.sdk.lib.wbauth import read_netrc_auth
    except ImportError:  # wandb moved its internals: let `wandb sync` judge
        return True
    try:
        return read_netrc_auth(host=env.get_base_url(DEFAULT_HOST)) is not None
    except Exception:  # noqa: BLE001: a malformed netrc entry is no key either
        return False


def sync_command(runs: list[Path], project: str | None = None, entity: str | None = None) -> list[str]:
    """The ``wandb sync`` command line that uploads ``runs`` (one call: a resumed run's parts go in order)."""
    command = [sys.executable, "-m", "wandb", "sync", "--skip-synced"]
    if project:
        command += ["--project", project]
    if entity:
        command += ["--entity", entity]
    return command + [str(r) for r in runs]


def sync(runs: list[Path], project: str | None = None, entity: str | None = None) -> int:
    """Upload ``runs`` with ``wandb sync``; returns its exit code.

    Raises:
        FactoryError: no runs to upload, or no wandb API key configured.
    """
    if not runs:
        raise FactoryError("no offline wandb runs to sync (runs write them with logger=wandb)")
    if not has_credentials():
        raise FactoryError(f"wandb sync needs an API key: set WANDB_API_KEY or run `wandb login` "
                           f"({len(runs)} offline run(s) waiting)")
    return subprocess.run(sync_command(runs, project, entity)).returncode
