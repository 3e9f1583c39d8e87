"""The monitoring job on a real registered model and a real request log.

One tiny fraud model is trained (its profile written by the after-run hook), registered, exported
and promoted for the module; request logs are written by ``RequestLog`` from generated traffic
scored by that model. Exit codes and one-line errors go through ``scripts/monitor.py``; the
figures are checked in process (``factory.monitoring.job.run``) where the command adds nothing.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

import factory
from factory import registry
from factory.data.sources import FraudSource
from factory.errors import FactoryError
from tests.conftest import REPO, script_env
from tests.integration.helpers import FAST_FRAUD, trained_run

SCRIPT = str(REPO / "scripts" / "monitor.py")
NAME = "fraud_detection"
FEATURES = ["amount", "merchant_category", "hour", "day_of_week", "distance_from_home_km", "card_age_days",
            "tx_velocity_24h", "is_foreign", "channel", "merchant_id"]
# A 3,000-row training set sees only part of the 500 merchants: fresh traffic has unseen merchant ids
# at a few percent without any drift, which is what the unseen-rate check is for; the tests raise it.
TINY_MODEL = ["monitor.drift.unseen_rate=0.2"]


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """A root whose registry holds ``fraud_detection@1`` (production, ONNX) with its profile."""
    root = tmp_path_factory.mktemp("monitor")
    version = registry.register(trained_run(root, [*FAST_FRAUD, "baseline=null"]), registry=root / "registry",
                                export=True)  # the run's profile goes with it
    registry.promote(version.name, version.version, "production", registry=root / "registry")
    return root


def traffic(rows: int = 3000, seed: int = 7, **knobs) -> pa.Table:
    """Fresh transactions from the training run's world (seed 42): no drift unless ``knobs`` plant one."""
    return FraudSource(rows=rows, seed=seed, world_seed=42, **knobs).load().table


def write_log(root: Path, serving: str, table: pa.Table, per_request: int = 50) -> Path:
    """``table`` scored by the production model and logged as the server logs it; the serving dir."""
    from factory.serving.request_log import RequestLog
    from factory.serving.request_log_files import log_dir

    model = registry.load(f"{NAME}@production", root / "registry", backend="onnx")
    scored = model.predict(table.select(FEATURES))
    serving_dir = root / serving
    log = RequestLog(log_dir(serving_dir, NAME))
    for start in range(0, table.num_rows, per_request):
        part = table.slice(start, per_request)
        end = start + part.num_rows
        log.append(request_id=f"req-{start}", model=NAME, version=model.version.version,
                   features={c: part[c].to_numpy(zero_copy_only=False) for c in FEATURES},
                   prediction=scored["prediction"].to_numpy()[start:end], score=scored["score"].to_numpy()[start:end])
    log.close()
    return serving_dir


def labels_file(path: Path, table: pa.Table, per_request: int = 50, flip: bool = False, **extra) -> Path:
    """A labels CSV (request_id, row, label[, extra columns]) for the rows ``write_log`` logged."""
    n = table.num_rows
    label = table["is_fraud"].to_pylist()
    columns = {"request_id": [f"req-{i - i % per_request}" for i in range(n)], "row": [i % per_request for i in range(n)],
               "label": [1 - v for v in label] if flip else label, **extra}
    pacsv.write_csv(pa.table(columns), path)
    return path


@pytest.fixture(scope="module")
def calm(root) -> Path:
    """A request log of traffic without drift."""
    return write_log(root, "serving-calm", traffic())


@pytest.fixture(scope="module")
def shifted(root) -> Path:
    """A request log whose amounts moved by one reference standard deviation (the generator's shift knob)."""
    return write_log(root, "serving-shifted", traffic(shift={"amount": 1.0}))


def monitor_cli(root: Path, tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, SCRIPT, f"model={NAME}@production", f"registry={root / 'registry'}",
                           f"output_dir={tmp_path / 'monitor'}", *overrides], capture_output=True, text=True,
                          env=script_env(tmp_path), cwd=tmp_path, timeout=300)


def monitor(root: Path, tmp_path: Path, *overrides: str) -> dict:
    """``factory.monitoring.job.run`` in process on the composed config, as the script runs it."""
    from factory.cli import set_model
    from factory.monitoring.job import run

    cfg = factory.compose("monitor", [f"registry={root / 'registry'}", f"output_dir={tmp_path / 'monitor'}",
                                      *TINY_MODEL, *overrides], check=False)
    set_model(cfg, f"{NAME}@production")
    return run(cfg)


