"""scripts/label.py end to end on a tiny registered model: export picks rows as Label Studio tasks,
import reads a (hand-written) Label Studio JSON export back as a new snapshot that trains."""
from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from omegaconf import open_dict

import factory
from factory import registry
from factory.data import labeling, snapshots
from factory.data.sources.sklearn_bundled import SklearnSource
from factory.serving import labeling as jobs
from tests.conftest import REPO, script_env
from tests.integration.helpers import TINY_DIAGNOSIS, trained_run


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """A FACTORY_ROOT holding ``diagnosis@production`` (1 epoch on breast_cancer) and its data snapshot."""
    root = tmp_path_factory.mktemp("label")
    run_dir = trained_run(root, TINY_DIAGNOSIS)
    version = registry.register(run_dir, registry=root / "registry")
    registry.promote(version.name, version.version, "production", registry=root / "registry")
    return root


@pytest.fixture
def env(root, monkeypatch) -> Path:
    monkeypatch.setenv("FACTORY_ROOT", str(root))
    return root


def _base(root: Path) -> str:
    """The training run's snapshot (the one snapshot not written by labeling)."""
    return next(s["id"] for s in snapshots.list_snapshots(root / "data") if s["source"] != "labeling")


def _label(root: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """``python scripts/label.py ARGS`` from ``cwd`` with ``FACTORY_ROOT=root`` (its registry and snapshots)."""
    return subprocess.run([sys.executable, str(REPO / "scripts" / "label.py"), *args], capture_output=True, text=True,
                          env=script_env(root), cwd=cwd, timeout=300)


def _export(root: Path, out: Path, *overrides: str, strategy: str = "uncertainty") -> dict:
    cfg = factory.compose("label", ["action=export", *overrides, f"out={out}"])
    with open_dict(cfg):  # both are config groups' names too: scripts/label.py takes them out before Hydra
        cfg.model, cfg.strategy = "diagnosis@production", strategy
    return jobs.export(cfg)


def _annotated(out: Path, label_of) -> list[dict]:
    """Label Studio's JSON export of ``out``'s tasks, each annotated by ``label_of(i, task)`` (None: not)."""
    tasks = json.loads((out / jobs.TASKS).read_text())
    exported = []
    for i, task in enumerate(tasks):
        label = label_of(i, task)
        annotations = [] if label is None else [{"id": 500 + i, "completed_by": 1, "was_cancelled": False,
                                                 "lead_time": 3.2, "result": [labeling.choice(label)]}]
        exported.append({"id": 40 + i, **task, "annotations": annotations, "drafts": [], "project": 1})
    return exported


def test_export_writes_tasks_config_rows_and_manifest_for_the_least_sure_rows(env, tmp_path):
    out = tmp_path / "batch"
    result = _label(env, tmp_path, "export", "model=diagnosis@production", "data=breast_cancer", "n=6",
                    "strategy=uncertainty", f"out={out}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"6 of 569 rows picked by uncertainty with diagnosis@1" in result.stdout
    assert sorted(p.name for p in out.iterdir()) == ["config.xml", "labeling.json", "rows.parquet", "tasks.json"]
    manifest = json.loads((out / "labeling.json").read_text())
    assert manifest["classes"] == ["malignant", "benign"] and manifest["target"] == "target"
    tasks = json.loads((out / "tasks.json").read_text())
    assert [t["data"]["row_id"] for t in tasks] == manifest["row_ids"]
    first = tasks[0]
    assert set(first["data"]["row"]) == set(manifest["features"])  # features only: no target, nothing else
    (prediction,) = first["predictions"]
    assert prediction["model_version"] == "diagnosis@1" and 0.5 <= prediction["score"] <= 1
    assert prediction["result"][0]["value"]["choices"][0] in manifest["classes"]
    config = ET.fromstring((out / "config.xml").read_text())
    assert [c.attrib["value"] for c in config.iter("Choice")] == ["malignant", "benign"]
    # the picks are the pool's least sure rows: no unpicked row is nearer the boundary
    model = registry.load("diagnosis@production")
    pool = SklearnSource("breast_cancer").load().table
    p = model.predict(pool)["score"].to_numpy()
    ids = np.array(labeling.row_ids(pool.select(model.features)))
    picked = np.isin(ids, manifest["row_ids"])
    assert picked.sum() == 6 and np.abs(p[picked] - 0.5).max() <= np.abs(p[~picked] - 0.5).min()
    rows = pq.read_table(out / "rows.parquet")
    assert rows.column("row_id").to_pylist() == manifest["row_ids"]


def test_export_from_files_with_the_diverse_strategy(env, tmp_path):
    pool = SklearnSource("breast_cancer").load().table.drop_columns(["target"])  # unlabeled
    pq.write_table(pool.slice(0, 300), tmp_path / "a.parquet")
    pq.write_table(pool.slice(300), tmp_path / "b.parquet")
    result = _label(env, tmp_path, "export", "model=diagnosis@production", f"data={tmp_path}/*.parquet", "n=4",
                    "pool=3", "strategy=diverse", "out=d")  # data= names files: the pool is read as input= reads it
    assert result.returncode == 0, result.stderr[-2000:]
    manifest = json.loads((tmp_path / "d" / "labeling.json").read_text())
    assert manifest["rows"] == 4 and manifest["pool_rows"] == 569 and manifest["strategy"] == "diverse"
    assert len(set(manifest["row_ids"])) == 4
    assert manifest["source"]["files"] == [str(tmp_path / "a.parquet"), str(tmp_path / "b.parquet")]


def test_export_refuses_a_used_folder_and_a_missing_model(env, tmp_path):
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "x").write_text("")
    result = _label(env, tmp_path, "export", "model=diagnosis@production", "data=breast_cancer",
                        f"out={tmp_path / 'used'}")
    assert result.returncode == 2 and result.stderr.strip().endswith("exists and is not an empty folder "
                                                                     "(a labeling batch is never overwritten)")
    result = _label(env, tmp_path, "export", "data=breast_cancer", f"out={tmp_path / 'o'}")
    assert result.returncode == 2 and "model: label.py export needs model=NAME@stage" in result.stderr
    result = _label(env, tmp_path, "relabel")
    assert result.returncode == 2 and result.stderr.startswith("error: usage: label.py export")


def test_import_appends_the_labeled_rows_as_a_new_snapshot_that_trains(env, tmp_path):
    out = tmp_path / "batch"
    manifest = _export(env, out, "data=breast_cancer", "n=5", strategy="random")
    export = tmp_path / "project-1-at-2026-12-07.json"
    export.write_text(json.dumps(_annotated(out, lambda i, task: "benign" if i % 2 else "malignant")))
    base = _base(env)
    result = _label(env, tmp_path, "import", str(export), f"tasks={out}", f"base={base[:8]}")
    assert result.returncode == 0, result.stderr[-2000:]
    line = result.stdout.strip().splitlines()[-1]
    sid = line.split()[1].rstrip(":")
    assert line == (f"snapshot {sid}: 5 labeled row(s) appended to {base} (574 rows); "
                    f"train on it with data.snapshot={sid}")
    snap = snapshots.read(sid, env / "data")
    parent = snapshots.read(base, env / "data")
    assert snap.record["parent"] == base and snap.schema == parent.schema
    assert snap.table.schema == parent.table.schema
    assert snap.table.slice(0, 569).equals(parent.table)
    added = snap.table.slice(569)
    assert added.column("target").to_pylist() == ["malignant", "benign", "malignant", "benign", "malignant"]
    rows = pq.read_table(out / "rows.parquet")
    assert added.select(rows.column_names[:-1]).equals(rows.drop_columns(["row_id"]).cast(
        added.select(rows.column_names[:-1]).schema))
    assert snap.record["meta"]["labeling"]["labels"] == {"benign": 2, "malignant": 3}
    assert manifest["model"]["ref"] == snap.record["meta"]["labeling"]["model"] == "diagnosis@1"
    # the same export again: the same content, the same snapshot
    again = _label(env, tmp_path, "import", str(export), f"tasks={out}", f"base={base}")
    assert again.stdout.strip().splitlines()[-1] == line
    trained = factory.train(factory.compose("train", [*TINY_DIAGNOSIS, f"data.snapshot={sid}"]))
    assert trained.status == "completed"


def test_import_without_base_appends_to_the_models_training_snapshot(env, tmp_path):
    out = tmp_path / "batch"
    manifest = _export(env, out, "data=breast_cancer", "n=3")
    assert manifest["base"] == _base(env)  # from the model's run record (data.snapshot)
    (out / "export.json").write_text(json.dumps(_annotated(out, lambda i, task: "benign" if i else None)))
    cfg = factory.compose("label", ["action=import", f"annotations={out / 'export.json'}", "unlabeled=skip"])
    result = jobs.import_labels(cfg)
    assert result["labeled"] == 2 and result["skipped"] == 1 and result["parent"] == manifest["base"]
    assert snapshots.read(result["snapshot"], env / "data").table.num_rows == 571


def test_a_model_without_a_training_snapshot_gives_a_snapshot_of_the_labeled_rows_alone(env, tmp_path):
    out = tmp_path / "batch"
    _export(env, out, "data=breast_cancer", "n=2")
    manifest = json.loads((out / "labeling.json").read_text())
    (out / "labeling.json").write_text(json.dumps({**manifest, "base": None}))  # as for a model trained before snapshots
    (out / "export.json").write_text(json.dumps(_annotated(out, lambda i, task: "malignant")))
    cfg = factory.compose("label", ["action=import", f"annotations={out / 'export.json'}"])
    result = jobs.import_labels(cfg)
    snap = snapshots.read(result["snapshot"], env / "data")
    assert result["parent"] is None and snap.record["parent"] is None and snap.table.num_rows == 2
    assert snap.schema.target == "target" and snap.schema.positive_label == "benign"
    assert snap.table.column("target").to_pylist() == ["malignant", "malignant"]


def test_import_names_every_problem_in_one_line_and_writes_nothing(env, tmp_path):
    out = tmp_path / "batch"
    _export(env, out, "data=breast_cancer", "n=3")
    exported = _annotated(out, lambda i, task: ["benign", "maybe", None][i])
    exported[0]["annotations"].append({"id": 9, "was_cancelled": False, "result": [labeling.choice("malignant")]})
    exported.append({"id": 99, "data": {"row_id": "0123456789abcdef", "row": {}}, "annotations": []})
    (tmp_path / "export.json").write_text(json.dumps(exported))
    before = snapshots.list_snapshots(env / "data")
    result = _label(env, tmp_path, "import", str(tmp_path / "export.json"), f"tasks={out}")
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: {tmp_path / 'export.json'}: 4 problem(s): ")
    for part in ("task 40 (row_id", "conflicting labels from its annotators: 'benign' x1, 'malignant' x1",
                 "task 41 (row_id", "label 'maybe' is not a class (malignant, benign)",
                 "task 42 (row_id", "no label", "task 99: unknown row_id '0123456789abcdef'"):
        assert part in line
    assert snapshots.list_snapshots(env / "data") == before
    result = _label(env, tmp_path, "import", str(tmp_path / "export.json"))
    assert result.returncode == 2 and f"tasks={tmp_path}: no labeling.json" in result.stderr
