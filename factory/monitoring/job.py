"""A monitoring run (``scripts/monitor.py``): a window of traffic against a registered model's profile.

    python scripts/monitor.py model=fraud_detection@production window=last_24h
    python scripts/monitor.py model=fraud_detection@production input='scored/*.parquet' labels=labels.csv

Steps: resolve the model version and read its reference profile (``profile.load_profile``);
stream the window (the request log, ``input`` files or a ``data`` config's table, scored by
the model when it has no ``score`` column) through ``DriftMonitor``, keeping only the few
columns of the labelled rows quality needs, and counting rows per (group, prediction, label)
for fairness (``fairness_counts``); join the labels (``quality``); fairness by the sensitive
column (``fairness``: selection rates over every row, TPR/FPR over the labelled ones); evaluate the alerts (``alerts``); write ``monitor.json`` and
``monitor.prom`` (``outputs``) and, for the request log, the server's ``drift.prom``.

Exit codes (``scripts/monitor.py``): 0 no alert, 3 (``EXIT_ALERT``) an alert fired, 2 bad input.
"""
from __future__ import annotations

import itertools
import time
from collections import Counter
from pathlib import Path

from factory import files
from factory.errors import ConfigError, DataError
from factory.monitoring.alerts import CHECKS, evaluate

#: The exit status of a run in which an alert fired (cron, CI and schedulers see it).
EXIT_ALERT = 3
#: The request log's default window; input files and data configs default to all of their rows.
DEFAULT_LOG_WINDOW = "last_24h"
#: The stage whose drift the server's /metrics shows (``drift.prom``): ``conf/serve.yaml`` names no
#: default model, and serving ``NAME@production`` is the convention (README, docs/serving.md).
SERVED_STAGE = "production"


