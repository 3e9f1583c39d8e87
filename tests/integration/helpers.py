"""Small helpers shared by integration tests."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO, script_env

# Tiny, fast settings for the fraud experiment.
FAST_FRAUD = ["experiment=fraud_detection", "logger=csv", "data.source.rows=3000", "trainer.max_epochs=2",
              "data.batch_size=512"]


def run_script(tmp_path: Path, script: str, *overrides: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run ``scripts/<script>`` as a user would, from ``tmp_path``, outputs under it."""
    return subprocess.run([sys.executable, str(REPO / "scripts" / script), *overrides], capture_output=True,
                          text=True, env=script_env(tmp_path), cwd=tmp_path, timeout=timeout)


def run_dirs(root: Path) -> list[Path]:
    return sorted(p.parent for p in (root / "outputs").rglob("run.json"))


def manifest(run_dir: Path) -> dict:
    return json.loads((run_dir / "run.json").read_text())
