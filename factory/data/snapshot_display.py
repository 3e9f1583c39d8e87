"""What ``scripts/data.py`` prints: tables a person reads at a glance (rich), or JSON."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from factory.files import json_text


def print_list(rows: list[dict], store: Path, as_json: bool = False) -> None:
    """One row per snapshot: id, created, rows, columns, source, dataset, classification, parent."""
    if as_json:
        print(json_text(rows, indent=2))
        return
    from rich.table import Table

    console = _console()
    if not rows:
        console.print(f"no snapshots in {store}/snapshots (a training run stores its curated table there)",
                      highlight=False)
        return
    table = Table(title=f"snapshots: {store}/snapshots", title_justify="left")
    for column in ("id", "created (UTC)", "rows", "cols", "source", "dataset", "class", "parent"):
        table.add_column(column, justify="right" if column in ("rows", "cols") else "left", no_wrap=True)
    for row in rows:
        table.add_row(row["id"], row["created"][:16].replace("T", " "), f"{row['rows']:,}", str(row["columns"]),
                      row["source"] or "", row["dataset"] or "",
                      row["classification"] + (" (encrypted)" if row["encrypted"] else ""), row["parent"] or "")
    console.print(table)


def print_record(record: dict, as_json: bool = False) -> None:
    """``show``: the snapshot's facts, then its columns with types and roles."""
    if as_json:
        print(json_text(record, indent=2))
        return
    from rich.table import Table

    schema = record["schema"]
    source = record["source"]
    fields = {
        "snapshot": record["id"],
        "created": record["created"],
        "rows": f"{record['rows']:,}",
        "task": f"{schema['task']}, target {schema['target']}"
                + (f" (positive label {schema['positive_label']!r})"
                   if schema.get("positive_label") is not None else "")
                + (f", images {tuple(schema['image_shape'])}" if schema.get("image_shape") else ""),
        "source": f"{source['name']}" + (f" (fingerprint {str(source['fingerprint'])[:16]})"
                                          if source.get("fingerprint") else ""),
        "dataset": record["dataset"],
        "classification": record["classification"] + (", encrypted" if record["encrypted"] else ""),
        "parent": record["parent"],
        "table fingerprint": record["fingerprint"],
        "data file": f"data.parquet, {record.get('bytes') or 0:,} bytes",
        "curation": _curation(record["meta"].get("curation")),
        "quarantine": record["meta"].get("quarantine"),
        "meta": json_text(rest) if (rest := {k: v for k, v in record["meta"].items()
                                              if k not in ("curation", "quarantine")}) else None,
    }
    console = _console()
    facts = Table(show_header=False, box=None)
    facts.add_column(style="bold")
    facts.add_column()
    for key, value in fields.items():
        if value is not None:
            facts.add_row(key, str(value))
    console.print(facts)
    columns = Table(title="columns", title_justify="left")
    for name in ("column", "type", "role"):
        columns.add_column(name, no_wrap=True)
    pii = record.get("pii") or {}
    for column in record["columns"]:
        name = column["name"]
        role = ("target" if name == schema["target"] else
                f"feature ({schema['features'][name]})" if name in schema["features"] else "")
        if name in pii:
            role = f"{role}, pii: {pii[name]}".lstrip(", ")
        columns.add_row(name, column["type"], role)
    console.print(columns)


