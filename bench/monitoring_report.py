"""Shares, targets and markdown for ``bench/monitoring.py``: the ``## Monitoring`` section of docs/benchmarks.md.

A window's outcome is the set of names the drift monitor flagged (features, and ``"score"`` for
prediction drift); the helpers here turn lists of them into the shares the tables show.
"""
from __future__ import annotations

from serving_report import _target  # a target's PASS / FAIL / n/a / info line, as the serving bench writes it

HEADING = "## Monitoring"
BEGIN = "<!-- monitoring: written by bench/monitoring.py, do not edit by hand -->"
END = "<!-- /monitoring -->"
SCORE = "score"
FALSE_ALARMS = 0.05  # flagged (feature x window) cells without drift, at DEFAULT_THRESHOLDS
PLANTED = 0.95  # windows where a planted drift is flagged as planted (that feature, no other)
POWER = 0.95  # "detected": the amount shift flagged in this share of windows
SPEED_SHARE = 0.5  # monitor rows/s / raw pyarrow scan rows/s over the same log
RSS_GROWTH = 1.2  # peak RSS monitoring the largest log / the smallest


def cell_share(flagged: list[set], features: list[str]) -> float:
    """Share of (feature x window) cells flagged (the score is not a feature)."""
    cells = len(flagged) * len(features)
    return sum(len(f & set(features)) for f in flagged) / cells if cells else 0.0


def any_share(flagged: list[set], features: list[str]) -> float:
    """Share of windows with at least one feature flagged: what an on-call person sees."""
    return sum(bool(f & set(features)) for f in flagged) / len(flagged) if flagged else 0.0


def only_share(flagged: list[set], expected: set, features: list[str]) -> float:
    """Share of windows whose flagged features are exactly ``expected`` (each of them, no other)."""
    return sum((f & set(features)) == set(expected) for f in flagged) / len(flagged) if flagged else 0.0


def share(flagged: list[set], name: str) -> float:
    """Share of windows where ``name`` (a feature or ``"score"``) was flagged."""
    return sum(name in f for f in flagged) / len(flagged) if flagged else 0.0


