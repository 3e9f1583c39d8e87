"""What the run report (``notebooks/run_report.ipynb``) says about one run, as values a notebook displays.

A reader's summary (status, headline metric beside the baselines', data, model, when,
commit), the command, lineage and config folded into a ``<details>`` block, and the data
itself: per split its rows, class balance (or the target's spread) and missing values.
Each function takes a run read back by ``factory.load_run``.

Example:
    >>> run = factory.load_run(run_dir)
    >>> model, no_model = run_summary.model_or_reason(run)   # no_model: "no checkpoint: ..." or None
    >>> datamodule, no_data = run_summary.data_or_reason(run)  # no_data: "data not available: ..." or None
    >>> display(Markdown(run_summary.summary(run, model, run_summary.task_of(run, model, datamodule))))
    >>> run_summary.split_balance(datamodule) if datamodule else display(Markdown(no_data))
"""
from __future__ import annotations

import html
from typing import Any

import pandas as pd

from factory.analysis.notebook import LoadedRun
from factory.errors import FactoryError
from factory.formatting import MISSING, number
from factory.redact import text as redact_text
from factory.rundir.baselines import baseline_metrics, label, metric_sections
from factory.rundir.cv import cv_section


def _metric(run: LoadedRun, group: str, name: str, metrics: dict | None = None) -> float | None:
    """``name`` in ``group`` of the run's metrics (``metrics``: another dict of that shape, the sd)."""
    values = (run.metrics if metrics is None else metrics).get(group) or {}
    for key in (f"{group}/{name}", name):  # val/test keys carry their group
        if key in values:
            return values[key]
    return None


def _shown(value: float, sd: float | None = None) -> str:
    """``0.4912``, or a cross-validated run's ``0.4912 ± 0.0213`` (mean ± sd over its folds)."""
    return number(value) if sd is None else f"{number(value)} ± {number(sd)}"


def _beside(baselines: dict[str, dict[str, float]], name: str, sds: dict | None = None) -> str:
    """``(logistic regression 0.4105, gradient boosting 0.403)``: each baseline that has ``name``
    (``sds``: a cross-validated run's sd per baseline, shaped like ``baselines``)."""
    return "(" + ", ".join(f"{label(baseline)} {_shown(values[name], (sds or {}).get(baseline, {}).get(name))}"
                           for baseline, values in baselines.items() if name in values) + ")"


def headline(run: LoadedRun) -> str:
    """The monitored metric on the test split beside each baseline's (markdown), e.g.
    ``test pr_auc **0.4912** (logistic regression 0.4105, gradient boosting 0.403)``; when the
    baselines lack it (a loss), a metric they have is compared after it. A cross-validated run's
    values are mean ± sd over its folds, and it says so."""
    monitored = (run.manifest.monitor or {}).get("metric") or "val/loss"
    name = monitored.split("/", 1)[-1]
    test = _metric(run, "test", name)
    if test is None:  # no test pass (failed, or stopped before it): the best validation value
        best = (run.manifest.monitor or {}).get("best")
        return f"best {monitored} **{number(best)}**" if best is not None else f"no {monitored} recorded"
    cv = cv_section(run.metrics)  # a cross-validated run: mean ± sd over its folds
    sd, folds = cv.get("std") or {}, f" (mean ± sd over {cv['folds']} folds)" if cv else ""
    baselines, baseline_sds = baseline_metrics(run.metrics), baseline_metrics(sd)
    text = f"test {name} **{_shown(test, _metric(run, 'test', name, sd))}**"
    if any(name in values for values in baselines.values()):
        return f"{text} {_beside(baselines, name, baseline_sds)}{folds}"
    shared = next((m for values in baselines.values() for m in values if _metric(run, "test", m) is not None), None)
    if shared is None:
        return text + folds
    shown = _shown(_metric(run, "test", shared), _metric(run, "test", shared, sd))
    return f"{text}; test {shared} **{shown}** {_beside(baselines, shared, baseline_sds)}{folds}"


def metrics_view(run: LoadedRun) -> tuple[str | None, pd.DataFrame]:
    """The report's metrics table and a note above it (None): ``run.metrics_table``, or for a
    cross-validated run the same table as ``mean ± sd`` text over its folds, the note saying so
    and whose model the run kept."""
    cv = cv_section(run.metrics)
    if not cv:
        return None, run.metrics_table
    sds = metric_sections(cv.get("std") or {})
    rows: dict[str, dict[str, str]] = {}
    for group, values in metric_sections(run.metrics).items():
        for key, value in values.items():
            rows.setdefault(key.split("/", 1)[-1], {})[group] = _shown(value, sds.get(group, {}).get(key))
    monitored = (run.manifest.monitor or {}).get("metric", "the monitored metric")
    note = (f"Mean ± sd over {cv['folds']} cross-validation folds (each fold the test split once, sample sd). "
            f"The run keeps fold {cv['kept_fold']}'s model, the best on {monitored}; predictions and the data "
            "summary below are that fold's.")
    return note, pd.DataFrame.from_dict(rows, orient="index").fillna(MISSING)


