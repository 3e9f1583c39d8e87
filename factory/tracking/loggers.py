"""What experiment trackers (wandb, MLflow, TensorBoard) get when a run ends.

Lightning streams the metrics and ``training.recipe.run`` logs the resolved config as
hyperparameters; this module adds what only exists at the end: the manifest
(``run.json``), the final metrics, and on request the best checkpoint as one file
(a ZeRO directory is consolidated first). Tracker libraries are imported by their
Lightning loggers, only when ``logger=`` selects them.
"""
from __future__ import annotations

import json
import logging
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any, Iterable

from omegaconf import DictConfig

from factory import redact
from factory.rundir.catalog import flat_metrics
from factory.rundir.layout import CONFIG, MANIFEST, METRICS
from factory.rundir.manifest import RunRecord

log = logging.getLogger(__name__)

#: Run-directory files every tracker receives (those that exist), as ``factory/<name>``. Never
#: as ``run.json``: that name marks a run directory to everything that searches outputs/.
RUN_FILES = {MANIFEST: "manifest.json", METRICS: METRICS, CONFIG: CONFIG}
TRACKER_DIR = "factory"


def after_run(run) -> None:
    """After-run hook (``after_run:`` in conf/train.yaml): ``publish`` a finished run, ``abandon`` another.

    ``run`` is a ``factory.training.hooks.AfterRun``; its ``run.json`` is final by now.
    """
    if not run.finished:
        abandon(run.loggers, run.record)
        return
    try:
        publish(run.cfg, run.loggers, run.record, run.metrics)  # the final run.json; closes the trackers
    except Exception as e:  # noqa: BLE001: a tracker (a network store, an artifact) must not fail the run
        log.error("tracking: could not publish run %s: %s", run.run_dir.name, e)


def publish(cfg: DictConfig, loggers: Iterable, record: RunRecord, metrics: dict[str, dict[str, float]]) -> None:
    """Hand a finished run's manifest, files and final metrics to its trackers, then close them.

    Call on rank zero after ``record.finish``; the trackers then hold the final ``run.json``.

    Args:
        cfg: the run's config (``tracking.log_checkpoint`` asks for the checkpoint artifact).
        loggers: the Trainer's loggers.
        record: the finished run's manifest.
        metrics: final metrics by section (``val``, ``test``, ``baseline``: ``{name: metrics}``); every
            tracker gets them in ``metrics.json``, TensorBoard's HParams tab beside the config too.
    """
    from pytorch_lightning.loggers import MLFlowLogger, TensorBoardLogger, WandbLogger

    tracking = cfg.get("tracking") or {}
    checkpoint = checkpoint_file(record) if tracking.get("log_checkpoint") else None
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            _wandb_publish(logger.experiment, record, checkpoint)
        elif isinstance(logger, MLFlowLogger):
            _mlflow_publish(logger, record, checkpoint)
        elif isinstance(logger, TensorBoardLogger):
            _tensorboard_publish(logger, cfg, record, metrics)


def abandon(loggers: Iterable, record: RunRecord) -> None:
    """Close a failed (or interrupted) run's trackers with its manifest; never raises (the run's error wins)."""
    from pytorch_lightning.loggers import MLFlowLogger, WandbLogger

    for logger in loggers:
        try:  # only runs that started: a run that failed on its config opens no tracker run
            if isinstance(logger, WandbLogger) and logger._experiment is not None:
                run = logger.experiment
                run.summary["manifest"] = redact.container(asdict(record))
                run.finish(exit_code=1)
            elif isinstance(logger, MLFlowLogger) and logger._initialized:
                client, run_id = logger.experiment, logger.run_id
                _mlflow_files(client, run_id, record)
                client.set_terminated(run_id, "KILLED" if record.status == "interrupted" else "FAILED")
        except Exception as e:  # noqa: BLE001: a tracker failing here must not hide the run's error
            log.warning("could not mark the %s run failed: %s", type(logger).__name__, e)


