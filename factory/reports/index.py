"""``reports/index.json`` (the source of truth) and ``reports/index.html`` (a table of it).

Both are rewritten atomically after every change; a file lock serializes writers
(several reports finishing at once under ``scripts/schedule.py``).
"""
from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from factory import files
from factory.formatting import count

INDEX_JSON = "index.json"
INDEX_HTML = "index.html"
INDEX_LOCK = ".index.lock"


def load(reports_dir: str | Path) -> list[dict[str, Any]]:
    """Every report run recorded under ``reports_dir``, newest first."""
    path = Path(reports_dir) / INDEX_JSON
    if not path.exists():
        return []
    return json.loads(path.read_text())["runs"]


def record(reports_dir: str | Path, entry: dict[str, Any]) -> None:
    """Add ``entry`` or replace the one with the same ``id``; rewrite both index files."""
    reports_dir = Path(reports_dir)
    with files.locked(reports_dir / INDEX_LOCK):
        runs = [r for r in load(reports_dir) if r.get("id") != entry["id"]]
        runs.insert(0, entry)  # among reports started in the same second, the latest recorded first
        runs.sort(key=lambda r: r.get("started_at") or "", reverse=True)  # stable: keeps that order
        files.write_json(reports_dir / INDEX_JSON, {"runs": runs})
        files.write_text(reports_dir / INDEX_HTML, render(runs))


_STYLE = """body{font-family:system-ui,sans-serif;margin:2em;color:#222}
.scroll{overflow-x:auto}table{border-collapse:collapse;width:100%}
th,td{border-bottom:1px solid #ddd;padding:.4em .6em;text-align:left;vertical-align:top;font-size:.92em}
th{background:#f4f4f4;white-space:nowrap}
.completed{color:#1a7f37}.failed{color:#cf222e;font-weight:600}.running{color:#9a6700}
code{font-size:.9em;word-break:break-all}.dirty{color:#9a6700}.nowrap{white-space:nowrap}"""

#: The page's columns, in order (what ``_cells`` fills per report run).
COLUMNS = ("report", "status", "started", "duration", "trigger", "source runs", "parameters",
           "factory", "commit", "output", "error")


def render(runs: list[dict[str, Any]]) -> str:
    """A self-contained HTML page: one row per report run, newest first.

    Columns (``COLUMNS``): the report's name, status, start time, duration (and the energy the run
    used, ``measured`` or ``estimated``, when it was recorded), what started it,
    the runs it read (``source_run_ids``), its parameters (those set), the factory version and git commit
    it ran with (``+dirty`` when the code differed from the commit), links to its HTML and
    notebook (relative to ``reports/``), and the error of a failed run.
    """
    rows = ["<tr>" + "".join(f"<td{attrs}>{cell}</td>" for attrs, cell in _cells(r)) + "</tr>" for r in runs]
    body = "\n".join(rows) or f'<tr><td colspan="{len(COLUMNS)}">no report runs yet</td></tr>'
    head = "".join(f"<th>{name}</th>" for name in COLUMNS)
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>factory reports</title>"
            f"<style>{_STYLE}</style></head><body><h1>Reports</h1><p>{count(len(runs), 'report run')}, "
            f"newest first.</p>\n<div class=\"scroll\"><table><thead><tr>{head}</tr></thead><tbody>\n{body}\n"
            "</tbody></table></div></body></html>\n")


def _cells(r: dict[str, Any]) -> list[tuple[str, str]]:
    """The HTML cells of one report run, in ``COLUMNS`` order: (attributes, escaped content)."""
    e = html.escape
    status = r.get("status") or ""
    links = " ".join(f'<a href="{e(r[k])}">{k}</a>' for k in ("html", "ipynb") if r.get(k))
    params = ", ".join(f"{k}={v}" for k, v in (r.get("parameters") or {}).items() if v not in (None, "", [], {}))
    duration = f"{r['duration_s']:.1f} s" if r.get("duration_s") is not None else ""
    if energy := r.get("energy"):  # factory.training.energy: the method beside the number, always
        duration += f"<br>{energy['kwh']:.2g} kWh ({e(energy['method'])})"
    sources = "<br>".join(f"<code>{e(str(s))}</code>" for s in r.get("source_run_ids") or [])
    git = r.get("git") or {}
    commit = (f'<code title="{e(git["commit"])}">{e(git["commit"][:10])}</code>' if git.get("commit") else "")
    if commit and git.get("dirty"):
        commit += ' <span class="dirty" title="the code differed from this commit">+dirty</span>'
    return [("", e(r.get("name", ""))), (f' class="{e(status)}"', e(status)),
            (' class="nowrap"', e(_when(r.get("started_at")))), ("", duration),
            ("", e(r.get("trigger") or "")), ("", sources), ("", f"<code>{e(params)}</code>" if params else ""),
            ("", e(r.get("factory_version") or "")), (' class="nowrap"', commit), ("", links),
            ("", e(r.get("error") or ""))]


def _when(stamp: str | None) -> str:
    """``2026-12-07T01:46:51+00:00`` -> ``2026-12-07 01:46:51 UTC`` (what ``files.utc_stamp`` writes)."""
    if not stamp:
        return ""
    utc = stamp.endswith(("Z", "+00:00"))
    return stamp.replace("T", " ", 1).removesuffix("Z").removesuffix("+00:00") + (" UTC" if utc else "")
