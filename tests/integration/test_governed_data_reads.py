"""Restricted data outside training: score, monitor and label export with data= check access and
audit the read (the policy's classification of the dataset applies whatever the config says);
the reference profile's sample and label export's rows are stored encrypted."""
from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from omegaconf import open_dict

import factory
from factory import registry
from factory.errors import AccessError, DataError
from factory.governance.encryption import MAGIC
from tests.integration.helpers import TINY_DIAGNOSIS, trained_run

KEY = "44" * 32
REF = "diagnosis@production"
# breast_cancer's data config says public: the policy classifies the dataset restricted.
POLICY = """
datasets: {breast_cancer: restricted}
roles: {clinic: {datasets: [breast_cancer]}}
users: {trainer: [clinic]}
"""


def _env(mp, root: Path, user: str = "trainer", key: bool = True) -> None:
    mp.setenv("FACTORY_ROOT", str(root))
    mp.setenv("FACTORY_POLICY", str(root / "policy.yaml"))
    mp.setenv("FACTORY_AUDIT_LOG", str(root / "audit.jsonl"))
    mp.setenv("FACTORY_USER", user)
    if key:
        mp.setenv("FACTORY_DATA_KEY", KEY)
    else:
        mp.delenv("FACTORY_DATA_KEY", raising=False)


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("governed")
    (root / "policy.yaml").write_text(POLICY)
    with pytest.MonkeyPatch.context() as mp:
        _env(mp, root)
        run_dir = trained_run(root, TINY_DIAGNOSIS)
        version = registry.register(run_dir, registry=root / "registry", export=True)  # ONNX: monitor scores with it
        registry.promote(version.name, version.version, "production", registry=root / "registry")
    return root


def _encrypted(path: Path) -> bool:
    return path.read_bytes()[:len(MAGIC)] == MAGIC


def _reads(root: Path, purpose: str) -> list[dict]:
    entries = [json.loads(line) for line in (root / "audit.jsonl").read_text().splitlines()]
    return [e for e in entries if e.get("purpose") == purpose]


def _score(root: Path, out: Path) -> dict:
    from factory.cli import set_model
    from factory.serving.score import score

    cfg = factory.compose("score", [f"registry={root / 'registry'}", "data=breast_cancer", f"output={out}"],
                            check=False)
    set_model(cfg, REF)
    return score(cfg)


def test_the_profile_sample_of_restricted_data_is_encrypted(root, monkeypatch):
    from factory.monitoring.profile import load_profile

    version = registry.Registry(root / "registry").get(REF)
    run_sample = next((root / "outputs").rglob("profile-sample.parquet"))
    assert _encrypted(run_sample) and _encrypted(version.path / "profile-sample.parquet")
    _env(monkeypatch, root)
    assert load_profile(version.path).sample.num_rows > 0
    monkeypatch.delenv("FACTORY_DATA_KEY")
    with pytest.raises(DataError, match=r"profile-sample.parquet: the reference sample is encrypted .*FACTORY_DATA_KEY"):
        load_profile(version.path)
    assert load_profile(version.path, sample=False).sample is None  # profile.json alone needs no key


def test_score_data_is_refused_without_a_grant_and_audited_with_one(root, tmp_path, monkeypatch):
    _env(monkeypatch, root, user="mallory")
    with pytest.raises(AccessError, match=r"mallory may not read dataset 'breast_cancer' \(restricted\)"):
        _score(root, tmp_path / "refused.parquet")
    assert not (tmp_path / "refused.parquet").exists()
    _env(monkeypatch, root)
    _score(root, tmp_path / "scored.parquet")
    assert _reads(root, "score")[-1]["dataset"] == "breast_cancer"


def test_monitor_data_is_refused_without_a_grant(root, tmp_path, monkeypatch):
    from factory.cli import set_model
    from factory.monitoring.job import run

    _env(monkeypatch, root, user="mallory")
    cfg = factory.compose("monitor", [f"registry={root / 'registry'}", f"output_dir={tmp_path / 'monitor'}",
                                      "data=breast_cancer"], check=False)
    set_model(cfg, REF)
    with pytest.raises(AccessError, match="'breast_cancer' \\(restricted\\)"):
        run(cfg)
    _env(monkeypatch, root)
    try:
        run(cfg)
    except DataError as e:  # the quality check trips on breast_cancer's text classes later (not this test's matter)
        assert "positive_label" in str(e)
    assert _reads(root, "monitor")[-1]["dataset"] == "breast_cancer"  # granted: read, and audited


def _export(root: Path, out: Path) -> dict:
    from factory.serving import labeling as jobs

    cfg = factory.compose("label", ["action=export", "data=breast_cancer", "n=4", f"out={out}"])
    with open_dict(cfg):
        cfg.model, cfg.strategy, cfg.registry = REF, "uncertainty", str(root / "registry")
    return jobs.export(cfg)


def test_label_export_of_restricted_data_needs_the_key_and_encrypts_rows(root, tmp_path, monkeypatch):
    _env(monkeypatch, root, key=False)
    with pytest.raises(DataError, match=r"^dataset 'breast_cancer' is restricted: .*FACTORY_DATA_KEY"):
        _export(root, tmp_path / "nokey")
    assert not (tmp_path / "nokey").exists()
    _env(monkeypatch, root, user="mallory")
    with pytest.raises(AccessError, match="mallory may not read"):
        _export(root, tmp_path / "refused")
    _env(monkeypatch, root)
    manifest = _export(root, tmp_path / "batch")
    assert manifest["classification"] == "restricted" and manifest["rows_encrypted"] is True
    assert _encrypted(tmp_path / "batch" / "rows.parquet")
    with pytest.raises(Exception):
        pq.read_table(tmp_path / "batch" / "rows.parquet")
    assert _reads(root, "label-export")[-1]["dataset"] == "breast_cancer"
    from factory.serving.labeling import _read_rows

    assert _read_rows(tmp_path / "batch" / "rows.parquet", manifest).num_rows == 4