def print_diff(result: dict, as_json: bool = False) -> None:
    """``diff``: rows added and removed, schema changes, then the columns whose summary moved."""
    if as_json:
        print(json_text(result, indent=2))
        return
    from rich.table import Table

    a, b, rows = result["a"], result["b"], result["rows"]
    console = _console()
    say = lambda text: console.print(text, highlight=False, markup=False, soft_wrap=True)  # noqa: E731
    say(f"{a['id']} ({a['rows']:,} rows) -> {b['id']} ({b['rows']:,} rows)")
    compared = "" if rows["compared_on"] is None else f" (compared on {len(rows['compared_on'])} shared columns)"
    say(f"rows: {rows['added']:,} added, {rows['removed']:,} removed, {rows['unchanged']:,} unchanged{compared}")
    schema = result["schema"]
    lines = [*(f"column added: {c} ({t})" for c, t in schema["columns_added"].items()),
             *(f"column removed: {c} ({t})" for c, t in schema["columns_removed"].items()),
             *(f"column retyped: {c} ({ta} -> {tb})" for c, (ta, tb) in schema["columns_retyped"].items()),
             *(f"feature added: {c} ({k})" for c, k in schema["features_added"].items()),
             *(f"feature removed: {c} ({k})" for c, k in schema["features_removed"].items()),
             *(f"feature kind: {c} ({ka} -> {kb})" for c, (ka, kb) in schema["kinds_changed"].items()),
             *(f"{name}: {va!r} -> {vb!r}" for name, (va, vb) in schema["changed"].items())]
    say("schema: " + ("unchanged" if not lines else f"{len(lines)} change(s)"))
    for line in lines:
        say(f"  {line}")
    moved = {c: s for c, s in result["columns"].items() if s["a"] != s["b"]}
    if not moved:
        say("columns: no summary changed")
        return
    table = Table(title=f"columns whose summary changed ({len(moved)} of {len(result['columns'])})",
                  title_justify="left")
    for name in ("column", "kind", "a", "b", "shift"):
        table.add_column(name, overflow="fold")
    for column, shift in moved.items():
        table.add_row(column, shift["kind"] or "", _summary(shift["a"]), _summary(shift["b"]), _shift(shift))
    console.print(table)


def _curation(report: dict | None) -> str | None:
    """The curation report in a line: rows in and kept, quarantined, duplicates, PII columns."""
    if not isinstance(report, dict) or "rows_in" not in report:
        return None
    pii = ", ".join(f"{c} {how}" for c, how in (report.get("pii") or {}).items())
    return (f"{report['rows_in']:,} rows in, {report.get('rows_out', 0):,} kept, {report.get('quarantined', 0):,} "
            f"quarantined, {report.get('duplicates', 0):,} duplicates dropped" + (f"; pii: {pii}" if pii else ""))


def _summary(s: dict[str, Any] | None) -> str:
    if s is None:
        return "(absent)"
    parts = []
    if s.get("mean") is not None:
        parts.append(f"mean {_num(s['mean'])} sd {_num(s['std'])} [{_num(s['min'])}, {_num(s['max'])}]")
    elif "mean" in s:
        parts.append("no values")
    if "distinct" in s:
        parts.append(f"{s['distinct']:,} distinct")
        if s.get("top"):
            parts.append(" ".join(f"{level}:{share:.0%}" for level, share in s["top"].items()))
    if "mean" not in s and s.get("min") is not None:
        parts.append(f"[{s['min']}, {s['max']}]")
    if s.get("null_share"):
        parts.append(f"nulls {s['null_share']:.1%}")
    return ", ".join(parts) or "-"


def _shift(shift: dict[str, Any]) -> str:
    a, b = shift["a"], shift["b"]
    if a is None or b is None:
        return "added" if a is None else "removed"
    parts = []
    if a.get("mean") is not None and b.get("mean") is not None:
        sd = a.get("std")
        move = b["mean"] - a["mean"]
        parts.append(f"mean {move:+.4g}" + (f" ({move / sd:+.2f} sd)" if sd else ""))
    if "distinct" in a and a["distinct"] != b.get("distinct"):
        parts.append(f"distinct {b['distinct'] - a['distinct']:+,}")
    if a.get("top") is not None and b.get("top") is not None:
        levels = [*a["top"], *(level for level in b["top"] if level not in a["top"])]
        moves = {level: b["top"].get(level, 0.0) - a["top"].get(level, 0.0) for level in levels}
        level, move = max(moves.items(), key=lambda item: abs(item[1]))
        if move:
            parts.append(f"{level} {move * 100:+.1f} pts")
    if (a.get("null_share") or 0) != (b.get("null_share") or 0):
        parts.append(f"nulls {((b['null_share'] or 0) - (a['null_share'] or 0)) * 100:+.1f} pts")
    return ", ".join(parts)


def _num(value) -> str:
    return "" if value is None else f"{value:.4g}"


def _console():
    from rich.console import Console

    # Piped or captured output is not cut to rich's default 80 columns.
    return Console() if sys.stdout.isatty() else Console(width=200)
