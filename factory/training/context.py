"""One launch of a training run as the recipe moves through it: ``run.json`` filled step by step.

``RunContext`` holds the run directory, its record (``run.json``, new or continued by
``resume=auto``), the Trainer once built, and whether this process is rank zero (only
rank zero writes). ``factory.training.recipe.run`` calls it at each step: ``begin``,
``set_up``, ``finish`` or ``fail``, ``after_run``, ``close``. Rank zero measures the run's
energy from ``begin`` to ``finish``/``fail`` (``energy:``, ``factory.training.energy``): the
machine rank zero runs on, all of it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from factory import redact
from factory.rundir.layout import RUN_ID_ENV
from factory.rundir import manifest, resume
from factory.training import energy, run_lineage
from factory.training.hooks import AfterRun, call_after_run


@dataclass
class RunContext:
    cfg: DictConfig  # validated, ``paths.run_dir`` pinned (``recipe.pin_run_dir``)
    run_dir: Path
    attempt: resume.Attempt
    is_zero: bool
    previous_run_id: str | None  # FACTORY_RUN_ID before this run set it
    trainer: Any = None
    meter: energy.EnergyMeter | None = None  # rank zero's, while the run goes on
    energy_before: dict | None = None  # earlier launches' figures (resume=auto continues a run)
    lineage: Any = None  # rank zero's OpenLineage job (factory.training.run_lineage)

    @property
    def record(self) -> manifest.RunRecord:
        return self.attempt.record

    @classmethod
    def begin(cls, cfg: DictConfig) -> "RunContext":
        """Start (or with ``resume=auto`` continue) the run: ``run.json`` says running, ``config.yaml`` written."""
        from pytorch_lightning.utilities import rank_zero_only

        run_dir = Path(cfg.paths.run_dir)
        is_zero = rank_zero_only.rank == 0
        meter = energy.meter_for(cfg.get("energy")) if is_zero else None  # a bad energy.country stops here
        try:
            attempt = resume.begin(cfg, run_dir, is_zero)  # resume=auto: the unfinished run in run_dir, continued
            if is_zero:
                run_dir.mkdir(parents=True, exist_ok=True)
                manifest.write_config(run_dir, cfg)
                attempt.record.save()
        except BaseException:
            if meter is not None:
                meter.cancel()
            raise
        previous = os.environ.get(RUN_ID_ENV)
        os.environ[RUN_ID_ENV] = run_dir.name  # processes the strategy launches join this run
        lineage = run_lineage.start(attempt.record) if is_zero else None
        return cls(cfg, run_dir, attempt, is_zero, previous, meter=meter, energy_before=attempt.record.energy,
                   lineage=lineage)

    def resume_from(self) -> str | None:
        """The checkpoint fit continues from (resume=auto's, else ``ckpt_path``), checked against the strategy."""
        from factory.rundir import checkpoints as ckpts

        cfg = self.cfg
        found = self.attempt.checkpoint or ckpts.resolve_resume(
            cfg.ckpt_path, Path(cfg.paths.output_dir).resolve() / cfg.task_name, self.run_dir)
        ckpts.check_resume_format(found, _is_deepspeed(self.trainer))
        self.record.resumed_from = found
        return found

    def set_up(self, datamodule) -> None:
        """Record what the run trains on and how; hand the config to the trackers."""
        from factory.data.curation.chain import curation_record

        self.record.data = {"source": datamodule.source_name, "fingerprint": datamodule.fingerprint,
                            "rows": datamodule.split_sizes, **curation_record(datamodule)}
        tokenizer_json = getattr(datamodule, "tokenizer_json", None)  # a language model's data (TextDataModule)
        if tokenizer_json is not None:
            self.record.data["tokenizer_hash"] = datamodule.input_spec.tokenizer_hash
        self.record.strategy = {"name": _strategy_name(self.cfg), "world_size": self.trainer.world_size}
        if self.is_zero:
            if tokenizer_json is not None:
                from factory import files
                from factory.rundir.layout import TOKENIZER

                files.write_text(self.run_dir / TOKENIZER, tokenizer_json)
            self.record.save()
            if self.lineage is not None:
                run_lineage.data_ready(self.lineage, self.cfg, self.record, getattr(datamodule, "schema", None))
        with redact.argv():  # wandb opens here and records the command line
            for logger in self.trainer.loggers:
                logger.log_hyperparams(redact.resolved(self.cfg))  # credentials masked, as in config.yaml

    def finish(self, metrics: dict[str, dict[str, float]], best: str | None) -> str:
        """Record the result: ``metrics.json``, then ``run.json`` final. Returns the status.

        Raises:
            DataError: a metric is not finite (a NaN run is failed, never completed).
        """
        from factory.rundir import checkpoints as ckpts
        from factory.training.components import checkpoint_callback

        manifest.check_finite_metrics(metrics)
        record, monitor = self.record, self.cfg.monitor
        record.monitor = {"metric": monitor.metric, "mode": monitor.mode, "best": metrics["val"].get(monitor.metric)}
        record.best_checkpoint = best
        checkpoints = checkpoint_callback(self.trainer)
        last = checkpoints.last_model_path if checkpoints else None
        record.last_checkpoint = last or None
        record.checkpoint_format = ckpts.checkpoint_format(best or last or None)
        status = "pruned" if _pruned(self.trainer) else "completed"
        if self.is_zero:
            manifest.save_metrics(self.run_dir, metrics)
            resume.finish_history(self.run_dir)
            self._record_energy()
            record.finish(status)
            if self.lineage is not None:
                run_lineage.end(self.lineage, self.cfg, record)
        return status

    def fail(self, error: BaseException) -> None:
        """Record a run that raised: interrupted (checkpointed; resume=auto continues it) or failed."""
        from factory.training.components import checkpoint_callback
        from factory.training.fault_tolerance import Interrupted

        if not self.is_zero:
            return
        resume.finish_history(self.run_dir)
        record = self.record
        if isinstance(error, Interrupted):  # SIGTERM, SIGINT
            record.last_checkpoint = error.checkpoint
            kept = checkpoint_callback(self.trainer)
            record.best_checkpoint = (kept.best_model_path or None) if kept else None  # best so far
        self._record_energy()  # measured so far: a failed or interrupted run used energy too
        record.finish("interrupted" if isinstance(error, Interrupted) else "failed", error)
        if self.lineage is not None:
            run_lineage.end(self.lineage, self.cfg, record, error)

    def after_run(self, metrics: dict[str, dict[str, float]] | None = None, error: BaseException | None = None) -> None:
        """Call the config's after-run hooks (rank zero), now that ``run.json`` is final."""
        if self.is_zero:
            loggers = list(self.trainer.loggers) if self.trainer is not None else []
            call_after_run(AfterRun(self.cfg, self.run_dir, self.record, metrics or {}, loggers, error))

    def _record_energy(self) -> None:
        """Stop the meter; ``run.json``'s ``energy`` is this launch's figures added to earlier launches'."""
        if self.meter is not None:
            self.record.energy = energy.combine(self.energy_before, self.meter.stop())

    def close(self) -> None:
        """Release the run directory and restore ``FACTORY_RUN_ID``."""
        if self.meter is not None:
            self.meter.cancel()  # stopped already, unless the run ended before finish or fail
        self.attempt.close()
        if self.previous_run_id is None:
            os.environ.pop(RUN_ID_ENV, None)
        else:
            os.environ[RUN_ID_ENV] = self.previous_run_id


def _pruned(trainer) -> bool:
    """Whether an Optuna sweep's pruner stopped this run early (``factory.sweeps.trial``)."""
    return any(getattr(callback, "pruned_at", None) is not None for callback in trainer.callbacks)


def _is_deepspeed(trainer) -> bool:
    from pytorch_lightning.strategies import DeepSpeedStrategy

    return isinstance(trainer.strategy, DeepSpeedStrategy)


def _strategy_name(cfg: DictConfig) -> str:
    return str(cfg.strategy.get("_target_", "")).rsplit(".", 1)[-1]
