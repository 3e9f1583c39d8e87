"""Retrain and promote, as one auditable job: ``run_pipeline(cfg)`` (``scripts/retrain.py``).

Steps, each recorded in ``outputs/pipeline/<name>/<run id>/pipeline.json`` as it ends:

1. ``config``: compose the challenger's train config (``pipeline.train`` overrides); find the
   champion (``<model>@<stage>`` in the registry; none is allowed).
2. ``check_data``: load, validate and split the new data as training will (the data module:
   ``factory.data.validation``), fingerprint it; its drift against the champion's reference
   profile, as information, where ``factory.monitoring.drift`` and a profile exist.
3. ``train``: the challenger, a normal training run (``factory.training.recipe.run``), which must
   have trained on the very table step 2 checked (same fingerprint).
4. ``score``: register the challenger (unstaged), then score it and the champion through
   ``factory.registry.load(...).predict`` on the same holdout: the new data's test split, which
   neither trained on (rows the champion trained or validated on are dropped from it first).
5. ``fairness``: the challenger's (and, for comparison, the champion's) ``fairness_figures`` by
   the sensitive column, when one is configured.
6. ``decide``: ``factory.monitoring.gate.decide``; a promoted challenger goes to the stage, then the
   decision to the registry's audit log (``gate_promote`` / ``gate_keep``; a promotion that failed is
   audited ``gate_keep`` with ``promotion_failed`` and fails the step).

A failing step stops the job: the record says which step and why (``status: failed``), nothing is
promoted, and ``PipelineError`` (one line naming the step) is raised. A refused challenger stays
registered without a stage: the version the audit log's ``gate_keep`` line names.
"""
from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any, Iterator

from omegaconf import DictConfig, OmegaConf

from factory import files
from factory.errors import ConfigError, FactoryError

log = logging.getLogger(__name__)

RECORD = "pipeline.json"
STEPS = ("config", "check_data", "train", "score", "fairness", "decide")
REPORT = "champion_challenger"


class PipelineError(FactoryError):
    """A step of the pipeline failed; the message names it. The record holds the rest."""


def record_dir(cfg: DictConfig, run_id: str) -> Path:
    """``<paths.output_dir>/pipeline/<pipeline.name>/<run id>``."""
    return Path(cfg.paths.output_dir).absolute() / "pipeline" / str(cfg.pipeline.name) / run_id


def run_pipeline(cfg: DictConfig) -> dict:
    """Run the retrain-and-promote job ``cfg`` describes; return its record (``pipeline.json``).

    Args:
        cfg: a composed ``retrain`` config (``factory.compose("retrain", ["pipeline=fraud_detection"])``,
            or ``scripts/retrain.py``'s). Safe to call inside another Hydra app (a monitoring job
            triggered by an alert): the challenger's run gets its own run directory.

    Returns:
        The completed record: ``steps`` (each step's inputs and figures), ``decision``, ``champion``,
        ``challenger``.

    Raises:
        ConfigError: a bad retrain config, before anything is written.
        PipelineError: a step failed (the record, written, says which).
    """
    from factory.config import validate
    from factory.rundir.layout import fixed_run_id, new_run_id

    if OmegaConf.is_missing(cfg.pipeline, "model"):  # else pipeline.name's ${pipeline.model} answers first, obscurely
        raise ConfigError("pipeline.model: missing required value: name the registered model "
                          "(model=NAME, or pipeline=<a conf/pipeline file>)")
    validate(cfg, root="retrain")
    if cfg.pipeline.require_disjoint_holdout and not cfg.pipeline.exclude_champion_rows:
        raise ConfigError("pipeline.require_disjoint_holdout: true needs pipeline.exclude_champion_rows: true "
                          "(the overlap is never checked otherwise); set one of them")
    if cfg.pipeline.metric is not None:  # an explicit metric's direction is known now: a contradiction fails here
        _gate_metric(cfg.pipeline, None, None)
    run_id = fixed_run_id() or new_run_id()
    path = record_dir(cfg, run_id) / RECORD
    if path.exists():
        raise ConfigError(f"{path} exists: a pipeline record is never overwritten (give another FACTORY_RUN_ID)")
    pipeline = OmegaConf.to_container(cfg.pipeline, resolve=True)
    shown = {**pipeline, "train": _masked(pipeline["train"])}  # a password given as an override is not recorded
    record = {"pipeline": pipeline["name"], "run_id": run_id, "status": "running", "failed_step": None,
              "error": None, "started_at": files.utc_stamp(), "ended_at": None, "config": shown,
              "registry": str(_registry_root(cfg)), "champion": None, "challenger": None, "steps": {},
              "decision": None, "path": str(path)}
    job = _Job(cfg, pipeline, record, path)
    job.save()
    with outside_hydra_app():
        for name in STEPS:
            job.step(name)
    record.update(status="completed", ended_at=files.utc_stamp())
    job.save()
    if pipeline["report"]:
        _report(cfg, path)
    return record


