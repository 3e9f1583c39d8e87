"""What papermill costs per report: run_report.ipynb as a report against the same code as a script.

    python bench/report.py              # median of 3; rewrites the "## Reports" section of docs/benchmarks.md
    python bench/report.py --no-write

A 2-epoch ``diagnosis`` run is trained once in a temporary ``FACTORY_ROOT``. Then, alternating,
(a) ``factory.reports.run_report`` executes ``notebooks/run_report.ipynb`` on it (kernel start,
papermill, HTML export, index), and (b) the notebook's code cells, concatenated, run with this
interpreter as a subprocess, each cell's final expression displayed as in a kernel (figures
rendered to PNG). Overhead = median(a) - median(b); target: under 2 s per report.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "benchmarks.md"
NOTEBOOK = REPO / "notebooks" / "run_report.ipynb"
RESULTS_MARKER = "<!-- results: written by bench/overhead.py, do not edit below -->"
TARGET_S = 2.0

# Runs each cell as a kernel would: the last expression is displayed; figures become PNGs.
PRELUDE = '''
import ast, io, matplotlib
matplotlib.use("Agg")
from matplotlib.figure import Figure
import IPython.display

def display(*objects):
    for obj in objects:
        if isinstance(obj, Figure):
            obj.savefig(io.BytesIO(), format="png", bbox_inches="tight")
        else:
            repr(obj)
IPython.display.display = display

def run_cell(source, scope):
    tree = ast.parse(source)
    last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
    exec(compile(tree, "<cell>", "exec"), scope)
    if last is not None:
        value = eval(compile(ast.Expression(last.value), "<cell>", "eval"), scope)
        if value is not None:
            display(value)
'''


def script_for(run_dir: Path) -> str:
    """The notebook's code as one script, ``run_dir`` set as papermill would inject it."""
    nb = json.loads(NOTEBOOK.read_text())
    lines = [PRELUDE, "scope = {'display': display}"]
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        source = re.sub(r"^%matplotlib.*$", "", "".join(cell["source"]), flags=re.M)
        lines.append(f"run_cell({source!r}, scope)")
        if "parameters" in cell["metadata"].get("tags", []):  # papermill injects right after it
            lines.append(f"run_cell({f'run_dir = {str(run_dir)!r}'!r}, scope)")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="bench-report-"))
    env = {**os.environ, "FACTORY_ROOT": str(root)}
    subprocess.run([sys.executable, str(REPO / "scripts/train.py"), "experiment=diagnosis", "logger=csv",
                    "trainer.max_epochs=2"], cwd=root, env=env, check=True, capture_output=True)
    (run_dir,) = [p.parent for p in (root / "outputs").rglob("run.json")]
    script = root / "run_report_as_script.py"
    script.write_text(script_for(run_dir))
    report_cmd = [sys.executable, "-c",
                  "import sys; from factory.reports import run_report, spec_from_file; "
                  "run_report(spec_from_file('run_report', parameters={'run_dir': sys.argv[1]}), sys.argv[2])",
                  str(run_dir), str(root / "reports")]

    times: dict[str, list[float]] = {"report": [], "script": []}
    for i in range(args.repeats):
        order = [("report", report_cmd), ("script", [sys.executable, str(script)])]
        for name, cmd in order if i % 2 == 0 else order[::-1]:
            start = time.perf_counter()
            subprocess.run(cmd, cwd=root, env=env, check=True, capture_output=True)
            times[name].append(time.perf_counter() - start)
    report, plain = statistics.median(times["report"]), statistics.median(times["script"])
    overhead = report - plain
    verdict = "meets" if overhead < TARGET_S else "misses"
    section = (
        "## Reports\n\n"
        f"`bench/report.py`, {time.strftime('%Y-%m-%d %H:%M')}, median of {args.repeats}, "
        f"load average before {os.getloadavg()[0]:.1f}. `notebooks/run_report.ipynb` on a 2-epoch "
        "`diagnosis` run, each side a fresh process (both pay the imports):\n\n"
        "| | wall time (s) |\n|---|---|\n"
        f"| `factory.reports.run_report` (papermill + HTML + index) | {report:.2f} |\n"
        f"| the same code cells as a plain script (figures rendered to PNG) | {plain:.2f} |\n"
        f"| **overhead** | **{overhead:.2f}** ({verdict} the < {TARGET_S:.0f} s target) |\n\n"
        f"All timings: report {', '.join(f'{t:.2f}' for t in times['report'])}; "
        f"script {', '.join(f'{t:.2f}' for t in times['script'])}.\n\n")
    print(section)
    if not args.no_write:
        write_section(section)


def write_section(section: str) -> None:
    """Replace the ``## Reports`` section (up to the next heading or the results marker), else add it."""
    text = DOC.read_text()
    pattern = re.compile(r"^## Reports\n.*?(?=^## |^<!-- results|\Z)", re.M | re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: section, text, count=1)
    elif RESULTS_MARKER in text:
        text = text.replace(RESULTS_MARKER, section + RESULTS_MARKER, 1)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    DOC.write_text(text)


if __name__ == "__main__":
    main()