def run(cfg) -> dict:
    """Monitor as ``conf/monitor.yaml`` says; write the outputs; return the record (``monitor.json``'s content).

    Raises:
        ConfigError: a bad key or an unknown check.
        FactoryError: an unknown model, no profile, an empty window, a labels file lacking a column,
            a sensitive column in neither the window nor the labels (one line each).
    """
    from omegaconf import OmegaConf

    from factory import registry
    from factory.config.validate import validate
    from factory.monitoring import outputs

    validate(cfg, root="monitor")
    started, clock = files.utc_stamp(), time.perf_counter()
    thresholds = OmegaConf.to_container(cfg.monitor, resolve=True)
    checks = _checks(thresholds["checks"])
    version = registry.get(cfg.model, cfg.registry)
    profile = _profile(version)
    meta = profile.meta
    sensitive = (cfg.sensitive or thresholds["fairness"].get("sensitive")) if "fairness" in checks else None
    labels = None
    if cfg.labels and ("quality" in checks or sensitive):
        labels = _load_labels(cfg.labels, sensitive)  # before the window is read: a missing column is one line, at once
    source, batches, window = _source(cfg, version)
    first = next(batches, None)  # its schema (every file's, unified): a missing column is named before the scan
    if sensitive and first is not None:
        _require_sensitive(sensitive, first.schema.names, labels)
    batches = itertools.chain([first] if first is not None else [], batches)

    from factory.monitoring.drift import DriftMonitor

    drift_thresholds = {k: v for k, v in thresholds["drift"].items() if k not in ("max_drifted_features", "show_unseen")}
    monitor = DriftMonitor(profile, drift_thresholds, seed=int(cfg.seed),
                           show_unseen=int(thresholds["drift"].get("show_unseen") or 0))
    target = meta.get("target")
    keep = {"request_id", "row", "time", "version", "score", "prediction", sensitive, target} - {None}
    kept, versions = [], Counter()
    labelled = _labelled_rows(labels)  # with labels, only labelled rows are kept: memory follows the labels
    fairness = None
    if sensitive:
        from factory.monitoring.fairness_counts import FairnessCounts

        fairness = FairnessCounts(sensitive, labels, target)  # rows per (group, prediction, label): bounded
    for batch in batches:
        monitor.update(batch)
        versions.update(_versions(batch, version.name))
        names = batch.schema.names
        if "quality" in checks and (labels is not None or target in names):  # labelled rows (or files carrying labels)
            kept.append(labelled(batch.select([c for c in names if c in keep or c.startswith("prob_")])))
        if fairness is not None:
            fairness.update(batch)
    drift = monitor.result()
    if not drift["rows"]:
        raise DataError(f"{source['given']}: no rows in window {window['given']!r} "
                        f"({window['start'] or 'open'} .. {window['end'] or 'open'})")
    table = _table(kept)
    figures = {"drift": drift}
    if "quality" in checks:
        figures["quality"] = _quality(table, labels, target, meta, version, thresholds["quality"], cfg)
    if fairness is not None:
        positive = meta.get("positive_label")
        figures["fairness"] = {"sensitive": sensitive, **fairness.figures(
            positive_label=1 if positive is None else positive,
            min_group_size=int(thresholds["fairness"]["min_group_size"]))}
    alerts = evaluate(figures, thresholds, checks)
    run_dir = outputs.new_run_dir(cfg.output_dir, version.name)
    record = {
        "run_id": run_dir.name, "run_dir": str(run_dir), "started_at": started, "finished_at": files.utc_stamp(),
        "finished_at_unix": time.time(), "seconds": round(time.perf_counter() - clock, 3),
        "model": {"ref": str(cfg.model), "name": version.name, "version": version.version,
                  "stage": version.stage, "run_id": version.run_id, "task": meta.get("task")},
        "profile": str(version.path), "source": source, "window": window, "rows": drift["rows"],
        "versions_seen": dict(sorted(versions.items(), key=lambda kv: (not kv[0].isdigit(), len(kv[0]), kv[0]))),
        "checks": checks, "thresholds": thresholds,
        "drift": drift, "histograms": outputs.histograms(profile, drift),
        "quality": figures.get("quality"), "fairness": figures.get("fairness"),
        "alerts": alerts, "exit_code": EXIT_ALERT if alerts else 0,
    }
    record["outputs"] = {"json": str(run_dir / outputs.MONITOR_JSON), "prom": str(run_dir / outputs.MONITOR_PROM)}
    if source["kind"] == "request_log":  # a served model's latest figures: the server's /metrics shows them
        from factory.serving.request_log_files import monitoring_file

        skipped = _not_served(version, record["versions_seen"])
        if skipped:
            record["outputs"]["server_prom_skipped"] = skipped
        else:
            record["outputs"]["server_prom"] = str(monitoring_file(cfg.serving_dir, version.name))
    outputs.write_prom(record["outputs"]["prom"], record)
    outputs.write_monitor_json(run_dir, record)  # last: its presence says the run completed
    if "server_prom" in record["outputs"]:
        outputs.write_prom(record["outputs"]["server_prom"], record)
    return record


def _not_served(version, versions_seen: dict) -> str | None:
    """Why the server's ``drift.prom`` (one per model name) is not written for this run, or None.

    Written only when the monitored version is the one now at ``SERVED_STAGE`` and every row of
    the window is from it: a ``model=NAME@staging`` run, or a window mixing versions (a promotion
    within it, a staging server logging to the same directory), would overwrite the served
    version's gauges with other figures. ``monitor.json`` and ``monitor.prom`` are written anyway.
    """
    if version.stage != SERVED_STAGE:
        return f"v{version.version} is at stage {version.stage!r}, not the served {SERVED_STAGE!r}"
    others = sorted(v for v in versions_seen if v != str(version.version))
    if others:
        return f"the window holds rows of other version(s) than v{version.version}: {', '.join(others)}"
    return None


def _profile(version):
    """The version's reference profile: its registered copy, else (registered before profiles were
    copied) its run directory's."""
    from factory.errors import FactoryError
    from factory.monitoring.profile import load_profile

    try:
        return load_profile(version.path)
    except FactoryError:
        run_dir = Path(version.metadata().get("run_dir") or version.path)
        if run_dir == version.path or not run_dir.is_dir():
            raise
        return load_profile(run_dir)