def model_line(run: LoadedRun, model=None) -> str:
    """The network's class and parameter count (``model``: the loaded ``SupervisedModel``; without it,
    the class the config names)."""
    if model is not None and getattr(model, "net", None) is not None:
        size = sum(p.numel() for p in model.net.parameters())
        return f"{type(model.net).__name__}, {number(size)} parameters"
    target = str(run.config.get("model", {}).get("net", {}).get("_target_", "model"))
    return target.rsplit(".", 1)[-1]


def data_line(run: LoadedRun, task: str | None = None) -> str:
    """Source, rows (per split) and task, e.g. ``breast_cancer, 569 rows (train 370 / val 86 / test 113), binary``."""
    data = run.manifest.data or {}
    rows = data.get("rows") or {}
    text = str(data.get("source") or run.config.get("data", {}).get("source", {}).get("_target_", "data"))
    if rows:
        splits = " / ".join(f"{split} {number(n)}" for split, n in rows.items())
        text += f", {number(sum(rows.values()))} rows ({splits})"
    return f"{text}, {task}" if task else text


def when_line(run: LoadedRun) -> str:
    """Start (UTC, to the minute) and commit: ``2026-12-07 01:36 UTC, commit `8a2f676` (with uncommitted changes)``."""
    started = (run.manifest.started_at or "")[:16].replace("T", " ")
    git = run.manifest.git or {}
    commit = (git.get("commit") or "")[:7]
    text = f"{started} UTC" if started else "start time not recorded"
    if commit:
        text += f", commit `{commit}`" + (" (with uncommitted changes)" if git.get("dirty") else "")
    else:
        text += ", no git commit recorded"
    return text


def energy_line(run: LoadedRun) -> str | None:
    """``1.74e-05 kWh, 6.43e-06 kg CO2e (estimated: CPU load x TDP estimate; USA grid), over 2.2 s of the run's 5.3 s``,
    or None for a run not measured (``energy.track=false``). The method is never left out: an estimate
    must not read as a measurement."""
    energy = run.manifest.energy
    if not energy:
        return None
    sources = energy.get("sources") or {}
    parts = ", ".join(f"{part.upper()} {source}" for part, source in sources.items() if source and part != "ram")
    whole = f"'s {run.manifest.duration_s:.1f} s" if run.manifest.duration_s else ""
    return (f"{energy['kwh']:.3g} kWh, {energy['kg_co2e']:.3g} kg CO2e (**{energy['method']}**: {parts}; "
            f"{energy.get('country')} grid), over {energy.get('duration_s', 0):.1f} s of the run{whole}")


def stopped_banner(record) -> list[str]:
    """A failed or interrupted run's first line in a report (none for a completed run)."""
    if record.status == "completed":
        return []
    return [f"**This run is {record.status}**: `{record.error or 'no error recorded'}`. "
            "The sections below show what it recorded before it stopped.\n"]


def summary(run: LoadedRun, model=None, task: str | None = None) -> str:
    """The report's opening (markdown): a failed or interrupted run says so first, then a line each
    for status and headline metric, data and model, and when and from what commit."""
    record = run.manifest
    lines = stopped_banner(record)
    lines += [f"- **{record.status}**: {headline(run)}",
              f"- data: {data_line(run, task)}; model: {model_line(run, model)}",
              f"- ran {when_line(run)}"]
    if energy := energy_line(run):
        lines.append(f"- energy: {energy}")
    return "\n".join(lines)


def details(title: str, body_html: str, open_: bool = False) -> str:
    """A collapsible HTML block: ``title`` always shown, ``body_html`` on a click."""
    return f"<details{' open' if open_ else ''}><summary>{html.escape(title)}</summary>\n{body_html}\n</details>"


def config_details(run: LoadedRun) -> str:
    """The full command, the lineage (``run.lineage``: seed, data fingerprint, strategy, versions...)
    and the resolved config (YAML) in one collapsible block (HTML)."""
    from omegaconf import OmegaConf

    command = " ".join(run.manifest.command or []) or "(not recorded)"
    lineage = run.lineage.drop(index=["command"], errors="ignore")  # shown whole above
    body = (f"<p>Command:</p><pre>{html.escape(command)}</pre>"
            f"<p>Lineage:</p>{lineage.to_html(header=False)}"
            f"<p>Resolved config (<code>config.yaml</code>):</p>"
            f"<pre>{html.escape(OmegaConf.to_yaml(run.config))}</pre>")
    return details("Command, lineage and config", body)


def has_checkpoint(run: LoadedRun) -> bool:
    """Whether the run left a checkpoint to load a model (and its preprocessing) from."""
    from factory.rundir.checkpoints import judged_path

    return judged_path(run.run_dir, run.manifest) is not None


