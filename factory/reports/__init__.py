"""Reports: parameterized notebooks executed with papermill, exported to HTML, indexed.

    spec = spec_from_file("run_report", parameters={"run_dir": "outputs/x/2026-..."})
    result = run_report(spec, "reports")        # reports/run_report/<timestamp>/report.{ipynb,html}

A report is declared in ``conf/report/<name>.yaml`` (``ReportConf``; also ``report/`` of
``$FACTORY_CONFIG_DIR``); ``scripts/report.py`` runs one, ``scripts/schedule.py`` runs those with
a ``schedule``, and a training run with ``report=<name>`` runs it on itself when it finishes
(``run_reports_after_training``). A run parameter ``latest:<task>`` names that task's newest
completed run, found when the report runs.
"""
from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from factory.reports.execute import ReportFailed, ReportResult, export_html, run_report
from factory.reports.kernel import KERNEL_NAME, ensure_kernel
from factory.reports.spec import ReportError, ReportSpec, available, compose_report, spec_from_file, to_spec

log = logging.getLogger(__name__)


def reports_dir(cfg: DictConfig) -> Path:
    """``cfg.reports_dir`` if set, else ``<paths.root_dir>/reports``."""
    if cfg.get("reports_dir"):
        return Path(cfg.reports_dir)
    return Path(cfg.paths.root_dir) / "reports" if cfg.get("paths") else Path("reports")


def after_run(run) -> None:
    """After-run hook (``after_run:`` in conf/train.yaml): a finished run's reports (``report=``, ``reports=``).

    ``run`` is a ``factory.training.hooks.AfterRun``. A failed or interrupted run gets none.
    """
    if not run.finished or not (run.cfg.get("report") or run.cfg.get("reports")):
        return
    try:
        run_reports_after_training(run.cfg, run.run_dir)  # each report's own failure is logged there
    except Exception as e:  # noqa: BLE001: e.g. a report that takes no run_dir
        log.error("reports on run %s: %s", run.run_dir.name, e)


def run_reports_after_training(cfg: DictConfig, run_dir: str | Path) -> list[ReportResult]:
    """Run the reports a training config asks for (``report=<name>``, ``reports=[...]``) on ``run_dir``.

    Each report's ``run_dir`` parameter is set to the finished run. A failing report is
    logged and recorded in the index; it does not fail the training run (its metrics
    and checkpoints are already written). Needs no Hydra global state, so it is safe
    inside ``scripts/train.py``'s Hydra app. In a trial of a ``-m`` sweep, sweep reports
    (a ``sweep_dir`` parameter and no ``run_dir``) wait for ``run_reports_after_sweep``.

    Returns:
        One result per report, in order.
    """
    from factory.config.runmode import in_sweep

    skip = in_sweep()
    return _run_requested(cfg, {"run_dir": str(run_dir)}, lambda sweep_report: not (skip and sweep_report),
                          trigger="training")


def run_reports_after_sweep(cfg: DictConfig, sweep_dir: str | Path) -> list[ReportResult]:
    """Run the sweep reports a ``-m`` sweep's config asks for (``report=sweep_report``) once, on
    ``sweep_dir``, when its last trial has finished. Failures are logged, as after training."""
    return _run_requested(cfg, {"sweep_dir": str(sweep_dir)}, lambda sweep_report: sweep_report, trigger="sweep")


def _run_requested(cfg: DictConfig, subject: dict[str, str], wanted, trigger: str) -> list[ReportResult]:
    """Build each requested report with ``subject`` as parameters, if ``wanted(is_sweep_report)``."""
    specs: list[ReportSpec] = []
    node = cfg.get("report")
    names = list(cfg.get("reports") or [])
    if isinstance(node, str):
        names.insert(0, node)
    elif isinstance(node, DictConfig) and wanted(_is_sweep_report(node.get("parameters") or {})):
        node = OmegaConf.merge(node, {"parameters": subject})
        root = OmegaConf.merge({k: cfg[k] for k in cfg.keys() if k not in ("report", "hydra")}, {"report": node})
        specs.append(to_spec(root.report))
    context = OmegaConf.create({k: cfg[k] for k in cfg.keys() if k != "hydra"})
    for name in names:
        if wanted(_is_sweep_report(spec_from_file(str(name), context=context).parameters)):
            specs.append(spec_from_file(str(name), context=context, parameters=subject))
    results = []
    for spec in specs:
        result = run_report(spec, reports_dir(cfg), trigger=trigger, check=False, energy=cfg.get("energy"))
        if result.error:
            log.error("report %s on %s failed: %s (%s)", spec.name, subject, result.error, result.ipynb)
        else:
            log.info("report %s: %s", spec.name, result.html or result.ipynb)
        results.append(result)
    return results


def _is_sweep_report(parameters) -> bool:
    return "sweep_dir" in parameters and "run_dir" not in parameters


__all__ = ["KERNEL_NAME", "ReportError", "ReportFailed", "ReportResult", "ReportSpec", "available",
           "compose_report", "ensure_kernel", "export_html", "reports_dir", "run_report",
           "run_reports_after_sweep", "run_reports_after_training", "spec_from_file", "to_spec"]