def written(tmp_path: Path) -> dict:
    (path,) = (tmp_path / "monitor" / NAME).glob("*/monitor.json")
    return json.loads(path.read_text())


def test_traffic_without_drift_raises_no_alert_and_exits_0(root, calm, tmp_path):
    done = monitor_cli(root, tmp_path, f"serving_dir={calm}", *TINY_MODEL)
    assert done.returncode == 0, done.stderr + done.stdout
    assert "no alert" in done.stdout
    record = written(tmp_path)
    assert record["alerts"] == [] and record["drift"]["drifted"] == [] and record["exit_code"] == 0
    assert record["rows"] == 3000 and record["versions_seen"] == {"1": 3000}
    assert record["model"] == {**record["model"], "name": NAME, "version": 1, "stage": "production"}
    assert record["window"]["given"] == "last_24h" and record["source"]["kind"] == "request_log"
    assert record["thresholds"]["drift"]["unseen_rate"] == 0.2
    assert set(record["histograms"]) == {*FEATURES, "score"}
    amount = record["histograms"]["amount"]
    assert len(amount["current"]) == len(amount["reference"]) == len(amount["edges"]) + 1
    assert sum(amount["current"]) == 3000
    assert json.loads((Path(record["run_dir"]) / "monitor.json").read_text(), parse_constant=_no_constant)


def _no_constant(name):
    raise AssertionError(f"not strict JSON: {name}")


def test_planted_drift_in_amount_names_amount_alone_and_exits_3(root, shifted, tmp_path):
    from prometheus_client.parser import text_string_to_metric_families

    done = monitor_cli(root, tmp_path, f"serving_dir={shifted}", *TINY_MODEL)
    assert done.returncode == 3, done.stderr + done.stdout
    assert "ALERT drift: amount" in done.stdout and done.stderr == ""
    record = written(tmp_path)
    assert record["drift"]["drifted"] == ["amount"]
    assert {a["subject"] for a in record["alerts"] if a["check"] == "drift"} == {"amount"}
    (alert,) = [a for a in record["alerts"] if a["check"] == "drift"]
    assert alert["figure"] == "psi" and alert["value"] > alert["threshold"] == 0.1 and alert["reasons"]
    prom = (Path(record["run_dir"]) / "monitor.prom").read_text()
    samples = {(s.name, s.labels.get("feature")): s.value
               for family in text_string_to_metric_families(prom) for s in family.samples}
    assert samples[("factory_monitor_drift_detected", "amount")] == 1
    assert samples[("factory_monitor_drift_detected", "hour")] == 0
    assert samples[("factory_monitor_feature_psi", "amount")] == pytest.approx(record["drift"]["features"]["amount"]["psi"])
    assert samples[("factory_monitor_alerts", None)] == len(record["alerts"])
    assert samples[("factory_monitor_rows", None)] == 3000
    # the served model's copy, for the server's /metrics
    assert (shifted / NAME / "monitoring" / "drift.prom").read_text() == prom


def test_labels_give_quality_figures_against_validation(root, calm, tmp_path):
    labels = labels_file(tmp_path / "labels.csv", traffic())
    record = monitor(root, tmp_path, f"serving_dir={calm}", f"labels={labels}", "monitor.quality.max_ece=null")
    quality = record["quality"]
    assert quality["labelled_rows"] == 3000 and quality["join"]["unmatched"] == 0
    assert 0.5 < quality["overall"]["auroc"] <= 1 and quality["overall"]["pr_auc"] is not None
    assert set(quality["overall"]["confusion"]) >= {"tp", "fp", "tn", "fn"}
    assert quality["validation"]["auroc"] is not None and len(quality["by_window"]) >= 1
    assert [a for a in record["alerts"] if a["check"] == "quality"] == []


def test_labels_that_disagree_with_the_model_raise_a_quality_alert(root, calm, tmp_path):
    labels = labels_file(tmp_path / "labels.csv", traffic(), flip=True)
    record = monitor(root, tmp_path, f"serving_dir={calm}", f"labels={labels}", "monitor.quality.max_ece=null")
    drops = {a["subject"] for a in record["alerts"] if a["figure"] == "drop_vs_validation"}
    assert "auroc" in drops and record["exit_code"] == 3


