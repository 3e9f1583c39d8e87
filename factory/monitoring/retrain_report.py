"""A retrain pipeline's record (``pipeline.json``) in words and tables: the line ``scripts/retrain.py``
prints, and the champion/challenger report's tables (``notebooks/champion_challenger.ipynb``)."""
from __future__ import annotations


def verdict(record: dict) -> str:
    """What the gate did, with the figures it judged: ``promoted X to production (...)`` or ``kept ...``."""
    decision = record["decision"] or {}
    score = record["steps"].get("score", {})
    metric = (score.get("metric") or {}).get("name")
    figures = f"{metric} {_number(score.get('challenger'))} vs champion {_number(score.get('champion'))}"
    champion = decision.get("champion") or "none"
    if decision.get("promote"):
        return f"promoted {decision['challenger']} to {decision['stage']} (champion was {champion}): {figures}"
    return f"kept {champion} at {decision.get('stage')}; {decision.get('challenger')} registered without a stage: {figures}"


def summary(record: dict) -> str:
    """What the job decided and why, in one line, then where its record is."""
    reasons = "; ".join((record["decision"] or {}).get("reasons", []))
    return f"retrain {record['pipeline']}: {verdict(record)}; {reasons}\nrecord: {record.get('path', '')}"


def _number(value) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def comparison(record: dict):
    """Champion and challenger side by side from a pipeline record (``pipeline.json``), for the report:
    the gate's metric on the shared holdout, then each version's own recorded val/test figures; None
    when the job stopped before scoring."""
    import pandas as pd

    score = record["steps"].get("score") or {}
    if score.get("status") != "completed":
        return None  # the job stopped before both models were scored
    metric = (score.get("metric") or {}).get("name")
    rows = {f"{metric} on the holdout ({(score.get('holdout') or {}).get('rows')} rows)":
            (score.get("champion"), score.get("challenger"))}
    champion = (record.get("champion") or {}).get("registered_metric") or {}
    trained = (record["steps"].get("train") or {}).get("metrics") or {}
    name = str(champion.get("name") or "").split("/", 1)[-1]
    for split in ("val", "test"):
        key = f"{split}/{name or metric}"
        rows[f"{key} on its own data"] = (champion.get(split), (trained.get(split) or {}).get(key))
    frame = pd.DataFrame.from_dict(rows, orient="index", columns=["champion", "challenger"])
    return frame.map(lambda v: "—" if v is None or v != v else f"{v:.4g}")


def fairness_table(record: dict):
    """Per group: rows, selection rate, TPR, FPR of champion and challenger; None without fairness figures."""
    import pandas as pd

    fairness = record["steps"].get("fairness") or {}
    roles = [role for role in ("champion", "challenger") if isinstance(fairness.get(role), dict)]
    if not roles:
        return None
    columns = {}
    for role in roles:
        for group, figures in fairness[role]["groups"].items():
            for figure in ("rows", "selection_rate", "tpr", "fpr", "judged"):
                columns.setdefault((role, figure), {})[group] = figures.get(figure)
    frame = pd.DataFrame(columns)
    return frame.astype(object).where(frame.notna(), "—")


def steps_table(record: dict):
    """One row per step: status, and the inputs and figures a reader checks first."""
    import pandas as pd

    rows = {}
    for name, step in record["steps"].items():
        rows[name] = {"status": step.get("status"), "started": step.get("started_at"), "ended": step.get("ended_at"),
                      "details": step.get("error") or _step_details(name, step)}
    return pd.DataFrame.from_dict(rows, orient="index")


def _step_details(name: str, step: dict) -> str:
    if name == "config":
        return f"train overrides: {' '.join(step.get('train_overrides', []))}; champion: {step.get('champion')}"
    if name == "check_data":
        drift = step.get("drift") or {}
        drifted = drift.get("skipped") or f"drifted features: {', '.join(drift.get('drifted') or []) or 'none'}"
        return f"{step.get('source')}: {step.get('rows')} rows {step.get('splits')}, fingerprint " \
               f"{str(step.get('fingerprint'))[:12]}; drift: {drifted}"
    if name == "train":
        return f"run {step.get('run_id')}, monitored value {_number(step.get('monitored_value'))}"
    if name == "score":
        holdout = step.get("holdout") or {}
        return (f"challenger {step.get('challenger_ref')}; holdout {holdout.get('rows')} rows "
                f"({holdout.get('removed_champion_rows')} removed as the champion's"
                f"{'' if holdout.get('champion_rows_checked') else ', not checked: ' + str(holdout.get('note'))})")
    if name == "fairness":
        return step.get("skipped") or f"by {step.get('sensitive')}, limits {step.get('limits')}"
    return step.get("action") or ""
