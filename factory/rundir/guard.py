"""Which directory a run may write: never a finished run's, never another config's.

A run directory fixed in advance (``FACTORY_RUN_ID``, ``slurm_<job id>`` under
``resume=auto``, ``paths.run_dir=...``, ``hydra.run.dir=...``) may hold a run already. A
finished one (``completed``, ``pruned``) is never trained into again, with or without
``resume=auto``; a run of another config is never joined. Both are refused in one line
before anything is written there: ``check_fixed_dir`` while the config resolves (the
``${factory.run_id:}`` resolver), ``RefuseTakenRunDir`` before Hydra creates the directory,
``refuse_taken`` when the run begins (``factory.rundir.resume.begin``). No torch here.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from factory.rundir import manifest
from factory.errors import ConfigError, exit_bad_input

AUTO = "auto"
#: Statuses of runs that ended on their own; every other status can be continued.
FINISHED = ("completed", "pruned")


def check_fixed_dir(root: DictConfig, run_id: str) -> None:
    """Refuse a fixed run id (``FACTORY_RUN_ID``, ``slurm_<job id>``) whose directory holds a
    finished run or a run of another config (``refuse_taken``). Called while the config
    resolves, so before Hydra writes ``.hydra/`` into the directory."""
    try:
        view = plain_config(root)
        run_dir = task_dir_of(view) / run_id
    except Exception:  # noqa: BLE001: a config that does not resolve fails later, with its key
        return
    if (run_dir / manifest.MANIFEST).is_file():
        refuse_taken(view, run_dir, auto=view.get("resume") == AUTO)


def refuse_taken(config: DictConfig | dict, run_dir: Path, auto: bool) -> None:
    """Refuse to start (or, with ``resume=auto``, continue) in ``run_dir`` when it holds a finished
    run, or a run of another config.

    Raises:
        ConfigError: one line naming the directory, why, and what to do instead.
    """
    from factory.rundir.layout import RUN_ID_ENV

    fixed = (f"unset {RUN_ID_ENV} for a new run, or set a new one" if os.environ.get(RUN_ID_ENV)
             else "choose another run directory")
    try:
        status = run_status(run_dir)
    except (OSError, ValueError, TypeError) as e:  # not a record of ours: not ours to write over either
        raise ConfigError(f"{run_dir / manifest.MANIFEST}: unreadable as a run record ({type(e).__name__}); "
                          f"{fixed}") from None
    if status in FINISHED:
        what = ": nothing to continue (a finished run is never overwritten)" if auto else \
            ", and a finished run is never overwritten"
        raise ConfigError(f"{'resume=auto: ' if auto else ''}{run_dir} holds a run that {status}{what}; {fixed}")
    diff = differences(config, run_dir)
    if diff:
        shown = ", ".join(diff[:5]) + (", ..." if len(diff) > 5 else "")
        raise ConfigError(f"{'resume=auto: ' if auto else ''}{run_dir} holds a run of another config (differs at "
                          f"{shown}); {'resume' if auto else 'rerun'} with the same overrides, or {fixed}")


class RefuseTakenRunDir(Callback):
    """Hydra callback (``conf/train.yaml``): a run directory given as a path
    (``paths.run_dir=...``, ``hydra.run.dir=...``) that holds a finished run, or another
    config's, stops the command in one line (exit 2) before Hydra writes ``.hydra/`` and its
    log into it. ``FACTORY_RUN_ID`` is checked earlier, as the config resolves.

    Registered by the train config only: evaluate and report run in ``.`` (``hydra.run.dir``),
    where a finished run is what they read, and make their own outputs elsewhere."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            run_dir = Path(str(config.hydra.run.dir))
        except Exception:  # noqa: BLE001: Hydra reports an unresolvable run dir itself, in one line
            return
        if (run_dir / manifest.MANIFEST).is_file():
            try:
                refuse_taken(config, run_dir, auto=config.get("resume") == AUTO)
            except ConfigError as e:  # Hydra turns a callback's exception into a warning
                exit_bad_input(str(e), e)


def task_dir_of(view: dict) -> Path:
    """``<paths.output_dir>/<task_name>``: where the runs of the config ``view`` (``plain_config``) live."""
    return Path(str(_resolved(view, "")["paths"]["output_dir"])) / str(view["task_name"])


def differences(config: DictConfig | dict, run_dir: Path) -> list[str] | None:
    """Top-level and nested keys where ``config`` and ``run_dir/config.yaml`` differ.

    ``resume`` and the run directory (and what interpolates it) are left out. ``None``
    when the run has no readable config.
    """
    try:
        theirs = OmegaConf.to_container(OmegaConf.load(run_dir / manifest.CONFIG))
        ours = _resolved(config if isinstance(config, dict) else plain_config(config), theirs["paths"]["run_dir"])
    except Exception:  # noqa: BLE001: a half-written or foreign directory matches nothing
        return None
    for side in (ours, theirs):
        for key in NOT_COMPARED:
            side.pop(key, None)
    return _diff(_renamed(ours), _renamed(theirs), "")


#: Keys that do not decide what a run computes: a relaunch may differ there and still continue it.
NOT_COMPARED = ("resume", "after_run")

#: Components that moved or were replaced by an equivalent (issue 10): a run written before keeps
#: the old name in its config.yaml, and a relaunch after the upgrade still continues it.
RENAMED_TARGETS = {
    "factory.fault_tolerance.PreemptionCheckpoint": "factory.training.fault_tolerance.PreemptionCheckpoint",
    # RunCheckpoint writes the same checkpoints, under the same state key, once each
    "pytorch_lightning.callbacks.ModelCheckpoint": "factory.training.checkpointing.RunCheckpoint",
}


def _renamed(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: RENAMED_TARGETS.get(v, v) if k == "_target_" and isinstance(v, str) else _renamed(v)
                for k, v in node.items()}
    if isinstance(node, list):
        return [_renamed(v) for v in node]
    return node


def plain_config(cfg: DictConfig) -> dict:
    """``cfg`` as unresolved containers, without Hydra's node (``_root_`` in a resolver has it)."""
    plain = OmegaConf.to_container(cfg, resolve=False)
    plain.pop("hydra", None)
    return plain


def _resolved(plain: dict, run_dir: str) -> dict:
    """``plain`` resolved with ``paths.run_dir`` fixed to ``run_dir`` (not a fresh id), its
    credentials redacted as in ``config.yaml``."""
    from factory import redact

    config = OmegaConf.create(plain)
    config.paths.run_dir = run_dir
    return redact.resolved(config)


def _diff(ours: Any, theirs: Any, path: str) -> list[str]:
    if isinstance(ours, dict) and isinstance(theirs, dict):
        keys = list(ours) + [k for k in theirs if k not in ours]
        return [d for k in keys for d in _diff(ours.get(k, _ABSENT), theirs.get(k, _ABSENT),
                                                f"{path}.{k}" if path else str(k))]
    return [] if ours == theirs else [path or "<root>"]


_ABSENT = object()


def run_status(run_dir: Path) -> str:
    """The status recorded in ``run_dir/run.json``."""
    return manifest.load_record(run_dir).status
