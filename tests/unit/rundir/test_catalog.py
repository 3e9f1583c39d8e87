"""factory.rundir.catalog: runs listed, found and read back from their directories alone."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from factory.errors import FactoryError
from factory.rundir import catalog, layout, manifest


def _run(root: Path, name: str, started: str, metrics: dict | None = None, task: str = "demo") -> Path:
    run_dir = root / "outputs" / task / name
    run_dir.mkdir(parents=True)
    manifest.RunRecord(run_id=name, task_name=task, run_dir=str(run_dir), started_at=started, status="completed",
                       data={"source": "synthetic", "fingerprint": "f" * 64, "rows": {"train": 6, "test": 2}},
                       strategy={"name": "single"}).save()
    if metrics is not None:
        (run_dir / layout.METRICS).write_text(json.dumps(metrics))
    return run_dir


def test_list_runs_is_newest_first_with_flat_metrics(tmp_path):
    _run(tmp_path, "2026-01-01_00-00-00_aaaaaa", "2026-01-01T00:00:00+00:00", {"val": {"val/auc": 0.7}})
    _run(tmp_path, "2026-01-02_00-00-00_bbbbbb", "2026-01-02T00:00:00+00:00",
         {"test": {"test/auc": 0.8}, "baseline": {"auc": 0.5}, "checkpoint": "x.ckpt"})
    (tmp_path / "outputs" / "demo" / "broken").mkdir()
    (tmp_path / "outputs" / "demo" / "broken" / layout.MANIFEST).write_text("{half")  # skipped, not fatal
    frame = catalog.list_runs(tmp_path)
    assert list(frame["run_id"]) == ["2026-01-02_00-00-00_bbbbbb", "2026-01-01_00-00-00_aaaaaa"]
    # an old run's flat baseline was logistic regression's
    assert list(frame.columns) == catalog.RUN_COLUMNS + ["baseline/logistic_regression/auc", "test/auc", "val/auc"]
    assert frame.loc[0, "rows"] == 8 and frame.loc[0, "data_fingerprint"] == "f" * 12
    assert str(frame["started_at"].dt.tz) == "UTC"


def test_flat_metrics_name_each_baseline():
    metrics = {"test": {"test/auc": 0.8}, "baseline": {"logistic_regression": {"auc": 0.5},
                                                      "hist_gradient_boosting": {"auc": 0.6}}}
    assert catalog.flat_metrics(metrics) == {"test/auc": 0.8, "baseline/logistic_regression/auc": 0.5,
                                             "baseline/hist_gradient_boosting/auc": 0.6}


def test_list_runs_of_no_outputs_is_an_empty_frame_with_the_columns(tmp_path):
    frame = catalog.list_runs(tmp_path)
    assert frame.empty and list(frame.columns) == catalog.RUN_COLUMNS


def test_find_run_by_path_id_or_suffix(tmp_path):
    one = _run(tmp_path, "2026-01-01_00-00-00_aaaaaa", "2026-01-01T00:00:00+00:00")
    _run(tmp_path, "0_2026-01-03_00-00-00_cccccc", "2026-01-03T00:00:00+00:00", task="sweep")
    _run(tmp_path, "1_2026-01-03_00-00-00_cccccc", "2026-01-03T00:00:01+00:00", task="sweep")
    assert catalog.find_run(one) == one.resolve()
    assert catalog.find_run("aaaaaa", tmp_path) == one.resolve()
    assert catalog.find_run("2026-01-01_00-00-00_aaaaaa", tmp_path) == one.resolve()
    with pytest.raises(FactoryError, match=r"run id 'cccccc' matches 2 runs under"):
        catalog.find_run("cccccc", tmp_path)
    with pytest.raises(FactoryError, match=r"no run 'zzz': not a run directory, nor a run id under"):
        catalog.find_run("zzz", tmp_path)


def test_find_run_defaults_to_factory_root(tmp_path, monkeypatch):
    one = _run(tmp_path, "r1", "2026-01-01T00:00:00+00:00")
    monkeypatch.setenv("FACTORY_ROOT", str(tmp_path))
    assert catalog.outputs_dir() == tmp_path / "outputs"
    assert catalog.find_run("r1") == one.resolve()


def test_read_run_reads_record_config_metrics_and_history(tmp_path):
    run_dir = _run(tmp_path, "r1", "2026-01-01T00:00:00+00:00", {"val": {"val/auc": 0.7}})
    (run_dir / layout.CONFIG).write_text("seed: 3\n")
    (run_dir / layout.HISTORY).parent.mkdir()
    (run_dir / layout.HISTORY).write_text("epoch,step,train/loss\n0,4,0.5\n")
    run = catalog.read_run("r1", tmp_path)
    assert run.run_dir == run_dir.resolve() and run.run_id == "r1" and run.manifest.status == "completed"
    assert run.config.seed == 3 and run.metrics == {"val": {"val/auc": 0.7}}
    assert list(catalog.read_history(run_dir)["train/loss"]) == [0.5]


def test_a_run_without_config_metrics_or_history_reads_as_empty(tmp_path):
    run_dir = _run(tmp_path, "r1", "2026-01-01T00:00:00+00:00")
    run = catalog.RunFiles.read(run_dir)
    assert len(run.config) == 0 and run.metrics == {}
    assert list(catalog.read_history(run_dir).columns) == ["epoch", "step"]


def test_runs_below_a_folder_and_by_name(tmp_path):
    a = _run(tmp_path, "0_s1", "2026-01-01T00:00:00+00:00", task="sweep")
    b = _run(tmp_path, "1_s1", "2026-01-01T00:00:00+00:00", task="sweep")
    assert catalog.run_dirs_below(tmp_path / "outputs") == [a, b]
    assert catalog.run_dirs_below(tmp_path / "nope") == []
    assert catalog.runs_named("1_s1", tmp_path / "outputs") == [b]
    assert sorted(catalog.runs_named("s1", tmp_path / "outputs")) == [a, b]


def test_the_public_names_still_read_through_the_catalog(tmp_path):
    import factory
    from factory.analysis import notebook

    run_dir = _run(tmp_path, "r1", "2026-01-01T00:00:00+00:00")
    assert factory.list_runs is catalog.list_runs and notebook.find_run is catalog.find_run
    assert list(factory.runs(tmp_path)["run_id"]) == ["r1"]
    loaded = factory.load_run("r1", tmp_path)
    assert isinstance(loaded, factory.LoadedRun) and isinstance(loaded, catalog.RunFiles)
    assert loaded.run_dir == run_dir.resolve() and loaded.steps.empty


def test_runs_of_one_second_list_in_order_beside_older_records(tmp_path):
    """run.json records milliseconds; records written with whole seconds still parse beside them."""
    import time

    from factory.rundir.catalog import list_runs

    older = tmp_path / "outputs" / "demo" / "older"
    older.mkdir(parents=True)
    manifest.RunRecord(run_id="older", task_name="demo", run_dir=str(older), status="completed",
                       started_at="2026-01-01T00:00:00+00:00").save()
    names = []
    for name in ("b_first", "a_second"):  # ids that sort against their start order
        run_dir = tmp_path / "outputs" / "demo" / name
        run_dir.mkdir(parents=True)
        manifest.RunRecord(run_id=name, task_name="demo", run_dir=str(run_dir), status="completed").save()
        names.append(name)
        time.sleep(0.005)
    assert list_runs(tmp_path)["run_id"].tolist() == ["a_second", "b_first", "older"]
