"""Registering a run: its judged checkpoint copied in as one file, with the run's lineage.

The copy makes the registry independent of ``outputs/``: deleting a run directory
leaves every registered version loadable. A language model's tokenizer is copied too
(``factory.registry.language``), and no tabular profile.
"""
from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path

from factory import files
from factory.errors import FactoryError
from factory.registry import language
from factory.registry.store import CHECKPOINT, STAGING, ModelVersion, Registry, check_name


def register(registry: Registry, run: str | Path, name: str | None = None,
             root: str | Path | None = None) -> ModelVersion:
    """Register the best checkpoint of ``run`` as the next version of ``name``.

    Args:
        registry: where to register.
        run: a run directory, or a run id (or its unique suffix) under ``<root>/outputs``.
        name: the model name; default the run's ``task_name`` (the experiment).
        root: the directory holding ``outputs/``; default ``$FACTORY_ROOT``, else the cwd.

    Returns:
        The new version.

    Raises:
        FactoryError: no such run, a run whose status is not ``completed``, a missing
            checkpoint, or a bad name.
    """
    from factory.rundir import manifest
    from factory.rundir.catalog import find_run

    run_dir = find_run(run, root)
    try:
        record = manifest.load_record(run_dir)
    except (OSError, ValueError, TypeError) as e:
        raise FactoryError(f"run {run_dir}: unreadable {manifest.MANIFEST} ({e})") from None
    if record.status != "completed":
        why = f": {record.error.splitlines()[0]}" if record.error else (
            " (still running, or stopped without recording an end)" if record.status == "running" else "")
        raise FactoryError(f"run {record.run_id} has status {record.status!r}, not 'completed'{why}; "
                           "only completed runs can be registered")
    from factory.governance import lineage

    name = check_name(name or record.task_name)  # before any copying
    source = _judged_checkpoint(run_dir, record)
    staging_root = registry.root / STAGING
    staging_root.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(prefix=f"{record.run_id}.", dir=staging_root))
    staged.chmod(0o777 & ~files.current_umask())  # mkdtemp's 0700 would lock teammates out
    try:
        with lineage.job(f"register.{name}", inputs=[lineage.run(record.run_id), lineage.file(source)]) as event:
            # Copy (or consolidate) outside the lock: a large checkpoint must not stall other writers.
            _copy_checkpoint(source, staged / CHECKPOINT)
            metadata, metric = _describe(run_dir, record, source, staged / CHECKPOINT)
            if language.is_language_model(metadata["config"]):  # + tokenizer.json; no tabular profile
                metadata.update(language.describe(record.run_id, run_dir, staged / CHECKPOINT, staged,
                                                  metadata["metrics"]))
            else:
                profile = _copy_profile(run_dir, staged)
                if profile:
                    metadata["profile"] = profile
            version = registry.add(name, staged, metadata, metric)
            event.outputs.append(lineage.model_version(name, version.version, metadata["checkpoint"]["sha256"]))
        return version
    finally:
        shutil.rmtree(staged, ignore_errors=True)  # gone already when add() moved it in


def _judged_checkpoint(run_dir: Path, record) -> Path:
    """The run's best checkpoint (else its last, when it recorded no best), also when the directory
    was moved or copied (``factory.rundir.checkpoints.judged_candidates``)."""
    from factory.rundir import checkpoints

    found = checkpoints.judged_path(run_dir, record)
    if found is None:
        candidates = checkpoints.judged_candidates(run_dir, record)
        if not candidates:
            raise FactoryError(f"run {record.run_id} recorded no checkpoint; nothing to register")
        raise FactoryError(f"run {record.run_id}: checkpoint {candidates[0]} is missing; nothing to register")
    return found


def _copy_checkpoint(source: Path, target: Path) -> None:
    from factory.rundir import checkpoints

    if checkpoints.is_sharded(source):
        checkpoints.consolidate(source, target)  # ZeRO shards -> one fp32 file, no DeepSpeed to load
    else:
        shutil.copyfile(source, target)


def _copy_profile(run_dir: Path, staged: Path) -> dict | None:
    """Copy the run's reference profile files (``factory.monitoring.profile``) beside the checkpoint.

    Returns:
        ``meta.json``'s ``profile`` entry (per file: sha256, bytes; checked by ``load_profile``),
        or None when the run has no profile.
    """
    from factory.rundir.layout import PROFILE, PROFILE_SAMPLE

    if not (run_dir / PROFILE).is_file():
        return None
    described = {}
    for name in (PROFILE, PROFILE_SAMPLE):
        if (run_dir / name).is_file():
            shutil.copyfile(run_dir / name, staged / name)
            described[name] = {"sha256": sha256(staged / name), "bytes": (staged / name).stat().st_size}
    return {"files": described}


def _describe(run_dir: Path, record, source: Path, copied: Path) -> tuple[dict, dict]:
    """``meta.json``'s content and the index's key metric for a run."""
    from omegaconf import OmegaConf

    from factory.rundir import checkpoints
    from factory.rundir.catalog import flat_metrics, read_config, read_metrics
    from factory.rundir.cv import SECTION as CV_SECTION, cv_section

    run_metrics = read_metrics(run_dir)
    cv = cv_section(run_metrics)
    # A cross-validated run's checkpoint is its kept fold's model: the version gets that model's own
    # metrics; the mean and spread over the folds describe the procedure and go beside them.
    metrics = flat_metrics(cv["per_fold"][cv["kept_fold"]] if cv else run_metrics)
    config = OmegaConf.to_container(read_config(run_dir))
    monitor = record.monitor or {}
    metric_name = monitor.get("metric")
    metric = {"name": metric_name, "mode": monitor.get("mode"),
              "val": metrics.get(metric_name, monitor.get("best")) if metric_name else None,
              "test": metrics.get(f"test/{metric_name.split('/', 1)[-1]}") if metric_name else None}
    metadata = {
        "run_id": record.run_id, "run_dir": str(run_dir), "task_name": record.task_name,
        "run_started_at": record.started_at, "run_ended_at": record.ended_at,
        "metrics": metrics, "monitor": monitor, "data": record.data, "seed": record.seed,
        "tags": record.tags, "git": record.git, "versions": record.versions, "strategy": record.strategy,
        "command": record.command, "config": config,
        "checkpoint": {"file": CHECKPOINT, "sha256": sha256(copied), "bytes": copied.stat().st_size,
                       "source": str(source), "source_format": checkpoints.checkpoint_format(source)},
    }
    if cv:
        metadata[CV_SECTION] = {"folds": cv["folds"], "kept_fold": cv["kept_fold"],
                          "mean": flat_metrics(run_metrics), "std": flat_metrics(cv["std"])}
    return metadata, metric


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