def test_fairness_by_a_sensitive_column_of_the_labels(root, calm, tmp_path):
    table = traffic(sensitive={"disparity": 2.0})
    labels = labels_file(tmp_path / "labels.csv", traffic(), customer_age_band=table["customer_age_band"])
    record = monitor(root, tmp_path, f"serving_dir={calm}", f"labels={labels}", "sensitive=customer_age_band",
                     "monitor.quality.max_ece=null")
    fairness = record["fairness"]
    assert fairness["sensitive"] == "customer_age_band"
    assert set(fairness["groups"]) == {"18-29", "30-49", "50+"}
    assert sum(g["rows"] for g in fairness["groups"].values()) == 3000
    assert all(g["judged"] for g in fairness["groups"].values())
    assert fairness["demographic_parity_difference"] is not None


def test_a_batch_file_without_scores_is_scored_and_judged_with_its_own_target(root, tmp_path):
    table = traffic(rows=2000, seed=11, sensitive={"disparity": 2.0})
    pq.write_table(table, tmp_path / "batch.parquet")
    record = monitor(root, tmp_path, f"input={tmp_path / 'batch.parquet'}", "sensitive=customer_age_band",
                     "monitor.quality.max_ece=null", "monitor.fairness.max_demographic_parity_difference=0.0")
    assert record["source"]["kind"] == "input" and record["window"]["given"] == "all"
    assert record["rows"] == 2000 and record["drift"]["drifted"] == []
    assert record["quality"]["labels"] == "column is_fraud" and record["quality"]["labelled_rows"] == 2000
    assert set(record["fairness"]["groups"]) == {"18-29", "30-49", "50+"}
    fired = [a["figure"] for a in record["alerts"] if a["check"] == "fairness"]
    difference = record["fairness"]["demographic_parity_difference"]
    assert ("demographic_parity_difference" in fired) == (difference > 0)  # the limit is 0: any gap alerts


def test_a_data_config_is_monitored_with_its_target_as_labels(root, tmp_path):
    record = monitor(root, tmp_path, "data=fraud", "data.source.rows=1500", "data.source.seed=9",
                     "data.source.world_seed=42", "monitor.quality.max_ece=null")
    assert record["source"]["kind"] == "data" and record["rows"] == 1500 and record["drift"]["drifted"] == []
    assert record["quality"]["labels"] == "column is_fraud" and record["quality"]["labelled_rows"] == 1500
    assert record["quality"]["by_window"] == [] and record["alerts"] == []  # no request times: no windows


def test_runs_never_share_a_directory(root, calm, tmp_path):
    first = monitor(root, tmp_path, f"serving_dir={calm}")
    second = monitor(root, tmp_path, f"serving_dir={calm}")
    assert first["run_dir"] != second["run_dir"]
    assert len(list((tmp_path / "monitor" / NAME).glob("*/monitor.json"))) == 2


@pytest.mark.parametrize("overrides, expected", [
    (["model=nobody@production"], "no model named 'nobody'"),
    (["window=2020-01-01..2020-01-02"], "no rows in window '2020-01-01..2020-01-02'"),
    (["labels={tmp}/bad.csv"], "no column(s) ['label']"),
    (["sensitive=nope"], "sensitive=nope: no such column"),
    (["monitor.checks=[drift,speed]"], "monitor.checks: unknown check(s) ['speed']"),
])
def test_bad_input_is_one_line_and_exit_2(root, calm, tmp_path, overrides, expected):
    pacsv.write_csv(pa.table({"request_id": ["req-0"], "row": [0], "lable": [1]}), tmp_path / "bad.csv")
    done = monitor_cli(root, tmp_path, f"serving_dir={calm}", *(o.format(tmp=tmp_path) for o in overrides))
    assert done.returncode == 2, done.stderr + done.stdout
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], done.stderr
    assert not (tmp_path / "monitor").exists() or not list((tmp_path / "monitor").rglob("monitor.json"))


def test_a_model_never_served_has_no_request_log(root, tmp_path):
    with pytest.raises(FactoryError, match="no request log for model 'fraud_detection'"):
        monitor(root, tmp_path, f"serving_dir={tmp_path / 'nothing'}")


