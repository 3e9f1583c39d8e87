"""The columns batch scoring adds from the model's probabilities are those every backend's
``predict`` writes (``factory.models.predict.scored_frame``): same values, same types, per task."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from factory.models.predict import scored_frame
from factory.serving.score import added_columns


@pytest.mark.parametrize("task, labels, shape", [
    ("binary", [0, 1], (50,)),
    ("multiclass", ["a", "b", "c"], (50, 3)),
    ("regression", [], (50,)),
])
def test_added_columns_are_predicts(task, labels, shape):
    rng = np.random.default_rng(0)
    out = rng.random(shape, dtype=np.float32)
    if task == "multiclass":
        out /= out.sum(axis=1, keepdims=True)
    if task == "binary":
        out[:3] = [0.5, np.nextafter(np.float32(0.5), np.float32(0)), 1.0]  # the threshold's both sides
    table = pa.table({"x": np.arange(shape[0])})
    frame = scored_frame(table, None, task, labels, out, None)
    names = ["prediction", "score", *(f"prob_{label}" for label in labels if task == "multiclass")]
    got = added_columns(task, out)
    assert len(got) == len(names)
    for name, column in zip(names, got):
        expected = frame[name].to_numpy()
        assert column.to_numpy().dtype == expected.dtype, name
        np.testing.assert_array_equal(column.to_numpy(), expected, err_msg=name)