def by_name(flagged: list[set]) -> dict[str, int]:
    """Windows flagged per name, most first."""
    counts: dict[str, int] = {}
    for f in flagged:
        for name in f:
            counts[name] = counts.get(name, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def smallest_detected(grid: list[float], shares: list[float], level: float = POWER) -> float | None:
    """The smallest shift whose share reaches ``level`` with every larger shift reaching it too; None if none."""
    found = None
    for k, s in sorted(zip(grid, shares), reverse=True):
        if s < level:
            break
        found = k
    return found


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def targets(saved: dict) -> list[dict]:
    """Each target PASS, FAIL or n/a (part not run or failed), with the figures behind it."""
    out = []
    for row in saved.get("false_alarms", {}).get("rows", []):
        out.append(_target(f"no drift, reference {row['reference_rows']:,} rows, windows of {row['window_rows']:,}: "
                           f"flagged feature x window cells <= {_pct(FALSE_ALARMS)}", row["cell_share"] <= FALSE_ALARMS,
                           f"{row['flagged_cells']} of {row['cells']:,} = {_pct(row['cell_share'])}; windows with any "
                           f"feature flagged {_pct(row['any_share'])}, score {_pct(row['score_share'])}"))
    for row in saved.get("planted", {}).get("rows", []):
        expected = f"{', '.join(row['expected'])} flagged, no other feature" if row["expected"] else \
            "no feature flagged (the labels alone moved)"
        info = not row["expected"]  # labels only: nothing the inputs or the score could show
        out.append(_target(f"{row['scenario']}, windows of {row['window_rows']:,}: {expected}, in >= "
                           f"{_pct(PLANTED)} of windows", row["only_share"] >= PLANTED,
                           f"{_pct(row['only_share'])}; score flagged in {_pct(row['score_share'])}", info=info))
    power = saved.get("power", {})
    for size, k in power.get("smallest", {}).items():
        out.append(_target(f"smallest amount shift flagged in >= {_pct(POWER)} of windows of {int(size):,} rows",
                           k is not None, "none on the grid" if k is None else f"{k:g} sd", info=True))
    speed = saved.get("speed", {})
    if "ratio" in speed:
        out.append(_target(f"monitoring {speed['rows']:,} logged rows >= {SPEED_SHARE:g}x the rows/s of a raw pyarrow "
                           "scan", speed["ratio"] >= SPEED_SHARE,
                           f"{speed['monitor_rows_s']:,.0f} vs {speed['raw_rows_s']:,.0f} rows/s "
                           f"({speed['ratio']:.2f}x, best of {speed['repeats']})"))
    elif "speed" in saved:
        out.append(_target("monitoring >= 0.5x a raw pyarrow scan", None, speed.get("error", "not run")))
    runs = [r for r in saved.get("memory", {}).get("runs", []) if r["mode"] == "monitor" and r["returncode"] == 0]
    if len(runs) >= 2:
        small, large = min(runs, key=lambda r: r["rows"]), max(runs, key=lambda r: r["rows"])
        growth = large["peak_rss_mb"] / small["peak_rss_mb"]
        out.append(_target(f"peak RSS monitoring {large['rows']:,} rows within {RSS_GROWTH:g}x of {small['rows']:,}",
                           growth <= RSS_GROWTH, f"{large['peak_rss_mb']:.0f} vs {small['peak_rss_mb']:.0f} MB "
                                                 f"({growth:.2f}x)"))
    elif "memory" in saved:
        out.append(_target("peak RSS flat from the smallest log to the largest", None,
                           saved["memory"].get("error", "fewer than two monitor runs completed")))
    return out


def render(saved: dict) -> str:
    """The section (its layout is in bench/monitoring.py's docstring)."""
    load = " -> ".join(f"{x:.1f}" for x in saved["load"])
    quick = " **--quick: a smoke run, indicative only.**" if saved["quick"] else ""
    lines = ["The drift monitor (`factory.monitoring.drift.DriftMonitor`, `DEFAULT_THRESHOLDS`) on generated fraud "
             "traffic (`FraudSource`, the reference's world `world_seed=42`, new transaction seeds, drift knobs) "
             "against a reference profile of the seed-42 table; its speed and memory over request logs in the "
             "server's format. `make bench-monitoring` reruns it and rewrites this section "
             "(`python bench/monitoring.py --help`).", "",
             f"`python bench/monitoring.py`, {saved['date']} at {saved['commit']} on {saved['machine']}; load average "
             f"{load} (start -> end).{quick} Score: {saved['score']}. A window is flagged for a name when the monitor "
             "lists it as drifted (the score: prediction drift).", ""]
    fa = saved.get("false_alarms", {})
    if fa.get("rows"):
        lines += ["### False alarms (no drift: the reference's world, new seeds)", "",
                  "| reference rows | window rows | windows | flagged cells | share | windows with any feature flagged "
                  "| score flagged | most flagged |", "|---:|---:|---:|---:|---:|---:|---:|---|"]
        for r in fa["rows"]:
            most = ", ".join(f"{k} {v}" for k, v in list(r["by_name"].items())[:3]) or "-"
            lines.append(f"| {r['reference_rows']:,} | {r['window_rows']:,} | {r['windows']} | {r['flagged_cells']} of "
                         f"{r['cells']:,} | {_pct(r['cell_share'])} | {_pct(r['any_share'])} | {_pct(r['score_share'])} "
                         f"| {most} |")
        lines += ["", "Cells: features x windows (the score apart). Most flagged: windows per name.", ""]
    planted = saved.get("planted", {})
    if planted.get("rows"):
        lines += ["### Planted drift", "", "| drift | window rows | expected flagged | exactly those | score flagged | "
                  "other features flagged (windows) |", "|---|---:|---|---:|---:|---|"]
        for r in planted["rows"]:
            others = ", ".join(f"{k} {v}" for k, v in r["others"].items()) or "-"
            lines.append(f"| {r['scenario']} | {r['window_rows']:,} | {', '.join(r['expected']) or 'none'} | "
                         f"{_pct(r['only_share'])} | {_pct(r['score_share'])} | {others} |")
        lines += ["", "`fraud_rate` moves the labels only (the same features row for row): no input or score drift "
                  "can show it; label quality (`factory.monitoring.quality`) does.", ""]
    power = saved.get("power", {})
    if power.get("grid"):
        grid = power["grid"]
        lines += ["### Detection power: share of windows where `amount` is flagged", "",
                  "| window rows | " + " | ".join(f"{k:g} sd" for k in grid) + f" | smallest at >= {_pct(POWER)} |",
                  "|---:|" + "---:|" * (len(grid) + 1)]
        for size, shares in power["shares"].items():
            k = power["smallest"][size]
            lines.append(f"| {int(size):,} | " + " | ".join(_pct(s) for s in shares) +
                         f" | {'-' if k is None else f'{k:g} sd'} |")
        lines += ["", f"`shift={{amount: k}}`: k reference sds (249.3) added to every amount; {power['windows']} "
                  "windows per cell, the same seeds in every column (0 sd: no drift).", ""]
    speed = saved.get("speed", {})
    if "ratio" in speed:
        lines += ["### Speed and memory", "", f"Speed: {speed['rows']:,} logged rows ({speed['files']} file(s), "
                  f"{speed['row_groups']} row groups of the server's {speed['flush_rows']:,}-row flushes), "
                  f"{len(speed['columns'])} columns; best of {speed['repeats']}, back to back: the monitor "
                  f"(`iter_batches` + `update` + `result`) {speed['monitor_rows_s']:,.0f} rows/s, a raw "
                  f"`pyarrow.dataset` scan of the same columns {speed['raw_rows_s']:,.0f} rows/s: {speed['ratio']:.2f}x "
                  f"(each file through `pyarrow.parquet.ParquetFile.iter_batches`, no dataset: "
                  f"{speed.get('files_rows_s', 0):,.0f} rows/s).", ""]
    memory = saved.get("memory", {})
    if memory.get("runs"):
        lines += ["| logged rows | pass | peak RSS MB | s | rows/s |", "|---:|---|---:|---:|---:|"]
        for r in memory["runs"]:
            rate = f"{r['rows_s']:,.0f}" if r.get("rows_s") else f"failed (exit {r['returncode']})"
            lines.append(f"| {r['rows']:,} | {r['mode']} | {r['peak_rss_mb']:.0f} | {r['wall_s']:.1f} | {rate} |")
        lines += ["", "Each pass a fresh process (`bench/monitoring_data.py`): peak RSS is its own `VmHWM` "
                  "(`/proc/self/status`; `wait4`'s `ru_maxrss` would be no less than the parent's peak at the "
                  "spawn, which Linux carries over exec); s its whole life (imports included); rows/s the pass itself. "
                  "raw: the `pyarrow.dataset` scan with no monitor (`iter_batches` reads through one, default "
                  "readahead); files: each file through `ParquetFile.iter_batches`, no monitor.", ""]
    lines += [f"- **{t['result']}**: {t['target']} ({t['detail']})" for t in saved["targets"]]
    return "\n".join(lines) + "\n"
