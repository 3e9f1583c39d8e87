"""The retrain pipeline end to end: a tiny champion in production, challengers trained on new data,
the gate promoting one, refusing one on fairness and one on the margin, and a failing step."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from factory import compose, registry
from tests.integration.helpers import FAST_FRAUD, run_script, trained_run, visible_text

# A challenger the tiny champion (3,000 rows, 2 epochs) cannot match: more new rows, more epochs, and an
# age-band column for the fairness step (planted disparity: the model learns to flag 18-29 more).
STRONG = ["logger=csv", "data.source.rows=20000", "trainer.max_epochs=5", "data.batch_size=512",
          "+data.source.sensitive={column:customer_age_band,group:18-29,disparity:1.5}"]


@pytest.fixture(scope="module")
def champion_registry(tmp_path_factory) -> Path:
    """A registry holding fraud_detection v1 (FAST_FRAUD) in production; tests copy it before changing it."""
    root = tmp_path_factory.mktemp("champion")
    run_dir = trained_run(root, FAST_FRAUD)
    version = registry.register(run_dir, registry=root / "registry")
    registry.promote(version.name, version.version, "production", registry=root / "registry")
    return root / "registry"


def own_registry(champion_registry: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(champion_registry, tmp_path / "registry"))


def strict_json(path: Path) -> dict:
    def refuse(constant):
        raise AssertionError(f"{path} holds {constant}")

    return json.loads(path.read_text(), parse_constant=refuse)


def retrain(reg: Path, *pipeline: str) -> dict:
    """The fraud_detection pipeline with the strong challenger's overrides appended to its train list."""
    from factory.monitoring.pipeline import run_pipeline
    from factory.monitoring.retrain_args import add_arguments

    cfg = compose("retrain", ["pipeline=fraud_detection", f"registry={reg}", "pipeline.report=false", *pipeline])
    return run_pipeline(add_arguments(cfg, None, STRONG))


def test_a_better_fair_challenger_is_promoted_and_audited(champion_registry, tmp_path):
    reg = own_registry(champion_registry, tmp_path)
    record = retrain(reg, "pipeline.fairness.sensitive=customer_age_band",
                     "pipeline.fairness.limits.demographic_parity_difference=0.9",
                     "pipeline.fairness.limits.equalized_odds_difference=0.9")
    assert record["status"] == "completed" and record["failed_step"] is None
    assert record["decision"]["promote"] and record["decision"]["action"] == "gate_promote"
    assert record["champion"]["ref"] == "fraud_detection@1" and record["challenger"]["ref"] == "fraud_detection@2"
    assert registry.get("fraud_detection@production", registry=reg).version == 2
    assert registry.get("fraud_detection@1", registry=reg).stage == "archived"
    # The record on disk is the one returned, strict JSON, every step completed with its inputs and figures.
    on_disk = strict_json(Path(record["path"]))
    assert on_disk == json.loads(json.dumps(record))
    assert Path(record["path"]).parent.parent == tmp_path / "outputs" / "pipeline" / "fraud_detection"
    assert [s["status"] for s in on_disk["steps"].values()] == ["completed"] * 6
    steps = on_disk["steps"]
    assert len(steps["check_data"]["fingerprint"]) == 64 and steps["check_data"]["rows"] == 20000
    assert steps["check_data"]["fingerprint"] != on_disk["champion"]["data"]["fingerprint"]  # new data
    assert steps["score"]["holdout"]["rows"] == steps["check_data"]["splits"]["test"]  # nothing shared with v1
    assert steps["score"]["holdout"]["champion_rows_checked"] is True
    assert steps["score"]["challenger"] > steps["score"]["champion"] + 0.01
    assert steps["fairness"]["challenger"]["demographic_parity_difference"] is not None
    assert set(steps["fairness"]["challenger"]["groups"]) == {"18-29", "30-49", "50+"}
    # The audit log: the promotion the gate made, then its decision (never a decision claiming one that failed).
    audit = registry.audit(registry=reg)
    gate = [e for e in audit if e["action"].startswith("gate_")]
    assert [(e["action"], e["version"]) for e in gate] == [("gate_promote", 2)]
    assert gate[0]["details"]["record"] == record["path"] and gate[0]["details"]["champion"] == "fraud_detection@1"
    assert [e["action"] for e in audit[-3:]] == ["promote", "archive", "gate_promote"]


def test_an_unfair_challenger_is_refused_and_the_champion_kept(champion_registry, tmp_path):
    reg = own_registry(champion_registry, tmp_path)
    record = retrain(reg, "pipeline.fairness.sensitive=customer_age_band",
                     "pipeline.fairness.limits.demographic_parity_difference=0.0")
    decision = record["decision"]
    assert record["status"] == "completed" and not decision["promote"] and decision["action"] == "gate_keep"
    assert decision["checks"]["metric"]["passed"] and not decision["checks"]["fairness"]["passed"]
    assert decision["reasons"][0].startswith("fairness: demographic_parity_difference")
    assert registry.get("fraud_detection@production", registry=reg).version == 1
    assert registry.get("fraud_detection@2", registry=reg).stage == "none"  # registered, never staged
    assert [e["action"] for e in registry.audit(registry=reg)][-1] == "gate_keep"


