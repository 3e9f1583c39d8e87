"""Energy and carbon in the manifests: a training run's run.json and factory.runs(), a scoring job's _score.json,
a report's index entry, and ``energy.track=false``, which records none and never loads codecarbon.

Two short training runs in all: one measured (in process), one not (a subprocess, to look at its modules).
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import factory
from factory import registry
from factory.reports.execute import run_report
from factory.reports.spec import ReportSpec
from factory.serving.score import MANIFEST, score
from tests.conftest import REPO, script_env
from tests.integration.helpers import FAST_FRAUD, manifest, trained_run

LABELS = ("measured", "estimated")


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("energy")


@pytest.fixture(scope="module")
def run_dir(root) -> Path:
    return trained_run(root, [*FAST_FRAUD, "baseline=null", "energy.country=DEU"])


def test_run_json_records_energy_with_its_method(run_dir):
    record = manifest(run_dir)
    energy = record["energy"]
    assert energy["kwh"] > 0 and energy["kg_co2e"] > 0
    assert energy["method"] in LABELS and energy["country"] == "DEU"
    assert set(energy["sources"]) == {"cpu", "gpu", "ram"}
    assert 0 <= energy["duration_s"] <= record["duration_s"]  # the tracker lives inside the run
    json.loads((run_dir / "run.json").read_text(), parse_constant=pytest.fail)  # strict JSON: no NaN


def test_runs_table_shows_kwh_and_co2(root, run_dir):
    row = factory.runs(root=root).set_index("run_id").loc[run_dir.name]
    energy = manifest(run_dir)["energy"]
    assert row["kwh"] == energy["kwh"] and row["kg_co2e"] == energy["kg_co2e"]
    assert row["energy_method"] == energy["method"]


def test_scoring_manifest_records_energy(root, run_dir, tmp_path):
    reg = root / "registry"
    version = registry.register(run_dir, registry=reg)
    cfg = factory.compose("score", [f"registry={reg}", "backend=torch", "data=fraud", "data.source.rows=2000",
                                    f"output={tmp_path / 'scored'}", "progress=false"], check=False)
    cfg.model = version.ref  # what scripts/score.py does with model=REF (a config group's name too)
    written = score(cfg)
    on_disk = json.loads((tmp_path / "scored" / MANIFEST).read_text())
    assert on_disk["energy"] == written["energy"]
    assert on_disk["energy"]["kwh"] > 0 and on_disk["energy"]["method"] in LABELS
    assert on_disk["energy"]["country"] == "USA"  # conf/energy/default.yaml, through conf/score.yaml


def test_track_false_records_none_and_loads_no_codecarbon(tmp_path):
    code = ("import json, sys, factory; "
            "result = factory.train(factory.compose('train', sys.argv[1:])); "
            "print(json.dumps([result.status, 'codecarbon' in sys.modules]))")
    done = subprocess.run([sys.executable, "-c", code, *FAST_FRAUD, "baseline=null", "trainer.max_epochs=1",
                           "energy.track=false"], capture_output=True, text=True, cwd=REPO, timeout=600,
                          env=script_env(tmp_path))
    assert done.returncode == 0, done.stderr[-2000:]
    status, loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert status == "completed" and loaded is False
    (record,) = [json.loads(p.read_text()) for p in tmp_path.rglob("run.json")]
    assert record["energy"] is None



def test_report_index_entry_records_energy(tmp_path):
    spec = ReportSpec(name="tiny", notebook=REPO / "tests" / "notebooks" / "tiny_report.ipynb", parameters={},
                      timeout=60)
    result = run_report(spec, tmp_path / "reports", energy={"track": True, "country": "FRA"})
    (entry,) = json.loads((tmp_path / "reports" / "index.json").read_text())["runs"]
    assert entry["energy"] == result.energy and entry["energy"]["method"] in LABELS
    assert entry["energy"]["kwh"] > 0 and entry["energy"]["country"] == "FRA"
    assert "kWh (" in (tmp_path / "reports" / "index.html").read_text()  # the method beside the number