class _Job:
    """One run of the pipeline: its config, record, and the objects steps hand on."""

    def __init__(self, cfg: DictConfig, pipeline: dict, record: dict, path: Path):
        self.cfg, self.pipeline, self.record, self.path = cfg, pipeline, record, path
        self.registry = _registry_root(cfg)
        self.state: dict[str, Any] = {}

    def save(self) -> None:
        files.write_json(self.path, self.record)

    def step(self, name: str) -> None:
        """Run step ``name``; record its figures, or its failure (then raise ``PipelineError``)."""
        self.record["steps"][name] = {"status": "running", "started_at": files.utc_stamp()}
        self.save()
        try:
            figures = getattr(self, f"_{name}")()
        except BaseException as e:
            why = _one_line(e)
            self.record["steps"][name].update(status="failed", error=why, ended_at=files.utc_stamp())
            self.record.update(status="failed", failed_step=name, error=why, ended_at=files.utc_stamp())
            self.save()
            if not isinstance(e, Exception):
                raise  # Ctrl-C, SIGTERM: recorded, then as they were
            raise PipelineError(f"retrain step {name} failed: {why} (record: {self.path})") from e
        self.record["steps"][name].update(status="completed", ended_at=files.utc_stamp(), **figures)
        self.save()

    def _config(self) -> dict:
        from factory.config import compose

        self.state["train_cfg"] = train_cfg = compose("train", self.pipeline["train"])
        monitor = train_cfg.monitor
        self.state["metric"] = _gate_metric(self.pipeline, monitor.metric, monitor.mode)
        from factory.registry.store import check_name

        check_name(self.pipeline["model"])  # a bad name fails here, not after training
        champion = _champion(self.registry, self.pipeline["model"], self.pipeline["stage"])
        self.state["champion"] = champion
        if champion is not None:
            meta = champion.metadata()
            self.record["champion"] = {"ref": champion.ref, "stage": champion.stage, "run_id": champion.run_id,
                                       "data": meta.get("data"), "registered_metric": champion.metric}
        limits = {name: limit for name, limit in self.pipeline["fairness"]["limits"].items() if limit is not None}
        if limits and not self.pipeline["fairness"]["sensitive"]:
            raise ConfigError("pipeline.fairness.limits are set but pipeline.fairness.sensitive names no column")
        from factory import redact

        return {"train_overrides": _masked(self.pipeline["train"]), "task_name": train_cfg.task_name,
                "data": redact.resolved(train_cfg.data), "metric": self.state["metric"],
                "champion": champion.ref if champion is not None else None}

    def _check_data(self) -> dict:
        from factory.config.instantiate import build

        datamodule = build(self.state["train_cfg"].data, "data")
        datamodule.setup("fit")  # load, validate (factory.data.validation), split: as the training run will
        self.state["datamodule"] = datamodule
        from factory.monitoring.gate import METRICS

        metric, task = self.state["metric"]["name"], datamodule.schema.task
        if metric not in METRICS[task]:  # found out now, not after training
            raise ConfigError(f"pipeline.metric: {metric!r} cannot be computed on the holdout of a {task} model "
                              f"(choose one of {', '.join(METRICS[task])})")
        figures = {"source": datamodule.source_name, "fingerprint": datamodule.fingerprint,
                   "rows": sum(datamodule.split_sizes.values()), "splits": dict(datamodule.split_sizes),
                   "task": datamodule.schema.task, "target": datamodule.schema.target}
        if self.pipeline["drift"]:
            figures["drift"] = _drift(self.state["champion"], datamodule)
        return figures

    def _train(self) -> dict:
        from factory.training.recipe import run

        result = run(self.state["train_cfg"])
        run_dir = Path(result.run_dir)
        self.record["challenger"] = {"run_id": run_dir.name, "run_dir": str(run_dir), "ref": None}
        if result.status != "completed":
            raise FactoryError(f"the challenger's run {run_dir} ended {result.status}")
        from factory.rundir import manifest

        trained_on = (manifest.load_record(run_dir).data or {}).get("fingerprint")
        checked = self.record["steps"]["check_data"]["fingerprint"]
        if trained_on != checked:
            raise FactoryError(f"the challenger trained on data {trained_on}, not the checked {checked}")
        return {"run_id": run_dir.name, "run_dir": str(run_dir), "monitored_value": result.monitored_value,
                "metrics": result.metrics}

    def _score(self) -> dict:
        from factory import registry

        challenger = registry.register(self.record["challenger"]["run_dir"], name=self.pipeline["model"],
                                       registry=self.registry)
        self.record["challenger"]["ref"] = challenger.ref
        self.state["challenger"] = challenger
        holdout, holdout_figures = self._holdout()
        from factory.monitoring.gate import holdout_metric

        metric, task = self.state["metric"]["name"], self.record["steps"]["check_data"]["task"]
        figures = {"holdout": holdout_figures, "metric": dict(self.state["metric"]), "challenger_ref": challenger.ref}
        frames = {"challenger": registry.load(challenger.ref, registry=self.registry).predict(holdout)}
        if self.state["champion"] is not None:
            frames["champion"] = registry.load(self.state["champion"].ref, registry=self.registry).predict(holdout)
        for role in ("champion", "challenger"):
            figures[role] = holdout_metric(frames[role], metric, task) if role in frames else None
        self.state["frames"] = frames
        return figures

    def _holdout(self):
        """The new data's test split, less the rows the champion trained or validated on."""
        holdout = self.state["datamodule"].split_table("test")
        figures = {"split": "test", "rows_in_split": holdout.num_rows, "removed_champion_rows": 0,
                   "champion_rows_checked": False, "note": None}
        champion = self.state["champion"]
        if champion is None:
            figures["note"] = "no champion"
        elif not self.pipeline["exclude_champion_rows"]:
            figures["note"] = "pipeline.exclude_champion_rows is false: overlap not checked"
        else:
            recorded = ((self.record["champion"] or {}).get("data") or {}).get("fingerprint")
            try:
                from factory import registry

                seen = registry.load(champion.ref, registry=self.registry).datamodule()
            except (FactoryError, OSError) as e:  # its data is gone (files moved, unreadable): say so, do not guess
                figures["note"] = f"the champion's training data could not be rebuilt: {_one_line(e)}"
            else:
                if seen.fingerprint != recorded:  # the files changed since (or no fingerprint was recorded)
                    figures["note"] = (f"the champion's data rebuilt from its config is {seen.fingerprint}, not the "
                                       f"{recorded} it trained on: its rows are not known, overlap not checked")
                else:
                    keep = _unseen(holdout, [seen.split_table("train"), seen.split_table("val")])
                    figures.update(champion_rows_checked=True,
                                   removed_champion_rows=int(holdout.num_rows - keep.sum()))
                    holdout = holdout.filter(keep)
        if holdout.num_rows == 0:
            raise FactoryError("the holdout is empty: every test row of the new data was in the champion's training data")
        figures["rows"] = holdout.num_rows
        return holdout, figures

    def _fairness(self) -> dict:
        spec = self.pipeline["fairness"]
        if not spec["sensitive"]:
            return {"skipped": "pipeline.fairness.sensitive names no column"}
        from factory.monitoring.fairness import fairness_figures

        figures = {"sensitive": spec["sensitive"], "limits": spec["limits"]}
        for role, frame in self.state["frames"].items():
            if spec["sensitive"] not in frame.columns:
                raise ConfigError(f"pipeline.fairness.sensitive: the holdout has no column {spec['sensitive']!r}")
            figures[role] = fairness_figures(frame[spec["sensitive"]].to_numpy(), frame["prediction"].to_numpy(),
                                             frame["target"].to_numpy(), positive_label=spec["positive_label"],
                                             min_group_size=spec["min_group_size"])
        return figures

    def _decide(self) -> dict:
        from factory import registry
        from factory.monitoring.gate import decide

        score, fairness = self.record["steps"]["score"], self.record["steps"]["fairness"]
        decision = decide(score["champion"], score["challenger"], mode=self.state["metric"]["mode"],
                          margin=self.pipeline["margin"], floor=self.pipeline["floor"],
                          fairness=fairness.get("challenger"), limits=self.pipeline["fairness"]["limits"],
                          metric=self.state["metric"]["name"], holdout=score["holdout"],
                          require_disjoint_holdout=self.pipeline["require_disjoint_holdout"])
        challenger, stage = self.state["challenger"], self.pipeline["stage"]
        decision.update(challenger=challenger.ref, champion=(self.record["champion"] or {}).get("ref"), stage=stage)
        details = {"pipeline": self.record["pipeline"], "run_id": self.record["run_id"], "record": str(self.path),
                   "champion": decision["champion"], "stage": stage, "metric": self.state["metric"]["name"],
                   "champion_value": score["champion"], "challenger_value": score["challenger"],
                   "reasons": decision["reasons"]}
        # Promote first, then audit the gate: the log never claims a promotion that did not happen.
        # A failed promotion is audited as gate_keep with the reason, and fails the step.
        failure = None
        if decision["promote"]:
            try:
                registry.promote(challenger.name, challenger.version, stage, registry=self.registry)
            except Exception as e:  # noqa: BLE001: audited below, then raised as the step's failure
                failure = e
                details["promotion_failed"] = _one_line(e)
        registry.log_gate(challenger.name, challenger.version, decision["promote"] and failure is None, details,
                          registry=self.registry)
        if failure is not None:
            raise failure
        self.record["decision"] = decision
        return {"promote": decision["promote"], "action": decision["action"]}