@pytest.mark.slow  # a real kernel started by scripts/schedule.py: ~25 s here
def test_the_monitor_report_runs_on_a_schedule_from_the_newest_monitor_json(root, shifted, tmp_path):
    """conf/report/monitor.yaml's notebook, declared with a schedule in a user's config directory, run by
    scripts/schedule.py --once as cron would: a real kernel, HTML with the drifted feature's histogram."""
    from tests.integration.helpers import visible_text

    done = monitor_cli(root, tmp_path, f"serving_dir={shifted}", *TINY_MODEL)
    assert done.returncode == 3, done.stderr
    user = tmp_path / "my_configs" / "report"
    user.mkdir(parents=True)
    declared = (REPO / "conf" / "report" / "monitor.yaml").read_text()
    (user / "monitor_nightly.yaml").write_text(
        declared.replace("name: monitor\n", "name: monitor_nightly\n")
        .replace("notebook: notebooks/monitor.ipynb", f"notebook: {REPO / 'notebooks' / 'monitor.ipynb'}")
        .replace("output_dir: null", f"output_dir: {tmp_path / 'monitor'}")
        .replace("schedule: null", "schedule: '* * * * *'"))
    env = {**script_env(tmp_path), "FACTORY_CONFIG_DIR": str(tmp_path / "my_configs")}
    ran = subprocess.run([sys.executable, str(REPO / "scripts" / "schedule.py"), "--report", "monitor_nightly",
                          "--once"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert ran.returncode == 0, ran.stderr + ran.stdout
    (html,) = (tmp_path / "reports" / "monitor_nightly").glob("*/report.html")
    page = html.read_text()
    text = visible_text(page)
    for expected in ("Data drift", "Drifted features", "drift: amount", "Score drift", "No labels for this window",
                     "No sensitive attribute configured", "alert(s) (exit 3)", "Past runs"):
        assert expected in text, expected
    for unwanted in ("Traceback", "NaN", "None", "<Figure size"):
        assert unwanted not in text, unwanted
    assert page.count("data:image/png") >= 2  # the drifted feature's histogram and the score's
    [entry] = json.loads((tmp_path / "reports" / "index.json").read_text())["runs"]
    assert (entry["name"], entry["trigger"], entry["status"]) == ("monitor_nightly", "schedule", "completed")


@pytest.mark.slow  # trains a challenger: ~30 s here
def test_an_alert_triggers_the_retrain_pipeline_when_asked(root, shifted, tmp_path):
    import shutil

    registry_dir = shutil.copytree(root / "registry", tmp_path / "registry")  # the challenger registers here
    user = tmp_path / "my_configs" / "pipeline"
    user.mkdir(parents=True)
    train = [*FAST_FRAUD, "baseline=null", "data.source.seed=7", "data.source.world_seed=42"]
    (user / "tiny.yaml").write_text("# A tiny retrain pipeline.\ndefaults:\n  - default\n  - _self_\n"
                                    f"name: tiny\nmodel: {NAME}\ntrain: [{', '.join(train)}]\nmargin: 1.0\n")
    env = {**script_env(tmp_path), "FACTORY_CONFIG_DIR": str(tmp_path / "my_configs")}
    done = subprocess.run([sys.executable, SCRIPT, f"model={NAME}@production", f"registry={registry_dir}",
                           f"serving_dir={shifted}", "on_alert=retrain", "pipeline=tiny", *TINY_MODEL],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert done.returncode == 3, done.stderr + done.stdout  # the alert's status, retrain or not
    assert "retrain tiny: kept fraud_detection@1 at production" in done.stdout  # margin 1.0: never promoted
    (record,) = (tmp_path / "outputs" / "pipeline" / "tiny").glob("*/pipeline.json")
    assert json.loads(record.read_text())["status"] == "completed"
    assert registry.get(f"{NAME}@production", registry_dir).version == 1


def test_no_alert_no_retrain(root, calm, tmp_path):
    done = monitor_cli(root, tmp_path, f"serving_dir={calm}", "on_alert=retrain", "pipeline=nowhere", *TINY_MODEL)
    assert done.returncode == 0 and "retrain nowhere" not in done.stdout and not done.stderr, done.stderr + done.stdout


def test_categorical_histograms_count_every_present_value(root, calm, tmp_path):
    record = monitor(root, tmp_path, f"serving_dir={calm}")
    for name in ("merchant_category", "channel", "merchant_id"):
        h, f = record["histograms"][name], record["drift"]["features"][name]
        assert h["levels"][-1] == "(other)" and len(h["levels"]) == len(h["reference"]) == len(h["current"])
        assert sum(h["current"]) == f["rows"] - round(f["missing_rate"] * f["rows"]), name


def test_labels_for_part_of_the_window_judge_those_rows_only(root, calm, tmp_path):
    labels = labels_file(tmp_path / "labels.csv", traffic().slice(0, 1000))  # the first 20 requests arrived
    record = monitor(root, tmp_path, f"serving_dir={calm}", f"labels={labels}", "monitor.quality.max_ece=null")
    assert record["rows"] == 3000 and record["quality"]["labelled_rows"] == 1000
    assert record["quality"]["join"]["unmatched"] == 0
