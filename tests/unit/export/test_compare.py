"""factory.export.compare's pieces that need no model: the headline metric, its value, the table row."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, average_precision_score

from factory.errors import FactoryError
from factory.export.compare import BACKENDS, BATCHES, MARKDOWN_HEADER, Comparison, headline_metric, metric_value


@pytest.mark.parametrize("task, monitor, expected", [
    ("binary", "val/pr_auc", "pr_auc"), ("binary", "val/loss", "accuracy"), ("multiclass", "val/accuracy", "accuracy"),
    ("multiclass", None, "accuracy"), ("regression", "val/loss", "mse"), ("regression", "val/r2", "r2"),
])
def test_headline_metric_is_the_monitored_one_unless_a_loss(task, monitor, expected):
    assert headline_metric(task, monitor) == expected


def test_metric_values_are_training_s():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    p = np.clip(y * 0.3 + rng.random(200) * 0.7, 0, 1).astype(np.float32)
    assert metric_value("binary", "pr_auc", p, y, 2) == pytest.approx(average_precision_score(y, p), abs=1e-6)
    probs = rng.dirichlet(np.ones(3), 50).astype(np.float32)
    labels = rng.integers(0, 3, 50)
    assert metric_value("multiclass", "accuracy", probs, labels, 3) == pytest.approx(
        accuracy_score(labels, probs.argmax(axis=1)))
    with pytest.raises(FactoryError, match="metric 'pr_auc': not one of the multiclass metrics"):
        metric_value("multiclass", "pr_auc", probs, labels, 3)


def test_markdown_row_fits_the_header():
    c = Comparison("binary", 10, 1234, {"fp32": 2_000_000}, {"fp32": 1e-7}, {"fp32": 1.0}, "auroc",
                   {"torch": 0.9, "fp32": 0.9}, {(b, n): (0.1, 0.2) for b in BACKENDS[:2] for n in BATCHES})
    row = c.markdown_row("tiny")
    header, rule = MARKDOWN_HEADER.splitlines()
    assert row.count("|") == header.count("|") == rule.count("|")
    assert row.startswith("| tiny | 1,234 | 2.00 | — | 1.0e-07 | — | auroc 0.9000 | +0.0000 | — | 0.100 / 0.200 |")
    assert "int8" not in "\n".join(c.lines())  # nothing said about a copy that was not made
