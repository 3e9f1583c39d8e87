"""``run(cfg)`` trains, validates and tests; ``evaluate(cfg)`` tests a checkpoint. Orchestration only."""
from __future__ import annotations

import copy
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, open_dict

from factory.config import validate
from factory.config.validate import validate_key
from factory.rundir import manifest


@dataclass
class RunResult:
    """What a finished run returns: where it is and how it did."""

    run_dir: Path
    status: str
    metrics: dict[str, dict[str, float]]
    best_checkpoint: Path | None
    monitored_value: float | None
    is_rank_zero: bool = True  # False in the worker processes of a multi-process run

    @classmethod
    def from_run_dir(cls, run_dir: str | Path) -> "RunResult":
        """Read a finished run back from its directory (``run.json`` and ``metrics.json``)."""
        import json

        run_dir = Path(run_dir)
        record = manifest.load_record(run_dir)
        metrics_file = run_dir / manifest.METRICS
        metrics = json.loads(metrics_file.read_text()) if metrics_file.exists() else {}
        best = record.best_checkpoint
        return cls(run_dir, record.status, metrics, Path(best) if best else None,
                   (record.monitor or {}).get("best"))

    def load_model(self):
        """The trained model (best checkpoint, else last), in eval mode on the CPU: a ``SupervisedModel``
        or a ``LanguageModel`` (``factory.models.load_model``)."""
        from factory.models import load_model
        from factory.rundir.checkpoints import judged_checkpoint

        return load_model(judged_checkpoint(self.run_dir, self.best_checkpoint))


def run(cfg: DictConfig) -> RunResult:
    """Train, validate and test the model ``cfg`` describes; write its run directory.

    The steps: set up (data, model, trainer), fit, validate and test, describe the run
    (``metrics.json``, ``run.json`` final), then the config's after-run hooks
    (``after_run:``, ``factory.training.hooks``: trackers, reports), whose failures
    never turn a recorded run failed.

    Args:
        cfg: a composed ``train`` config (``factory.compose("train", [...])`` or the CLI's).

    Returns:
        The run's directory, final metrics and best checkpoint.

    Raises:
        ConfigError, DataError: bad input, named in one line; the run is marked failed.
    """
    validate(cfg, root="train")  # the one check of the config (scripts/train.py leaves it here), before torch
    cfg = pin_run_dir(cfg)

    import pytorch_lightning  # noqa: F401: before the run's logging set-up, so Lightning keeps its own handler

    from factory.training.output import run_output

    with run_output(cfg) as output:  # epochs on the console; train.log the rest
        return _run(cfg, output)


def _run(cfg: DictConfig, output) -> RunResult:
    """``run``'s steps, inside the run's console set-up (``factory.training.output.RunOutput``)."""
    import pytorch_lightning as pl

    from factory.training.components import build_trainer
    from factory.training.context import RunContext

    context = RunContext.begin(cfg)
    try:
        pl.seed_everything(cfg.seed, workers=True, verbose=False)
        if cfg.data.get("cv_folds"):  # a model per fold, each fitted by its own Trainer; this one carries the run
            from factory.training.cross_validation import cross_validate

            context.trainer = trainer = build_trainer(cfg, context.run_dir, output.verbose, output.progress_bar)
            metrics, best = cross_validate(cfg, context, functools.partial(_fit_fold, output=output))
        else:
            datamodule, model = _data_and_model(cfg)
            context.trainer = trainer = build_trainer(cfg, context.run_dir, output.verbose, output.progress_bar)
            output.adopt_loggers()  # the strategy's library (DeepSpeed) may have brought its own logger
            resume_from = context.resume_from()
            context.set_up(datamodule)
            if cfg.train:
                _fit(trainer, model, datamodule, resume_from)
            metrics, best = _validate_and_test(cfg, trainer, model, datamodule)
        status = context.finish(metrics, best)
        context.after_run(metrics)
        return RunResult(context.run_dir, status, metrics, Path(best) if best else None,
                         context.record.monitor["best"], is_rank_zero=trainer.is_global_zero)
    except BaseException as error:
        context.fail(error)
        context.after_run(error=error)
        raise
    finally:
        context.close()


