"""Every JSON file factory writes is strict JSON: no bare NaN or Infinity (issue 9)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from factory import files
from factory.rundir import manifest
from factory.registry import store
from factory.registry.store import Registry
from factory.reports import index as report_index
from factory.sweeps import journal


def _strict(text: str):
    def refuse(constant):
        raise AssertionError(f"not strict JSON: bare {constant}")

    return json.loads(text, parse_constant=refuse)


def test_write_json_turns_non_finite_numbers_into_null(tmp_path):
    obj = {"nan": float("nan"), "inf": float("inf"), "ninf": -np.inf, "f32": np.float32(0.5),
           "i64": np.int64(7), "nested": [{"x": np.float64("nan")}, (1.5, True)], "path": tmp_path}
    data = _strict(files.write_json(tmp_path / "out.json", obj).read_text())
    assert data == {"nan": None, "inf": None, "ninf": None, "f32": 0.5, "i64": 7,
                    "nested": [{"x": None}, [1.5, True]], "path": str(tmp_path)}


def test_metrics_and_manifest_are_strict(tmp_path):
    _strict(manifest.save_metrics(tmp_path, {"val": {"val/loss": float("nan")}}).read_text())
    record = manifest.RunRecord(run_id="r", task_name="t", run_dir=str(tmp_path),
                                monitor={"metric": "val/loss", "best": float("inf")})
    assert _strict(record.save().read_text())["monitor"]["best"] is None


def test_registry_index_and_audit_are_strict(tmp_path):
    registry = Registry(tmp_path / "registry")
    staged = registry.root / store.STAGING / "w"
    staged.mkdir(parents=True)
    (staged / store.CHECKPOINT).write_text("weights")
    metric = {"name": "val/loss", "mode": "min", "val": float("nan"), "test": float("inf")}
    registry.add("fraud", staged, {"run_id": "r", "run_dir": "/runs/r", "loss": float("nan")}, metric)
    index = _strict((registry.root / store.INDEX).read_text())
    assert index["models"]["fraud"]["versions"]["1"]["metric"]["val"] is None
    _strict((registry.root / "fraud" / "v1" / store.METADATA).read_text())
    for line in (registry.root / store.AUDIT).read_text().splitlines():
        _strict(line)


def test_sweep_journal_and_report_index_are_strict(tmp_path):
    journal.start(tmp_path, kind="grid", command="train", metric="val/loss", mode="min")
    journal.update_trial(tmp_path, 0, status="failed", value=float("nan"))
    assert _strict(journal.path(tmp_path).read_text())["trials"][0]["value"] is None
    report_index.record(tmp_path / "reports", {"id": "a", "started_at": "x", "score": float("-inf")})
    _strict((tmp_path / "reports" / report_index.INDEX_JSON).read_text())


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_json_text_writes_null_for_non_finite(value):
    assert files.json_text({"v": value}) == '{"v": null}'
