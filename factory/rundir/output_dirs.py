"""Directories a command will create, checked before anything runs: one line when one cannot be.

Hydra creates the run (or sweep) directory itself, before the task function runs, and a
failure there was four chained ``FileNotFoundError`` tracebacks. ``CheckOutputDirs`` (a
Hydra callback in ``conf/hydra/default.yaml``) asks the file system first: for the part of
each directory that does not exist yet, it creates and removes a probe directory in the
nearest existing ancestor, so nothing is left behind and the answer is the kernel's own
(``/proc``, a path under a regular file, a read-only or foreign directory).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from factory.errors import ConfigError, exit_bad_input


def check_creatable(path: str | os.PathLike, key: str, value: Any = None) -> None:
    """Raise ``ConfigError`` unless ``path`` exists as a directory or can be created.

    Args:
        path: the directory a command will create (with its parents).
        key: the config key it comes from, named in the error (``paths.output_dir``).
        value: that key's value, when it differs from ``path`` (the run dir under it).

    Raises:
        ConfigError: ``<key>=<value>: cannot create <path>: <why>`` in one line.
    """
    path = Path(os.path.abspath(path))
    shown = f"{key}={path if value is None else value}"
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing == path and path.is_dir():
        return  # nothing to create (what is written inside is the command's own business)
    if not existing.is_dir():
        raise ConfigError(f"{shown}: cannot create {path}: {existing} is a file, not a directory")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".factory-probe-", dir=existing))
    except OSError as e:
        raise ConfigError(f"{shown}: cannot create {path}: {existing} refuses new directories"
                          f" ({e.strerror or e})") from None


def check_output_dirs(config: DictConfig, hydra_dir_key: str) -> None:
    """Check the directory Hydra creates (``hydra.run.dir`` or ``hydra.sweep.dir``),
    ``paths.output_dir`` (a command that makes its run directory itself writes there) and
    ``reports_dir``.

    The error names the key a user sets: ``paths.output_dir`` when the directory lies under it.
    A value that does not resolve is left alone: the run itself reports that, as before.
    """
    output_dir = _select(config, "paths.output_dir")
    targets = [(output_dir, "paths.output_dir", None)] if output_dir is not None else []
    hydra_dir = _select(config, hydra_dir_key)
    if hydra_dir is not None:
        if output_dir is not None and Path(os.path.abspath(hydra_dir)).is_relative_to(os.path.abspath(output_dir)):
            targets = [(hydra_dir, "paths.output_dir", output_dir)]  # covers output_dir itself
        else:  # moved out of paths.output_dir: name the key that moved it
            key = "paths.run_dir" if hydra_dir == _select(config, "paths.run_dir") else hydra_dir_key
            targets.append((hydra_dir, key, None))
    reports_dir = _select(config, "reports_dir")
    if reports_dir is not None:
        targets.append((reports_dir, "reports_dir", None))
    for path, key, value in targets:
        check_creatable(path, key, value)


def _select(config: DictConfig, key: str) -> str | None:
    try:
        value = OmegaConf.select(config, key, throw_on_missing=False)
    except Exception:  # noqa: BLE001: e.g. a bad FACTORY_RUN_ID; the run raises it in its own words
        return None
    return str(value) if isinstance(value, (str, os.PathLike)) and str(value) not in ("", "???") else None


class CheckOutputDirs(Callback):
    """Hydra callback: bad output directories stop the command with ``error: ...`` and exit 2.

    Hydra turns a callback's exception into a warning, so this one exits itself, as
    ``factory.cli`` does for every other bad input.
    """

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(config, "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(config, "hydra.sweep.dir")

    @staticmethod
    def _check(config: DictConfig, key: str) -> None:
        try:
            check_output_dirs(config, key)
        except ConfigError as e:
            exit_bad_input(str(e), e)