def _fit_fold(cfg: DictConfig, run_dir: Path, output):
    """One fold of a cross-validated run (``factory.training.cross_validation``), trained in ``run_dir``
    from the run's seed: its metrics by section, best checkpoint and DataModule."""
    import pytorch_lightning as pl

    from factory.training.components import build_trainer

    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule, model = _data_and_model(cfg)
    trainer = build_trainer(cfg, run_dir, output.verbose, output.progress_bar)
    _fit(trainer, model, datamodule, None)
    metrics, best = _validate_and_test(cfg, trainer, model, datamodule)
    return metrics, best, datamodule


def _data_and_model(cfg: DictConfig):
    """The DataModule, set up for fit, and the model built for its input."""
    from factory.training import baselines, evaluation
    from factory.config.instantiate import build

    datamodule = build(cfg.data, "data")
    datamodule.setup("fit")
    baselines.check(cfg.get("baseline"), datamodule.input_spec.task)  # the task is known from here: before any fit
    evaluation.record_in_checkpoints(datamodule, cfg)  # a checkpoint copied away still knows its data
    model = build(cfg.model, "model", spec=datamodule.input_spec.to_dict())
    if cfg.train:  # will the strategy fit the model in memory? (plan.check=false skips)
        _check_monitor(cfg, model)
        from factory.distributed.planner import check_fits

        check_fits(cfg, datamodule.input_spec, datamodule.batch_size)
    return datamodule, model


def _check_monitor(cfg: DictConfig, model) -> None:
    """A metric the model never logs would fail after the first epoch in Lightning's words: say it now."""
    names = getattr(model, "monitorable_metrics", None)  # a model of the user's own may not say
    if names is None or cfg.monitor.metric in names():
        return
    from factory.errors import ConfigError

    raise ConfigError(f"monitor.metric: {cfg.monitor.metric!r} is not logged by this {model.task} model; "
                      f"choose one of {', '.join(names())}")


def _validate_and_test(cfg: DictConfig, trainer, model, datamodule) -> tuple[dict[str, dict[str, float]], str | None]:
    """Metrics by section (``val``, ``test``, ``baseline``: ``{name: metrics}``) of the best checkpoint, and its path."""
    from factory.rundir.baselines import SECTION as BASELINE_SECTION
    from factory.training import baselines
    from factory.training.components import checkpoint_callback

    checkpoints = checkpoint_callback(trainer)
    best = checkpoints.best_model_path if checkpoints and checkpoints.best_model_path else None
    metrics = {"val": _first(trainer.validate(model, datamodule=datamodule, ckpt_path=best, verbose=False))}
    if cfg.test:
        metrics["test"] = _first(trainer.test(model, datamodule=datamodule, ckpt_path=best, verbose=False))
    found = baselines.for_run(datamodule, cfg.get("baseline"), seed=cfg.seed)  # a language model: its n-grams
    if found:
        metrics[BASELINE_SECTION] = found
    return metrics, best