def _load_labels(path, sensitive: str | None):
    """The labels file, with the sensitive column when the file holds it (the log may exclude it)."""
    from factory.monitoring.labels import load_labels

    if sensitive:
        try:
            return load_labels(path, columns=[sensitive])
        except DataError:  # not in this file: the window has it, or the fairness step names it missing
            pass
    return load_labels(path)


def _labelled_rows(labels):
    """A filter of a batch to the rows whose request id the labels name (all rows without labels)."""
    if labels is None:
        return lambda batch: batch
    import pyarrow.compute as pc

    ids = pc.unique(labels["request_id"])
    return lambda batch: (batch.filter(pc.is_in(batch.column(batch.schema.get_field_index("request_id")), value_set=ids))
                          if "request_id" in batch.schema.names else batch)


def _require_sensitive(sensitive: str, window_columns, labels) -> None:
    """Raise DataError when the sensitive column is in neither the window's columns nor the labels."""
    if sensitive in window_columns or (labels is not None and sensitive in labels.column_names):
        return
    have = sorted(set(window_columns) | set(labels.column_names if labels is not None else []))
    raise DataError(f"sensitive={sensitive}: no such column in the window or the labels (columns: {have})")


def _checks(given) -> list[str]:
    unknown = [c for c in given if c not in CHECKS]
    if unknown:
        raise ConfigError(f"monitor.checks: unknown check(s) {unknown}; choose from {list(CHECKS)}")
    return [c for c in CHECKS if c in given]


def _source(cfg, version) -> tuple[dict, object, dict]:
    """``(what was read, the record batches, the window)`` for the request log, ``input`` or ``data``."""
    from omegaconf import OmegaConf

    from factory.monitoring.window import iter_batches, parse_window

    data = cfg.get("data")
    if cfg.input is not None and data is not None:
        raise ConfigError("input: give input=<file, glob or directory> or data=<config>, not both")
    if cfg.input is None and data is None:
        from factory.serving.request_log_files import log_dir

        where = log_dir(cfg.serving_dir, version.name)
        if not where.is_dir():
            raise DataError(f"no request log for model {version.name!r} at {where} (serve it with log.enabled=true, "
                            "or give input=<files> or data=<config>)")
        source, given = {"kind": "request_log", "given": str(where)}, str(where)
    elif cfg.input is not None:
        given = OmegaConf.to_container(cfg.input) if not isinstance(cfg.input, str) else cfg.input
        source = {"kind": "input", "given": given}
    else:
        source, given = {"kind": "data", "given": f"data={data.source.get('_target_', '')}"}, None
    text = cfg.window or (DEFAULT_LOG_WINDOW if source["kind"] == "request_log" else "all")
    start, end = parse_window(text)
    window = {"given": text, "start": start.isoformat() if start else None, "end": end.isoformat() if end else None}
    if source["kind"] == "data":
        from factory import redact
        from factory.data.governed import load_governed

        if start is not None or end is not None:
            raise ConfigError(f"window={text}: a data config's table has no request times; use window=all")
        source["config"] = redact.container(OmegaConf.to_container(data.source))
        # Access checked and the read audited; PII left to the Scorer, which applies the model's tags.
        table = load_governed(data, purpose="monitor", pii_columns={}).table
        batches = iter(table.to_batches(max_chunksize=int(cfg.batch_rows)))
    else:
        batches = iter_batches(given, start=start, end=end, batch_rows=int(cfg.batch_rows))
    return source, _scored(batches, cfg, version), window


def _scored(batches, cfg, version):
    """``batches`` with the model's ``prediction`` and ``score`` added where they lack ``score``
    (files and tables that were never scored), the model loaded on the first such batch."""
    scorer, start = None, 0
    for batch in batches:
        if "score" not in batch.schema.names:
            if scorer is None:
                from factory import registry
                from factory.serving.score import Scorer

                scorer = Scorer(registry.load(version.ref, cfg.registry, backend="onnx"))
            batch = scorer(batch, lambda r, s=start: f"row {s + r + 1}")
        start += batch.num_rows
        yield batch


