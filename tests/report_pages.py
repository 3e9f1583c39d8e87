"""Every kind of report page, built from tiny real runs as a user builds them, and its screenshots.

``build`` trains a two-trial sweep (binary) and a multiclass run with ``scripts/train.py``, then
runs each report with ``scripts/report.py``: a run report per task, the compare report, the
sweep report and the index. The browser test reads each page; ``make report-screenshots``
(``python -m tests.report_pages docs/images/reports``) photographs them for docs/reports.md.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO, script_env

SWEEP = ["-m", "experiment=diagnosis", "logger=csv", "trainer.max_epochs=3", "model.net.dropout=0.1,0.3"]
MULTICLASS = ["experiment=digits", "logger=csv", "trainer.max_epochs=2"]


def _script(root: Path, script: str, *arguments: str) -> None:
    done = subprocess.run([sys.executable, str(REPO / "scripts" / script), *arguments], capture_output=True,
                          text=True, env=script_env(root), cwd=root, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"{script} {' '.join(arguments)} exited with {done.returncode}:\n"
                           f"{(done.stdout + done.stderr)[-3000:]}")


def _newest_report(root: Path, name: str) -> Path:
    entries = json.loads((root / "reports" / "index.json").read_text())["runs"]
    entry = next(e for e in entries if e["name"] == name)  # newest first
    if entry["status"] != "completed":
        raise RuntimeError(f"report {name} {entry['status']}: {entry.get('error')}")
    return root / "reports" / entry["html"]


def build(root: Path) -> dict[str, Path]:
    """Train the runs and render every report under ``root``; returns page name -> HTML file."""
    root.mkdir(parents=True, exist_ok=True)
    _script(root, "train.py", *SWEEP)
    _script(root, "train.py", *MULTICLASS)
    outputs = root / "outputs"
    sweep = next(p.parent for p in outputs.rglob("sweep.json"))
    binary_run = sorted(p.parent for p in sweep.rglob("run.json"))[0]
    multiclass_run = next(p.parent for p in (outputs / "digits").rglob("run.json"))

    pages = {}
    for page, arguments in {
        "run_report_binary": ["report=run_report", f"report.parameters.run_dir={binary_run}"],
        "run_report_multiclass": ["report=run_report", f"report.parameters.run_dir={multiclass_run}"],
        "compare_runs": ["report=compare_runs", "report.parameters.experiment=diagnosis"],
        "sweep_report": ["report=sweep_report", f"report.parameters.sweep_dir={sweep}"],
    }.items():
        _script(root, "report.py", *arguments)
        pages[page] = _newest_report(root, arguments[0].split("=", 1)[1])
    pages["index"] = root / "reports" / "index.html"
    return pages


def main(argv: list[str]) -> None:
    """``python -m tests.report_pages <folder>``: a PNG of each page into ``<folder>``."""
    import tempfile

    from tests.browser import chromium, screenshot

    if len(argv) != 1:
        sys.exit("usage: python -m tests.report_pages <folder for the PNGs>")
    browser = chromium()
    if browser is None:
        sys.exit("error: headless Chromium is needed: apt-get install chromium")
    folder = Path(argv[0]).resolve()
    with tempfile.TemporaryDirectory(prefix="factory-report-pages-") as scratch:
        for page, html in build(Path(scratch)).items():
            png = screenshot(html, folder / f"{page}.png", browser)
            print(f"{png} ({png.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main(sys.argv[1:])