def restore_data(run: LoadedRun):
    """The run's DataModule, set up: with the preprocessing saved in its checkpoint when it has one
    (so class labels are the model's), else built afresh from its config."""
    if has_checkpoint(run):
        from factory.rundir.checkpoints import judged_checkpoint
        from factory.training.restore import load_factory_checkpoint, restore_datamodule

        return restore_datamodule(run.config.data, load_factory_checkpoint(
            judged_checkpoint(run.run_dir, run.manifest.best_checkpoint)))
    from factory.config.instantiate import build

    datamodule = build(run.config.data, "data")
    datamodule.setup("test")
    return datamodule


def _one_line(err: BaseException) -> str:
    """``err`` as a markdown code span of one line: a FactoryError's message names its input; any
    other error keeps its type. A URL's password stays masked."""
    lines = str(err).strip().splitlines()
    text = lines[0] if lines else ""
    if not isinstance(err, FactoryError):
        text = f"{type(err).__name__}: {text}" if text else type(err).__name__
    text = redact_text(text)
    fence, pad = ("``", " ") if "`" in text else ("`", "")
    return f"{fence}{pad}{text}{pad}{fence}"


def model_or_reason(run: LoadedRun) -> tuple[Any, str | None]:
    """``(model, None)``, or ``(None, "no checkpoint: <why>")`` (one line of markdown) when the run
    left no checkpoint or its checkpoint cannot be loaded: the report then says why and goes on."""
    from factory.rundir.checkpoints import judged_path

    path = judged_path(run.run_dir, run.manifest)
    if path is None:
        status = run.manifest.status
        return None, "no checkpoint: the run left none" + ("" if status == "completed" else f" (it is {status})")
    try:
        return run.model(), None
    except FactoryError as err:
        return None, f"no checkpoint: {_one_line(err)}"
    except Exception as err:  # noqa: BLE001: torch and Lightning raise many types (and pages) for a bad file
        return None, f"no checkpoint: `{path}` cannot be loaded ({type(err).__name__})"


def data_or_reason(run: LoadedRun) -> tuple[Any, str | None]:
    """``(restore_data(run), None)``, or ``(None, "data not available: <why>")`` (one line of
    markdown) when the run's data cannot be read again: a file moved or deleted since, a source
    whose password ``config.yaml`` holds masked (``***``), the error a failed run stopped on."""
    try:
        return restore_data(run), None
    except Exception as err:  # noqa: BLE001: a source's driver or reader may raise anything
        return None, f"data not available: {_one_line(err)}"


def task_of(run: LoadedRun, model=None, datamodule=None) -> str | None:
    """``binary``, ``multiclass`` or ``regression``: the checkpoint's, else the data's, else
    read from the metric names the run logged (``LoadedRun.task``); None when none says."""
    if model is not None:
        return model.spec.task
    if datamodule is not None:
        return datamodule.schema.task
    return run.task


def _splits(datamodule) -> dict[str, pd.DataFrame]:
    from factory.data.split import SPLITS

    return {name: datamodule.split_table(name).to_pandas() for name in SPLITS
            if datamodule.split_sizes.get(name)}


def split_balance(datamodule) -> pd.DataFrame:
    """One row per split: ``rows``, then per class ``<label>`` as ``count (share %)`` for
    classification, or the target's ``mean`` and ``std`` for regression (text, rounded)."""
    schema = datamodule.schema
    rows = {}
    for name, frame in _splits(datamodule).items():
        target = frame[schema.target]
        row = {"rows": number(len(frame))}
        if schema.task == "regression":
            row.update({f"{schema.target} mean": number(target.mean()), f"{schema.target} std": number(target.std())})
        else:
            counts = target.value_counts().sort_index()
            row.update({str(label): f"{count:,} ({count / len(frame):.1%})" for label, count in counts.items()})
        rows[name] = row
    return pd.DataFrame.from_dict(rows, orient="index").fillna("0")


def missing_values(datamodule) -> pd.DataFrame:
    """Missing values per column (rows) and split (columns), only columns missing any; empty when none is."""
    counts = pd.DataFrame({name: frame.isna().sum() for name, frame in _splits(datamodule).items()})
    return counts[counts.sum(axis=1) > 0]


def quarantine_counts(run: LoadedRun) -> pd.DataFrame | None:
    """Rows quarantined per declared rule (``run.json`` ``data.curation.by_rule``); None when none was.

    The table's one column is ``rows``; its index the rules, most broken first.
    """
    report = (run.manifest.data or {}).get("curation") or {}
    if not report.get("quarantined"):
        return None
    counts = pd.DataFrame({"rows": pd.Series(report.get("by_rule") or {}, dtype="int64")})
    counts.index.name = "rule"
    return counts
