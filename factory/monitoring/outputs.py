"""What a monitoring run leaves behind: ``monitor.json`` (every figure) and ``monitor.prom``.

Layout (``conf/monitor.yaml``'s ``output_dir``, ``outputs/monitor`` by default)::

    <output_dir>/<model name>/<YYYY-MM-DD_HH-MM-SS>_<6 hex>/
        monitor.json     strict JSON: model, window, rows, versions seen, thresholds, every figure, alerts
        monitor.prom     the figures as Prometheus gauges (node_exporter's textfile collector format)

and, for a served model, a copy of the gauges at ``<serving_dir>/<model>/monitoring/drift.prom``
(``factory.serving.request_log_files.monitoring_file``), which the server's ``/metrics`` appends.
A run directory is created new (never reused) and each file is written atomically.

Gauges, each labelled with ``model`` (and ``version``: the registered version profiled against):

- ``factory_monitor_rows``, ``factory_monitor_alerts``, ``factory_monitor_last_run_timestamp_seconds``
- ``factory_monitor_alert{check,subject,figure}``: 1 per alert fired
- ``factory_monitor_feature_<figure>{feature}``: each numeric figure of each feature (``psi``,
  ``missing_rate``, ...); ``factory_monitor_drift_detected{feature}``: 0/1
- ``factory_monitor_score_<figure>``, ``factory_monitor_score_drift_detected``
- ``factory_monitor_quality_<metric>``: AUROC, PR-AUC, ECE, ... on the labelled rows
- ``factory_monitor_fairness_<difference>{sensitive}`` and
  ``factory_monitor_fairness_group_<rate>{sensitive,group}`` (selection rate, TPR, FPR)
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from factory import files
from factory.errors import FactoryError

MONITOR_JSON = "monitor.json"
MONITOR_PROM = "monitor.prom"
PREFIX = "factory_monitor"
_NAME = re.compile(r"[^a-zA-Z0-9_]")


def new_run_dir(output_dir: str | os.PathLike, model_name: str) -> Path:
    """A new, empty ``<output_dir>/<model>/<run id>/`` (an existing one is never reused)."""
    from factory.rundir.layout import new_run_id

    parent = Path(output_dir) / model_name
    parent.mkdir(parents=True, exist_ok=True)
    for _ in range(10):
        path = parent / new_run_id()
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise FactoryError(f"{parent}: could not create a new run directory")


def write_monitor_json(run_dir: Path, record: dict) -> Path:
    """``record`` as ``<run_dir>/monitor.json`` (strict JSON, atomic; an existing file is never replaced)."""
    path = Path(run_dir) / MONITOR_JSON
    if path.exists():
        raise FactoryError(f"{path} exists: a monitoring run never overwrites another's figures")
    return files.write_json(path, record)


def latest_monitor_json(output_dir: str | os.PathLike, model_name: str) -> Path:
    """The newest ``monitor.json`` of ``model_name`` under ``output_dir`` (run ids sort by start time).

    Raises:
        FactoryError: none there.
    """
    found = sorted((Path(output_dir) / model_name).glob(f"*/{MONITOR_JSON}"))
    if not found:
        raise FactoryError(f"no {MONITOR_JSON} for model {model_name!r} under {output_dir} "
                           f"(run scripts/monitor.py model={model_name}@production first)")
    return found[-1]


def histograms(profile, drift: dict) -> dict:
    """Reference and current counts per feature (and the score) on the profile's bins, for the report.

    Numerics: ``edges`` (inner edges; the outer bins are open), ``reference`` and ``current`` counts.
    Categoricals: the drift figures' ``levels`` (the profile's most frequent ones plus one ``(other)``
    bucket: the rest, unseen levels included, as the drift tests compare them), the profile's
    ``reference`` counts and the window's ``current`` counts in them.
    """
    out = {}
    entries = {**profile.features, "score": profile.score}
    results = {**drift["features"], "score": drift.get("score") or {}}
    for name, entry in entries.items():
        figures = results.get(name) or {}
        if figures.get("absent"):
            continue
        if entry["kind"] == "numeric":
            out[name] = {"kind": "numeric", "edges": entry["edges"], "reference": entry["counts"],
                         "current": figures.get("counts")}
            continue
        reference, levels = entry["counts"], figures["levels"][:-1]
        out[name] = {"kind": "categorical", "levels": figures["levels"],
                     "reference": [reference[k] for k in levels]
                     + [sum(reference.values()) - sum(reference[k] for k in levels) + int(entry.get("other", 0))],
                     "current": figures["counts"]}
    return out


def _metric_name(*parts: str) -> str:
    return _NAME.sub("_", "_".join((PREFIX, *parts)))


def _number(value) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)) and value == value:
        return float(value)
    return None


class _Gauges:
    """Gauges created on first use, all with the ``model``/``version`` labels first."""

    def __init__(self, base: dict):
        from prometheus_client import CollectorRegistry

        self.registry = CollectorRegistry()
        self.base = base
        self._gauges: dict = {}

    def set(self, name: str, doc: str, value, **labels) -> None:
        from prometheus_client import Gauge

        number = _number(value)
        if number is None:
            return
        names = [*self.base, *labels]
        gauge = self._gauges.get(name)
        if gauge is None:
            gauge = self._gauges[name] = Gauge(name, doc, names, registry=self.registry)
        gauge.labels(*self.base.values(), *(str(v) for v in labels.values())).set(number)


def prometheus_registry(record: dict):
    """The monitoring figures of ``record`` (``monitor.json``'s content) as a prometheus_client registry."""
    model = record.get("model") or {}
    g = _Gauges({"model": str(model.get("name", "")), "version": str(model.get("version", ""))})
    g.set(_metric_name("rows"), "Rows monitored in the window.", record.get("rows"))
    g.set(_metric_name("alerts"), "Alerts fired by the last monitoring run.", len(record.get("alerts") or []))
    g.set(_metric_name("last_run_timestamp_seconds"), "When the last monitoring run finished (Unix time).",
          record.get("finished_at_unix"))
    for a in record.get("alerts") or []:
        g.set(_metric_name("alert"), "1 for each alert fired (check, subject, figure).", 1,
              check=a["check"], subject=a["subject"], figure=a["figure"])
    drift = record.get("drift") or {}
    for feature, figures in (drift.get("features") or {}).items():
        g.set(_metric_name("drift_detected"), "1 if the feature drifted from the reference profile.",
              bool(figures.get("drifted")), feature=feature)
        for key, value in figures.items():
            if key != "drifted" and not isinstance(value, bool):
                g.set(_metric_name("feature", key), f"Drift figure {key} per feature.", value, feature=feature)
    score = drift.get("score") or {}
    if score:
        g.set(_metric_name("score_drift_detected"), "1 if the score distribution drifted.", bool(score.get("drifted")))
        for key, value in score.items():
            if key != "drifted" and not isinstance(value, bool):
                g.set(_metric_name("score", key), f"Score drift figure {key}.", value)
    quality = (record.get("quality") or {}).get("overall") or {}
    for key, value in quality.items():
        if not isinstance(value, bool):
            g.set(_metric_name("quality", key), f"Quality figure {key} on the window's labelled rows.", value)
    fairness = record.get("fairness") or {}
    sensitive = str(fairness.get("sensitive") or "")
    for key in ("demographic_parity_difference", "equalized_odds_difference"):
        g.set(_metric_name("fairness", key), f"Fairness: {key} over judged groups.", fairness.get(key),
              sensitive=sensitive)
    for group, figures in (fairness.get("groups") or {}).items():
        for key in ("selection_rate", "tpr", "fpr"):
            g.set(_metric_name("fairness_group", key), f"Fairness: {key} per group.", figures.get(key),
                  sensitive=sensitive, group=group)
    return g.registry


def write_prom(path: str | os.PathLike, record: dict) -> Path:
    """``record``'s gauges in Prometheus' text format at ``path`` (atomic: prometheus_client's
    ``write_to_textfile`` writes a temp file beside it and renames)."""
    from prometheus_client import write_to_textfile

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_to_textfile(str(path), prometheus_registry(record))
    return path
