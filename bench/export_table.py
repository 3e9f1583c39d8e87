"""docs/serving.md's export table in one command: train each model, export it to ONNX (fp32 and int8), compare.

    python bench/export_table.py                      # trains 4 models (~1-2 min), ~2 min of exports
    python bench/export_table.py --root /tmp/exports  # keep the runs; a second call reuses them
    python bench/export_table.py --only digits --reps 1000

Each model is trained with ``scripts/train.py`` and measured by ``scripts/export.py RUN --format
onnx --quantize int8 --markdown`` in a process of its own (each comparison starts from a fresh
interpreter); the Markdown table goes to stdout, then the commands behind each row.
Latencies depend on the machine and what else runs on it: measure on an idle one.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

#: row name -> scripts/train.py overrides (logger=csv is added). mlp_wide at its config's own size
#: (width 1024, depth 4: ~3.2M parameters; the 151M of width=4096 depth=10 needs sharding to train).
MODELS = {
    "fraud_detection": ["experiment=fraud_detection"],
    "diagnosis": ["experiment=diagnosis"],
    "digits": ["experiment=digits"],
    "mlp_wide": ["model=mlp_wide", "task_name=mlp_wide", "trainer.max_epochs=3", "monitor.metric=val/pr_auc",
                 "monitor.mode=max"],
}


def latest_run(root: Path, task: str) -> Path | None:
    """The newest completed run of ``task`` under ``root/outputs``."""
    import json

    runs = sorted((root / "outputs" / task).glob("*/run.json"), reverse=True)
    return next((r.parent for r in runs if json.loads(r.read_text()).get("status") == "completed"), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, help="where runs and exports go (default: a temporary folder)")
    parser.add_argument("--only", nargs="+", choices=list(MODELS), help="these models only")
    parser.add_argument("--reps", type=int, default=300, help="timed calls at batch 1 (batch 256: a sixth)")
    args = parser.parse_args()
    root = args.root or Path(tempfile.mkdtemp(prefix="export-table."))
    env = {**os.environ, "FACTORY_ROOT": str(root)}
    from factory.export.compare import MARKDOWN_HEADER

    rows, commands = [], []
    for name in args.only or MODELS:
        train = ["scripts/train.py", *MODELS[name], "logger=csv"]
        run_dir = latest_run(root, name)
        if run_dir is None:
            print(f"training {name}: python {' '.join(train)}", file=sys.stderr)
            subprocess.run([sys.executable, *train], cwd=REPO, env=env, check=True, stdout=subprocess.DEVNULL)
            run_dir = latest_run(root, name)
        export = ["scripts/export.py", str(run_dir), "--format", "onnx", "--quantize", "int8",
                  "--output", str(root / "onnx" / f"{name}.onnx"), "--reps", str(args.reps), "--markdown"]
        print(f"exporting {name}: python {' '.join(export)}", file=sys.stderr)
        out = subprocess.run([sys.executable, *export], cwd=REPO, env=env, capture_output=True, text=True)
        if out.returncode != 0:
            sys.exit(f"{name}: export failed: {out.stderr.strip()}")
        print("\n".join(out.stdout.splitlines()[:-1]), file=sys.stderr)  # the readable comparison
        rows.append(out.stdout.splitlines()[-1])
        commands.append(f"- {name}: `python {' '.join(train)}`, then `python scripts/export.py "
                        f"outputs/{name}/<run> --format onnx --quantize int8 --markdown`")
    print(MARKDOWN_HEADER)
    print("\n".join(rows))
    print()
    print("\n".join(commands))


if __name__ == "__main__":
    main()