def _gate_metric(pipeline, monitor_metric, monitor_mode) -> dict:
    """``gate.gate_metric`` of the pipeline config; a contradiction is a ``ConfigError``."""
    from factory.monitoring.gate import gate_metric

    try:
        return gate_metric(pipeline["metric"], pipeline["mode"], monitor_metric, monitor_mode)
    except ValueError as e:
        raise ConfigError(str(e)) from None


def _registry_root(cfg: DictConfig) -> Path:
    from factory.registry import default_dir

    return Path(cfg.registry).absolute() if cfg.get("registry") else default_dir().absolute()


def _champion(root: Path, name: str, stage: str):
    """The newest version of ``name`` at ``stage``, or None (no such model, or none at the stage)."""
    from factory.registry import Registry

    staged = [v for v in Registry(root).versions() if v.name == name and v.stage == stage]
    return max(staged, key=lambda v: v.version) if staged else None


def _drift(champion, datamodule) -> dict:
    """The new data's drift against the champion's reference profile, as information: never fails the step."""
    if champion is None:
        return {"skipped": "no champion"}
    try:
        from factory.monitoring.drift import DriftMonitor
        from factory.monitoring.profile import load_profile
    except ImportError as e:
        return {"skipped": f"drift monitoring is not available ({e})"}
    try:
        monitor = DriftMonitor(load_profile(champion.path))
        for split in ("train", "val", "test"):
            for batch in datamodule.split_table(split).to_batches(65_536):
                monitor.update(batch)
        result = monitor.result()
    except Exception as e:  # noqa: BLE001: information only; the record says why it is missing
        return {"skipped": f"drift not measured: {_one_line(e)}"}
    return {"drifted": result.get("drifted", []), "rows": result.get("rows"), "features": result.get("features"),
            "score": result.get("score")}