def _versions(batch, model_name: str) -> dict:
    """Rows per model version in ``batch``: the log's ``version`` numbers, or a scored file's
    ``model_version`` refs (``fraud_detection@1``) as numbers when they name ``model_name``."""
    import pyarrow.compute as pc

    name = "version" if "version" in batch.schema.names else "model_version" if "model_version" in batch.schema.names else None
    if name is None:
        return {}
    counted = pc.value_counts(batch.column(batch.schema.get_field_index(name)))
    out: dict = {}
    for value, count in zip(counted.field("values").to_pylist(), counted.field("counts").to_pylist()):
        value = str(value)
        value = value.rpartition("@")[2] if value.rpartition("@")[0] == model_name else value
        out[value] = out.get(value, 0) + count
    return out


def _table(batches):
    import pyarrow as pa

    return pa.Table.from_batches(batches) if batches else None


def _validation(meta: dict, version) -> dict:
    """The model's validation figures by bare name (``auroc``), from the profile or the version's meta.json."""
    from factory.monitoring.quality import validation_figures

    flat = {k: v for k, v in (meta.get("val_metrics") or {}).items() if not isinstance(v, dict)}
    flat = flat or validation_figures(version.path)
    return {key.split("/", 1)[-1]: value for key, value in flat.items()
            if key.startswith("val/") or "/" not in key}


def _labelled(table, labels, target):
    """The window's labelled rows (``label`` column): joined to ``labels``, or the window's own target column."""
    from factory.monitoring.labels import join_labels

    if labels is not None:
        return join_labels(table if table is not None else [], labels)
    if table is not None and target in table.column_names:
        return table.rename_columns(["label" if c == target else c for c in table.column_names])
    return None


def _quality(table, labels, target, meta, version, limits, cfg) -> dict | None:
    from factory.monitoring.labels import join_counts
    from factory.monitoring.quality import quality_by_window, quality_figures

    joined = _labelled(table, labels, target)
    if joined is None:
        return None
    task, positive = meta.get("task") or "binary", meta.get("positive_label")
    probabilities = {c[len("prob_"):]: joined[c] for c in joined.column_names if c.startswith("prob_")} or None
    overall = quality_figures(joined["label"], joined["score"], joined["prediction"], task=task,
                              positive_label=positive, threshold=limits["threshold"], probabilities=probabilities)
    by_window = (quality_by_window(joined, limits["every"], task=task, positive_label=positive,
                                   threshold=limits["threshold"]) if "time" in joined.column_names else [])
    flat = {k: v for k, v in overall.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    return {"labels": str(cfg.labels) if cfg.labels else f"column {target}", "labelled_rows": joined.num_rows,
            "join": join_counts(joined) or None, "overall": overall, "figures": flat,
            "validation": _validation(meta, version), "by_window": by_window}


def retrain(record: dict, cfg) -> dict | None:
    """``on_alert=retrain``: run the retrain pipeline (``conf/pipeline/<pipeline>.yaml``) after an alert,
    and print its verdict; a failed pipeline prints its one line on stderr (the monitor's own outputs
    stand, and the exit status stays ``EXIT_ALERT``).

    Returns:
        The pipeline's record; None when no alert fired, ``on_alert`` is not ``retrain``, or it failed.
    """
    if not record["alerts"] or cfg.on_alert != "retrain":
        return None
    import sys

    from factory.config.compose import compose
    from factory.errors import FactoryError
    from factory.monitoring.pipeline import outside_hydra_app, run_pipeline
    from factory.monitoring.retrain_report import summary

    name = cfg.pipeline or record["model"]["name"]
    overrides = [f"pipeline={name}"] + ([f"registry={cfg.registry}"] if cfg.registry else [])
    try:
        with outside_hydra_app():  # compose() clears Hydra's global state, which this app reads after its task
            retrain_cfg = compose("retrain", overrides)
        done = run_pipeline(retrain_cfg)
    except FactoryError as e:
        print(f"error: on_alert=retrain pipeline={name}: {str(e).splitlines()[0] if str(e) else type(e).__name__}",
              file=sys.stderr)
        return None
    print(summary(done))
    return done