def test_the_cli_keeps_the_champion_short_of_the_margin(champion_registry, tmp_path):
    reg = own_registry(champion_registry, tmp_path)
    result = run_script(tmp_path, "retrain.py", "experiment=fraud_detection", "model=fraud_detection",
                        "data.source.seed=7", "data.source.world_seed=42", *STRONG[:4], f"registry={reg}",
                        "pipeline.margin=1.0", "pipeline.report=true")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "kept fraud_detection@1 at production" in result.stdout and "less than the margin 1" in result.stdout
    (path,) = (tmp_path / "outputs" / "pipeline" / "fraud_detection").glob("*/pipeline.json")
    record = strict_json(path)
    assert record["config"]["model"] == "fraud_detection" and record["config"]["margin"] == 1.0
    assert "experiment=fraud_detection" in record["steps"]["config"]["train_overrides"]
    assert registry.get("fraud_detection@production", registry=reg).version == 1
    # pipeline.report=true: the champion/challenger report on the record, through the report engine.
    (html,) = (tmp_path / "reports" / "champion_challenger").glob("*/report.html")
    text = visible_text(html.read_text())
    assert "kept fraud_detection@1 at production" in text and "less than the margin 1" in text
    assert "pr_auc on the holdout" in text and "Traceback" not in text and "NaN" not in text


def test_a_failing_step_stops_the_job_in_one_line_and_promotes_nothing(champion_registry, tmp_path):
    reg = own_registry(champion_registry, tmp_path)
    (tmp_path / "new.csv").write_text("amount,hour\n1.0,2\n")  # no is_fraud column
    before = registry.audit(registry=reg)
    result = run_script(tmp_path, "retrain.py", "experiment=fraud_detection", "model=fraud_detection",
                        f"registry={reg}", "logger=csv", "data=files",
                        "data.source.path=new.csv", "data.source.target=is_fraud")
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: retrain step check_data failed:"), result.stderr
    assert "is_fraud" in lines[0]
    (path,) = (tmp_path / "outputs" / "pipeline" / "fraud_detection").glob("*/pipeline.json")
    record = strict_json(path)
    assert record["status"] == "failed" and record["failed_step"] == "check_data"
    assert record["steps"]["check_data"]["status"] == "failed" and "train" not in record["steps"]
    assert record["decision"] is None
    assert registry.audit(registry=reg) == before  # nothing registered, nothing promoted
    assert not (tmp_path / "outputs" / "fraud_detection").exists()  # no challenger trained


def test_with_no_champion_the_floor_decides(tmp_path):
    from factory.monitoring.pipeline import run_pipeline
    from factory.monitoring.retrain_args import add_arguments

    reg = tmp_path / "registry"  # empty: no model yet
    cfg = compose("retrain", ["pipeline=fraud_detection", f"registry={reg}", "pipeline.report=false",
                              "pipeline.floor=0.05"])
    record = run_pipeline(add_arguments(cfg, None, FAST_FRAUD[1:]))
    assert record["champion"] is None and record["steps"]["score"]["champion"] is None
    assert record["steps"]["check_data"]["drift"] == {"skipped": "no champion"}
    assert record["steps"]["score"]["holdout"]["note"] == "no champion"
    # A 2-epoch model on 3,000 rows is far above a PR-AUC of 0.05 (the positives' base rate is 0.015).
    assert record["decision"]["promote"] and record["decision"]["checks"]["metric"]["challenger"] >= 0.05
    assert record["decision"]["reasons"][0].startswith("pr_auc: no champion; challenger")
    assert registry.get("fraud_detection@production", registry=reg).version == 1


def test_a_mode_that_contradicts_the_metric_fails_before_anything_is_written(tmp_path):
    from factory.errors import ConfigError
    from factory.monitoring.pipeline import run_pipeline

    cfg = compose("retrain", ["pipeline=fraud_detection", f"registry={tmp_path / 'registry'}",
                              "pipeline.metric=loss", "pipeline.mode=max"])
    with pytest.raises(ConfigError, match=r"^pipeline.mode: 'max' contradicts pipeline.metric 'loss', where min"):
        run_pipeline(cfg)
    assert not (tmp_path / "outputs").exists()