def evaluate(cfg: DictConfig) -> dict[str, float]:
    """Test a checkpoint on its run's own test split, or on ``cfg.data`` when one is given.

    Without ``data``, the data config and seed are the checkpoint's run's (``config.yaml``
    beside ``checkpoints/``, or a registry version's ``meta.json``): the metrics equal the
    run's test metrics. The preprocessing is always the one fitted in training. Nothing
    is written until the checkpoint and the data have loaded (``factory.training.evaluation``).

    Returns:
        Test metrics (``test/...``), also written to ``metrics.json`` in a new run directory.

    Raises:
        ConfigError: ``ckpt_path`` is missing or not a factory checkpoint, or ``data``
            splits the run's own table differently.
    """
    from factory.training import evaluation

    cfg, trained = evaluation.settle(cfg)
    validate(cfg, root="evaluate")

    from factory.rundir import checkpoints as ckpts
    from factory.training import restore
    from factory.config.instantiate import build
    from factory.models import load_model

    checkpoint_path = ckpts.as_file(cfg.ckpt_path)  # a ZeRO directory: its consolidation, cached outside the run
    checkpoint = restore.load_factory_checkpoint(checkpoint_path)
    if trained.data is None:  # no run directory or registry version around it: ask the checkpoint
        cfg, trained = evaluation.adopt(cfg, evaluation.from_checkpoint(checkpoint, cfg.ckpt_path))
        validate_key(cfg, "data", root="evaluate")  # only the data is new: the rest passed above
    datamodule = restore.restore_datamodule(cfg.data, checkpoint)
    evaluation.check_split(datamodule, trained, cfg.ckpt_path, own_data=cfg.data == trained.data)
    model = load_model(checkpoint_path)
    evaluation.check_context(datamodule, model)  # a language model: windows no longer than its context

    with open_dict(cfg):  # the run directory: created only now that the inputs are known good
        cfg.paths.run_dir = str(Path(cfg.paths.run_dir).resolve())
    run_dir = Path(cfg.paths.run_dir)
    if (run_dir / manifest.MANIFEST).exists():
        from factory.errors import ConfigError

        raise ConfigError(f"paths.run_dir: {run_dir} already holds a run; an evaluation writes a new one")
    record = manifest.RunRecord.begin(run_dir, cfg.task_name, cfg.seed, cfg.tags)
    run_dir.mkdir(parents=True, exist_ok=True)
    manifest.write_config(run_dir, cfg)
    record.save()
    try:
        from factory.rundir.layout import EVALUATE_LOG
        from factory.data.curation.chain import curation_record
        from factory.training.output import run_output

        with run_output(cfg, log_name=EVALUATE_LOG, progress_bar=False):  # the table only; the log the rest
            trainer = build(cfg.trainer, "trainer", logger=False, callbacks=[], default_root_dir=str(run_dir),
                            enable_progress_bar=False)
            metrics = _first(trainer.test(model, datamodule=datamodule, verbose=False))
        record.data = {"source": datamodule.source_name, "fingerprint": datamodule.fingerprint,
                       "rows": datamodule.split_sizes, **curation_record(datamodule)}
        record.best_checkpoint = str(cfg.ckpt_path)
        record.checkpoint_format = ckpts.checkpoint_format(cfg.ckpt_path)
        manifest.save_metrics(run_dir, {"test": metrics, "checkpoint": str(cfg.ckpt_path)})
        record.finish("completed")
        return metrics
    except BaseException as error:
        record.finish("failed", error)
        raise


def pin_run_dir(cfg: DictConfig) -> DictConfig:
    """Resolve ``paths.run_dir`` once and fix it in a copy of ``cfg``.

    Each call decides afresh (a new id, ``FACTORY_RUN_ID``, or ``resume=auto``'s choice):
    training one composed config twice makes two runs. Under the CLI, Hydra has already
    created the directory: use that one.

    Raises:
        ConfigError: ``FACTORY_RUN_ID`` is not a name, or names a finished run or another
            config's run (``factory.rundir.guard.refuse_taken``).
    """
    from hydra.core.hydra_config import HydraConfig
    from omegaconf.errors import OmegaConfBaseException

    from factory.config.resolvers import factory_error, forget_run_id

    cfg = copy.deepcopy(cfg)
    if HydraConfig.initialized():
        run_dir = HydraConfig.get().runtime.output_dir
    else:
        forget_run_id(cfg)  # the copy carries the id cached at compose time, or by an earlier run
        try:
            run_dir = cfg.paths.run_dir
        except OmegaConfBaseException as e:
            raise factory_error(e) or e from None
    with open_dict(cfg):
        cfg.paths.run_dir = str(Path(run_dir).resolve())
    return cfg


def _fit(trainer, model, datamodule, ckpt_path: str | None) -> None:
    """``trainer.fit``; a fit that cannot train, or trained nothing, is bad input, never a result."""
    from lightning_fabric.utilities.exceptions import MisconfigurationException

    from factory.errors import ConfigError

    try:
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
    except MisconfigurationException as e:  # Lightning's check of trainer.* against the data
        raise ConfigError(f"trainer: {' '.join(str(e).split())}") from e
    if trainer.global_step == 0:  # untrained weights: their metrics must not read as a completed run
        raise ConfigError("trainer: the fit made no optimizer step, so nothing was trained "
                          "(check trainer.max_epochs, trainer.max_steps, trainer.limit_train_batches)")


def _first(results: list[dict[str, Any]]) -> dict[str, float]:
    return {k: float(v) for k, v in (results[0] if results else {}).items()}
