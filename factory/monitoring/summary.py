"""What ``scripts/monitor.py`` prints: a table per check a person reads at a glance, then the alerts."""
from __future__ import annotations


def version_name(version) -> str:
    """A version seen as people read it: ``v1`` (``monitor.json``'s ``versions_seen`` keys are the numbers,
    or another model's ref such as ``other@2``, shown as is)."""
    return f"v{version}" if str(version).isdigit() else str(version)


def _cell(value, digits: int = 3, missing: str = "") -> str:
    if value is None:
        return missing
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}f}" if abs(value) >= 10 ** -digits or value == 0 else f"{value:.1e}"
    return str(value)


def _test(figures: dict) -> str:
    """The feature's two-sample test: KS for numerics, chi-squared for categoricals, with its p-value."""
    if figures.get("ks_pvalue") is not None:
        return f"KS {_cell(figures['ks_statistic'])} p={_cell(figures['ks_pvalue'])}"
    if figures.get("chi2_pvalue") is not None:
        return f"chi2 p={_cell(figures['chi2_pvalue'])}, JS {_cell(figures.get('jensenshannon'))}"
    return ""


def print_summary(record: dict) -> None:
    """The drift table (one row per feature, then the score), quality and fairness lines, the alerts, the files."""
    from rich.console import Console
    from rich.table import Table

    console = Console(stderr=False)
    model, window = record["model"], record["window"]
    seen = ", ".join(f"{version_name(v)}: {n:,}" for v, n in record["versions_seen"].items()) or "n/a"
    title = (f"{model['name']} v{model['version']} ({model['stage']}): {record['rows']:,} rows, window "
             f"{window['given']} of {record['source']['kind']} (versions seen {seen})")
    table = Table(title=title, title_justify="left")
    for column in ("feature", "psi", "test", "missing", "unseen", "drifted"):
        table.add_column(column, justify="left" if column in ("feature", "test") else "right")
    drift = record["drift"]
    rows = {**drift["features"], "(score)": drift.get("score") or {}} if "score" in record["checks"] else drift["features"]
    for name, f in rows.items():
        if f.get("absent"):
            table.add_row(name, "", "absent from the window", "", "", "")
            continue
        table.add_row(name, _cell(f.get("psi")), _test(f), _cell(f.get("missing_rate")),
                      _cell(f.get("unseen_rate")), "[bold red]yes[/]" if f.get("drifted") else "no")
    console.print(table)
    quality = record.get("quality")
    if quality:
        o = quality["overall"]
        shown = ", ".join(f"{k} {_cell(o.get(k), 4)}" + (f" (val {_cell(quality['validation'][k], 4)})"
                                                         if quality["validation"].get(k) is not None else "")
                          for k in ("auroc", "pr_auc", "ece", "accuracy") if o.get(k) is not None)
        console.print(f"quality on {quality['labelled_rows']:,} labelled rows: {shown or 'undefined'}", highlight=False)
    fairness = record.get("fairness")
    if fairness:
        console.print(f"fairness by {fairness['sensitive']}: demographic parity difference "
                      f"{_cell(fairness['demographic_parity_difference'], missing='n/a')}, equalized odds difference "
                      f"{_cell(fairness['equalized_odds_difference'], missing='n/a')}"
                      + (f"; not judged (too small): {', '.join(fairness['unjudged'])}" if fairness["unjudged"] else ""),
                      highlight=False)
    for a in record["alerts"]:
        console.print(f"[bold red]ALERT[/] {a['message']}", highlight=False, soft_wrap=True)
    verdict = f"{len(record['alerts'])} alert(s): exit 3" if record["alerts"] else "no alert"
    console.print(f"{verdict}; {record['outputs']['json']}", highlight=False, soft_wrap=True)
