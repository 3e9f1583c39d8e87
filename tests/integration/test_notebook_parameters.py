"""A notebook's `overrides` parameter works as papermill's command line passes it: `-p` gives
a string, here a JSON list, and the notebook runs the data config it names."""
from __future__ import annotations

import subprocess
import sys

import nbformat

from tests.conftest import REPO


def test_papermill_p_passes_overrides_as_a_json_string(tmp_path):
    out = tmp_path / "explore.ipynb"
    papermill = [sys.executable, "-m", "papermill", str(REPO / "notebooks" / "01_explore_data.ipynb"), str(out),
                 "-k", "factory", "--cwd", str(tmp_path), "--no-progress-bar"]
    result = subprocess.run([*papermill, "-p", "overrides", '["data=breast_cancer"]'],
                            capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-2000:]
    nb = nbformat.read(out, as_version=4)
    injected = next(c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", []))
    assert 'overrides = "[\\"data=breast_cancer\\"]"' in injected.source  # a string, as papermill -p passes it
    text = "\n".join(o.get("text", "") + o.get("data", {}).get("text/plain", "")
                     for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "mean_radius" in text and "merchant" not in text  # breast_cancer's columns, not the default fraud data's
