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
table{border-collapse:collapse;width:100%}th,td{border-bottom:1px solid #ddd;padding:.4em .6em;
text-align:left;vertical-align:top;font-size:.92em}th{background:#f4f4f4}
.completed{color:#1a7f37}.failed{color:#cf222e;font-weight:600}.running{color:#9a6700}
code{font-size:.9em;word-break:break-all}"""


def render(runs: list[dict[str, Any]]) -> str:
    """A self-contained HTML page: one row per report run, newest first."""
    e = html.escape
    rows = []
    for r in runs:
        links = " ".join(f'<a href="{e(r[k])}">{k}</a>' for k in ("html", "ipynb") if r.get(k))
        params = ", ".join(f"{k}={v}" for k, v in (r.get("parameters") or {}).items())
        duration = f"{r['duration_s']:.1f} s" if r.get("duration_s") is not None else ""
        rows.append(
            f"<tr><td>{e(r.get('name', ''))}</td><td class=\"{e(r.get('status', ''))}\">{e(r.get('status', ''))}</td>"
            f"<td>{e(r.get('started_at') or '')}</td><td>{duration}</td><td><code>{e(params)}</code></td>"
            f"<td>{links}</td><td>{e(r.get('error') or '')}</td></tr>")
    body = "\n".join(rows) or '<tr><td colspan="7">no report runs yet</td></tr>'
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>factory reports</title>"
            f"<style>{_STYLE}</style></head><body><h1>Reports</h1><p>{len(runs)} runs, newest first.</p>\n"
            "<table><thead><tr><th>report</th><th>status</th><th>started</th><th>duration</th>"
            f"<th>parameters</th><th>output</th><th>error</th></tr></thead><tbody>\n{body}\n"
            "</tbody></table></body></html>\n")