def test_an_explicit_loss_metric_is_judged_lower_is_better(tmp_path):
    from omegaconf import OmegaConf

    from factory.monitoring.pipeline import _Job

    cfg = compose("retrain", ["pipeline=fraud_detection", f"registry={tmp_path / 'registry'}", "pipeline.metric=loss"])
    job = _Job(cfg, OmegaConf.to_container(cfg.pipeline, resolve=True), {"steps": {}}, tmp_path / "pipeline.json")
    assert job._config()["metric"] == {"name": "loss", "mode": "min", "mode_from": "metric"}


# The champion's own data (FAST_FRAUD: seed 42, 3,000 rows) split another way: the challenger's test split
# holds rows the champion trained or validated on.
SAME_DATA_OTHER_SPLIT = [*FAST_FRAUD[1:], "data.source.seed=42", "data.split_seed=7", "trainer.max_epochs=1"]


def retrain_on(reg: Path, train: list[str], *pipeline: str) -> dict:
    from factory.monitoring.pipeline import run_pipeline
    from factory.monitoring.retrain_args import add_arguments

    cfg = compose("retrain", ["pipeline=fraud_detection", f"registry={reg}", "pipeline.report=false", *pipeline])
    return run_pipeline(add_arguments(cfg, None, train))


def test_holdout_rows_the_champion_trained_on_are_dropped(champion_registry, tmp_path):
    reg = own_registry(champion_registry, tmp_path)
    record = retrain_on(reg, SAME_DATA_OTHER_SPLIT, "pipeline.require_disjoint_holdout=true")
    steps = record["steps"]
    assert steps["check_data"]["fingerprint"] == record["champion"]["data"]["fingerprint"]  # the champion's table
    holdout = steps["score"]["holdout"]
    assert holdout["champion_rows_checked"] is True and holdout["note"] is None
    # 80% of the table was the champion's train/val: most of the other split's test rows are dropped.
    assert holdout["removed_champion_rows"] > holdout["rows_in_split"] // 2
    assert holdout["rows"] == holdout["rows_in_split"] - holdout["removed_champion_rows"]
    assert record["decision"]["checks"]["holdout"]["passed"]


def test_a_champion_whose_data_changed_is_unchecked_and_can_be_required(champion_registry, tmp_path):
    reg = own_registry(champion_registry, tmp_path)
    (meta_path,) = reg.glob("fraud_detection/v1/meta.json")
    meta = json.loads(meta_path.read_text())
    meta["data"]["fingerprint"] = "0" * 64  # as if its files had been rewritten since it trained
    meta_path.write_text(json.dumps(meta))
    record = retrain_on(reg, SAME_DATA_OTHER_SPLIT, "pipeline.require_disjoint_holdout=true", "pipeline.floor=null")
    holdout = record["steps"]["score"]["holdout"]
    assert holdout["champion_rows_checked"] is False and holdout["removed_champion_rows"] == 0
    assert "not the " + "0" * 64 + " it trained on" in holdout["note"]
    decision = record["decision"]
    assert not decision["promote"] and not decision["checks"]["holdout"]["passed"]
    assert any(r.startswith("holdout: its overlap with the champion's rows was not checked") for r in decision["reasons"])
    assert registry.get("fraud_detection@production", registry=reg).version == 1


def test_requiring_a_disjoint_holdout_without_excluding_rows_is_a_config_error(tmp_path):
    from factory.errors import ConfigError
    from factory.monitoring.pipeline import run_pipeline

    cfg = compose("retrain", ["pipeline=fraud_detection", f"registry={tmp_path / 'registry'}",
                              "pipeline.require_disjoint_holdout=true", "pipeline.exclude_champion_rows=false"])
    with pytest.raises(ConfigError, match="^pipeline.require_disjoint_holdout"):
        run_pipeline(cfg)


def test_a_promotion_that_fails_is_never_audited_as_one(tmp_path, monkeypatch):
    from factory.monitoring.pipeline import PipelineError, run_pipeline
    from factory.monitoring.retrain_args import add_arguments

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(registry, "promote", full_disk)  # the registry write fails after the gate said promote
    reg = tmp_path / "registry"  # empty: no champion, no floor, so the gate promotes
    cfg = compose("retrain", ["pipeline=fraud_detection", f"registry={reg}", "pipeline.report=false",
                              "pipeline.floor=null"])
    with pytest.raises(PipelineError, match="retrain step decide failed: OSError: .*No space left on device"):
        run_pipeline(add_arguments(cfg, None, [*FAST_FRAUD[1:], "trainer.max_epochs=1"]))
    audit = registry.audit(registry=reg)
    assert "gate_promote" not in [e["action"] for e in audit]
    assert audit[-1]["action"] == "gate_keep" and "No space left" in audit[-1]["details"]["promotion_failed"]
    (path,) = (tmp_path / "outputs" / "pipeline" / "fraud_detection").glob("*/pipeline.json")
    assert strict_json(path)["failed_step"] == "decide"
