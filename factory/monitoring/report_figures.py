"""Tables and figures of the monitoring report (``notebooks/monitor.ipynb``), from ``monitor.json`` alone.

Every histogram is drawn on the reference profile's own bins: ``monitor.json``'s ``histograms``
hold, per feature, the profile's counts and the window's counts on the same bins (numerics:
quantile bins, the outer ones open; categoricals: the most frequent reference levels and one
``(other)`` bucket, unseen levels included), as shares so windows of any size compare.
Figures are ``factory.analysis.figure.Figure``s (shown as images in any kernel).

Example:
    >>> record = load("fraud_detection")              # the newest monitor.json of the model
    >>> drift_table(record)
    >>> for figure in drifted_histograms(record): display(figure)
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from factory.analysis.figure import Figure
from factory.monitoring.outputs import MONITOR_JSON, latest_monitor_json
from factory.monitoring.summary import version_name


def default_output_dir() -> Path:
    """``outputs/monitor`` under ``$FACTORY_ROOT`` (conf/monitor.yaml's ``output_dir``)."""
    from factory.rundir.catalog import outputs_dir

    return outputs_dir() / "monitor"


def load(model: str | None = None, monitor_json: str | os.PathLike | None = None,
         output_dir: str | os.PathLike | None = None) -> dict:
    """A ``monitor.json``: the one given, else the newest of ``model`` under ``output_dir``.

    Raises:
        FactoryError: neither given, or no monitoring run of the model yet.
    """
    from factory.errors import FactoryError

    if monitor_json:
        path = Path(monitor_json)
        path = path / MONITOR_JSON if path.is_dir() else path
        if not path.is_file():
            raise FactoryError(f"monitor_json: {monitor_json}: no such file")
    elif model:
        path = latest_monitor_json(output_dir or default_output_dir(), model)
    else:
        raise FactoryError("give monitor_json (a monitor.json) or model (its newest monitoring run)")
    return {**json.loads(path.read_text()), "path": str(path)}


def history(record: dict, output_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """One row per monitoring run of the record's model (oldest first): when, rows, drifted features,
    alerts and the quality figures, for the trend across runs."""
    parent = Path(output_dir) / record["model"]["name"] if output_dir else Path(record["run_dir"]).parent
    rows = []
    for path in sorted(parent.glob(f"*/{MONITOR_JSON}")):
        try:
            r = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        figures = (r.get("quality") or {}).get("figures") or {}
        rows.append({"finished": r["finished_at"], "version": r["model"]["version"], "window": r["window"]["given"],
                     "rows": r["rows"], "drifted": ", ".join(r["drift"]["drifted"]) or "-",
                     "alerts": len(r["alerts"]), **{k: _fmt(figures.get(k), 4) for k in ("auroc", "pr_auc", "ece")}})
    return pd.DataFrame(rows)


def summary(record: dict) -> str:
    """The run in two lines of Markdown: model, window, rows, versions seen; what alerted."""
    model, window = record["model"], record["window"]
    span = f"{window['start'] or 'open'} .. {window['end'] or 'open'}"
    versions = ", ".join(f"{version_name(v)} ({n:,} rows)" for v, n in record["versions_seen"].items()) or "not recorded"
    lines = [f"**{model['name']} v{model['version']}** ({model['stage']}) on {record['rows']:,} rows of the "
             f"{record['source']['kind'].replace('_', ' ')}, window `{window['given']}` ({span}); versions seen: "
             f"{versions}. Run {record['run_id']}, finished {record['finished_at']}."]
    if record["alerts"]:
        lines.append(f"**{len(record['alerts'])} alert(s)** (exit 3): "
                     + "; ".join(a["message"] for a in record["alerts"]))
    else:
        lines.append("No alert.")
    return "\n\n".join(lines)


def _fmt(value, digits: int = 3):
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return value


def drift_table(record: dict) -> pd.DataFrame:
    """One row per feature (then the score): PSI, the two-sample test, missing and unseen rates, verdict."""
    drift = record["drift"]
    rows = {**drift["features"], "(score)": drift.get("score") or {}}
    out = []
    for name, f in rows.items():
        if f.get("absent"):
            out.append({"feature": name, "drifted": "absent"})
            continue
        test, p = (("KS", f.get("ks_pvalue")) if "ks_pvalue" in f else ("chi-squared", f.get("chi2_pvalue")))
        effect = f.get("wasserstein_std") if "wasserstein_std" in f else f.get("jensenshannon")
        out.append({"feature": name, "psi": _fmt(f.get("psi")), "test": test, "p-value": _fmt(p),
                    "effect": _fmt(effect), "missing": _fmt(f.get("missing_rate")),
                    "unseen": _fmt(f.get("unseen_rate")), "drifted": "yes" if f.get("drifted") else "no",
                    "why": "; ".join(f.get("reasons") or [])})
    return pd.DataFrame(out).set_index("feature").fillna("")


def histogram(record: dict, name: str) -> Figure:
    """Reference vs window shares of ``name`` (a feature or ``score``) on the profile's bins."""
    h = record["histograms"][name]
    reference = np.asarray(h["reference"], dtype=float)
    current = np.asarray(h["current"] or np.zeros_like(reference), dtype=float)
    reference, current = reference / max(reference.sum(), 1), current / max(current.sum(), 1)
    if h["kind"] == "numeric":
        edges = [f"{e:.3g}" for e in h["edges"]]
        labels = [f"≤{edges[0]}"] + [f"{a}–{b}" for a, b in zip(edges, edges[1:])] + [f">{edges[-1]}"] if edges \
            else ["all"]
    else:
        labels = [str(level) for level in h["levels"]]
    figure = Figure(figsize=(max(4.5, 0.45 * len(labels) + 1.5), 3.2))
    ax = figure.add_subplot()
    x = np.arange(len(labels))
    ax.bar(x - 0.2, reference, width=0.4, label="reference (profile)", color="#8da0cb")
    ax.bar(x + 0.2, current, width=0.4, label="window", color="#fc8d62")
    ax.set_xticks(x, labels, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("share of rows")
    figures = record["drift"]["features"].get(name) or record["drift"].get("score") or {}
    ax.set_title(f"{name}: PSI {_fmt(figures.get('psi'))}" + (" (drifted)" if figures.get("drifted") else ""))
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    return figure


def drifted_histograms(record: dict) -> list[Figure]:
    """A reference-vs-window histogram per drifted feature."""
    return [histogram(record, name) for name in record["drift"]["drifted"] if name in record["histograms"]]


def quality_table(record: dict) -> pd.DataFrame | None:
    """The labelled rows' figures beside the model's validation figures (None without labels)."""
    quality = record.get("quality")
    if not quality:
        return None
    names = [k for k in ("auroc", "pr_auc", "accuracy", "f1", "brier", "ece") if k in quality["overall"]]
    return pd.DataFrame({"window": [_fmt(quality["overall"].get(k), 4) for k in names],
                         "validation": [_fmt(quality["validation"].get(k), 4) for k in names]}, index=names)


def quality_over_time(record: dict) -> Figure | None:
    """AUROC, PR-AUC and ECE per time window of the labelled rows (``monitor.quality.every``)."""
    windows = (record.get("quality") or {}).get("by_window") or []
    if not windows:
        return None
    figure = Figure(figsize=(6.5, 3.2))
    ax = figure.add_subplot()
    x = np.arange(len(windows))  # one tick per window, labelled by its start (a lone window stays readable)
    for name in ("auroc", "pr_auc", "ece"):
        values = [w.get(name) for w in windows]
        if any(v is not None for v in values):
            ax.plot(x, [np.nan if v is None else v for v in values], marker="o", label=name)
            validation = record["quality"]["validation"].get(name)
            if validation is not None:
                ax.axhline(validation, linestyle=":", linewidth=1, color=ax.lines[-1].get_color())
    ax.set_ylim(0, 1.02)
    ax.set_xlim(-0.5, len(windows) - 0.5)
    ax.set_xticks(x, [pd.Timestamp(w["start"]).strftime("%Y-%m-%d %H:%M") for w in windows], rotation=30, ha="right",
                  fontsize=8)
    ax.set_xlabel("window start (UTC)")
    ax.set_title("Quality per window (dotted: validation)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    return figure


def fairness_table(record: dict) -> pd.DataFrame | None:
    """Per group: rows, selection rate, TPR, FPR and whether it was judged (None without a sensitive column)."""
    fairness = record.get("fairness")
    if not fairness:
        return None
    rows = {g: {"rows": f["rows"], "selection rate": _fmt(f.get("selection_rate")), "TPR": _fmt(f.get("tpr")),
                "FPR": _fmt(f.get("fpr")), "judged": "yes" if f.get("judged") else "no (too small)"}
            for g, f in fairness["groups"].items()}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis(fairness["sensitive"])


def fairness_summary(record: dict) -> str:
    fairness = record["fairness"]
    limits = record["thresholds"]["fairness"]
    return (f"Demographic-parity difference **{_fmt(fairness['demographic_parity_difference'])}** "
            f"(limit {_fmt(limits.get('max_demographic_parity_difference'))}), equalized-odds difference "
            f"**{_fmt(fairness['equalized_odds_difference'])}** (limit "
            f"{_fmt(limits.get('max_equalized_odds_difference'))}), over judged groups (at least "
            f"{fairness.get('min_group_size', limits.get('min_group_size'))} rows).")


def alerts_table(record: dict) -> pd.DataFrame:
    """Each alert: check, subject, figure, value, threshold."""
    columns = ["check", "subject", "figure", "value", "op", "threshold"]
    return pd.DataFrame([{k: _fmt(a.get(k), 4) for k in columns} for a in record["alerts"]], columns=columns)
