"""notebooks/active_learning.ipynb executes under papermill in the factory kernel and draws its curve;
factory.analysis.active_learning's simulated annotator shows uncertainty beating random."""
from __future__ import annotations

import nbformat
import pytest

from factory.analysis import active_learning
from factory.errors import ConfigError
from tests.conftest import REPO


def test_active_learning_notebook_runs_and_plots_the_curves(tmp_path):
    import papermill

    out = tmp_path / "active_learning.ipynb"
    papermill.execute_notebook(str(REPO / "notebooks" / "active_learning.ipynb"), str(out), kernel_name="factory",
                               cwd=str(tmp_path), progress_bar=False,
                               parameters={"overrides": ["data=fraud", "data.source.rows=4000"], "rounds": 3,
                                           "repeats": 1, "batch": 20, "start": 30})
    nb = nbformat.read(out, as_version=4)
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 1
    text = "\n".join(o.get("data", {}).get("text/markdown", "") + o.get("data", {}).get("text/plain", "")
                     for o in outputs)
    assert "Test pr_auc with 90 labels: **uncertainty**" in text and "**random**" in text and "**diverse**" in text
    assert "all 2,800 train labels" in text


def test_uncertainty_beats_random_for_the_rare_class():
    results = active_learning.simulate(["data=fraud", "data.source.rows=20000"], start=50, batch=25, rounds=8,
                                       repeats=2, metric="pr_auc")
    assert sorted(results["labels"].unique()) == list(range(50, 251, 25))
    final = results[results["labels"] == 250].groupby("strategy")["metric"].mean()
    assert final["uncertainty"] > 1.3 * final["random"]
    assert results.attrs["all_labels"] > final["uncertainty"]
    assert "uncertainty" in active_learning.summary(results).index


def test_bad_strategy_or_metric_is_one_line():
    with pytest.raises(ConfigError, match="expected strategies among uncertainty, random, diverse"):
        active_learning.simulate(["data=breast_cancer"], ["smart"])
    with pytest.raises(ConfigError, match="metric 'pr_auc' needs a binary task; this data's task is multiclass"):
        active_learning.simulate(["data=digits"], metric="pr_auc")