def _unseen(holdout, seen_tables) -> "Any":
    """A boolean mask of ``holdout``'s rows that are in none of ``seen_tables`` (by the columns they share)."""
    import numpy as np
    import pandas as pd

    columns = [c for c in holdout.column_names if all(c in t.column_names for t in seen_tables)]

    def hashes(table):
        frame = table.select(columns).to_pandas()
        return pd.util.hash_pandas_object(frame.astype(str), index=False).to_numpy()

    seen = np.concatenate([hashes(t) for t in seen_tables]) if seen_tables else np.empty(0, dtype=np.uint64)
    return ~np.isin(hashes(holdout), seen)


def _report(cfg: DictConfig, path: Path) -> None:
    """Run the champion/challenger report on the record; a failing report is logged, never fails the job."""
    from factory.reports import run_report, spec_from_file

    try:
        result = run_report(spec_from_file(REPORT, parameters={"record": str(path)}), cfg.reports_dir,
                            trigger="pipeline", check=False)
    except FactoryError as e:
        log.error("report %s on %s: %s", REPORT, path, e)
        return
    if result.error:
        log.error("report %s on %s failed: %s (%s)", REPORT, path, result.error, result.ipynb)
    else:
        log.info("report %s: %s", REPORT, result.html or result.ipynb)


@contextlib.contextmanager
def outside_hydra_app() -> Iterator[None]:
    """Hide a running Hydra app (``scripts/retrain.py``'s, or a monitoring job's) from the steps.

    The challenger's training run takes its run directory from Hydra's job when one is running
    (``factory.training.recipe.pin_run_dir``): that would be the retrain job's directory. And
    ``factory.compose`` clears Hydra's global state, which the app reads after its task returns.
    """
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    singleton, global_hydra = HydraConfig.instance(), GlobalHydra.instance()
    config, hydra = singleton.cfg, global_hydra.hydra
    singleton.cfg = None
    try:
        yield
    finally:
        singleton.cfg, global_hydra.hydra = config, hydra


def _masked(overrides: list[str]) -> list[str]:
    """Train overrides as the record shows them: a credential's value (``data.source.password=...``) masked."""
    from factory import redact

    shown = []
    for override in overrides:
        key, sep, value = override.partition("=")
        shown.append(f"{key}={redact.MASK}" if sep and redact.is_secret_key(key.lstrip("+~")) else redact.text(override))
    return shown


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    first = text[0] if text else ""
    return first if isinstance(error, FactoryError) else f"{type(error).__name__}: {first}".rstrip(": ")