def checkpoint_file(record: RunRecord) -> Path | None:
    """The run's best checkpoint (else its last) as one file; ``None`` when it wrote none.

    A DeepSpeed ZeRO directory is consolidated into ``<name>-fp32.ckpt`` beside it (unless
    ZeRO-3's evaluation already wrote it from these shards): the run writes it as it ends
    (an offline tracker uploads it later, so not from a cache).
    """
    from factory.rundir.checkpoints import consolidate, export_path, is_newer_than_shards, is_sharded, judged_path

    path = judged_path(record.run_dir, record)  # the best, else the last: the rule every reader follows
    if path is None:
        log.warning("tracking.log_checkpoint: run %s wrote no checkpoint; no artifact to log", record.run_id)
        return None
    if not is_sharded(path):
        return path
    return export_path(path) if is_newer_than_shards(export_path(path), path) else consolidate(path)


def _run_files(record: RunRecord) -> list[tuple[Path, str]]:
    """(file in the run directory, its name in the tracker) for each of ``RUN_FILES`` that exists."""
    run_dir = Path(record.run_dir)
    return [(run_dir / name, f"{TRACKER_DIR}/{as_name}") for name, as_name in RUN_FILES.items()
            if (run_dir / name).is_file()]


def _checkpoint_metadata(record: RunRecord, checkpoint: Path) -> dict[str, Any]:
    return {"run_id": record.run_id, "task_name": record.task_name, "monitor": record.monitor,
            "data_fingerprint": record.data.get("fingerprint"), "file": str(checkpoint),
            "from": record.best_checkpoint or record.last_checkpoint, "format": record.checkpoint_format}


def _wandb_publish(run, record: RunRecord, checkpoint: Path | None) -> None:
    import wandb

    run.summary["manifest"] = redact.container(asdict(record))
    for source, name in _run_files(record):  # copies in the run's files/: what they were at the end
        target = Path(run.dir) / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        run.save(str(target), base_path=run.dir, policy="now")
    if checkpoint is not None:
        artifact = wandb.Artifact(f"model-{run.id}", type="model", metadata=_checkpoint_metadata(record, checkpoint))
        # immutable: referenced in place, not copied to wandb's staging dir (checkpoints can be GBs)
        artifact.add_file(str(checkpoint), name="model.ckpt", policy="immutable")
        run.log_artifact(artifact, aliases=["best" if record.best_checkpoint else "last"])
    # Finish now: a later run in this process (a notebook, a sweep) would otherwise reuse this one.
    run.finish(exit_code=0)


def _mlflow_files(client, run_id: str, record: RunRecord) -> None:
    tags = {"factory.run_id": record.run_id, "factory.run_dir": record.run_dir, "factory.status": record.status}
    if record.data.get("fingerprint"):
        tags["factory.data_fingerprint"] = record.data["fingerprint"]
    if record.git and record.git.get("commit"):
        tags["mlflow.source.git.commit"] = record.git["commit"]
    if record.tags:
        tags["factory.tags"] = ",".join(record.tags)
    for key, value in tags.items():
        client.set_tag(run_id, key, value)
    for source, name in _run_files(record):
        client.log_text(run_id, source.read_text(), name)


def _mlflow_publish(logger, record: RunRecord, checkpoint: Path | None) -> None:
    client, run_id = logger.experiment, logger.run_id
    _mlflow_files(client, run_id, record)
    if checkpoint is not None:
        client.log_artifact(run_id, str(checkpoint), artifact_path="checkpoint")
    client.set_terminated(run_id, "FINISHED")


def _tensorboard_publish(logger, cfg: DictConfig, record: RunRecord, metrics: dict[str, dict[str, float]]) -> None:
    # The HParams tab: the resolved config beside the final metrics (each baseline's as
    # baseline/<name>/<metric>), under hparams/ so they do not add a point to the val/ and test/ curves.
    final = {f"hparams/{name}": value for name, value in flat_metrics(metrics).items()}
    config = redact.resolved(cfg)  # credentials masked, as in config.yaml
    logger.log_hyperparams(config, metrics=final or None)
    text = json.dumps(redact.container(asdict(record)), indent=2, default=str)
    logger.experiment.add_text(MANIFEST, "\n".join("    " + line for line in text.splitlines()))  # as code
    logger.finalize("success")  # flush and close the event file
