"""Trackers read back from their own files: wandb offline runs, TensorBoard events, a local MLflow store."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from factory import compose
from factory.training.recipe import run
from tests.conftest import REPO, script_env
from tests.integration.helpers import manifest, run_dirs, run_script
from tests.integration.wandb_log import OfflineRun

TINY = ["data.source.rows=300", "trainer.max_epochs=1"]


def _metrics(run_dir) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


def _sync(tmp_path, *args: str) -> subprocess.CompletedProcess:
    env = script_env(tmp_path)
    env.pop("WANDB_API_KEY", None)
    env["NETRC"] = str(tmp_path / "no-netrc")  # no `wandb login` either
    return subprocess.run([sys.executable, str(REPO / "scripts/sync.py"), *args], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=60)


def test_wandb_offline_run_carries_config_metrics_manifest_and_checkpoint(isolated_env):
    result = run(compose("train", ["logger=wandb", "tracking.log_checkpoint=true", *TINY]))
    (offline,) = (result.run_dir / "wandb").glob("offline-run-*")
    wb = OfflineRun(offline)

    assert wb.config["seed"] == 42 and wb.config["paths"]["run_dir"] == str(result.run_dir)
    assert wb.config["model"]["net"]["_target_"] == "factory.models.TabularMLP"
    assert any("val/pr_auc" in row for row in wb.history)
    metrics = _metrics(result.run_dir)
    assert wb.summary["test/pr_auc"] == pytest.approx(metrics["test"]["test/pr_auc"])
    assert wb.summary["manifest"] == manifest(result.run_dir)  # the final run.json, status completed
    assert wb.summary["manifest"]["status"] == "completed"
    assert {"factory/manifest.json", "factory/metrics.json", "factory/config.yaml"} <= set(wb.files)
    assert json.loads((offline / "files" / "factory" / "manifest.json").read_text()) == manifest(result.run_dir)
    assert run_dirs(isolated_env) == [result.run_dir]  # no second run.json for run discovery to trip on

    (artifact,) = wb.artifacts
    assert artifact.type == "model" and "best" in artifact.aliases
    (entry,) = artifact.manifest.contents
    best = result.best_checkpoint
    assert (entry.path, entry.local_path, entry.size) == ("model.ckpt", str(best), best.stat().st_size)
    assert json.loads(artifact.metadata)["data_fingerprint"] == manifest(result.run_dir)["data"]["fingerprint"]
    assert wb.exit_code == 0

    listed = _sync(isolated_env, "--dry-run")
    assert listed.returncode == 0 and listed.stdout.split() == [str(offline)], listed.stderr
    refused = _sync(isolated_env)
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [
        "error: wandb sync needs an API key: set WANDB_API_KEY or run `wandb login` (1 offline run(s) waiting)"]


def test_wandb_run_of_a_failed_training_is_closed_as_failed(isolated_env):
    cfg = compose("train", ["logger=wandb", "callbacks.early_stopping.monitor=val/nope", *TINY])
    with pytest.raises(RuntimeError, match="val/nope"):
        run(cfg)
    (offline,) = (isolated_env / "outputs").glob("train/*/wandb/offline-run-*")
    wb = OfflineRun(offline)
    assert wb.exit_code == 1
    assert wb.summary["manifest"]["status"] == "failed" and "val/nope" in wb.summary["manifest"]["error"]
    assert not wb.artifacts


def test_tensorboard_events_hold_curves_final_metrics_and_hparams(isolated_env):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    result = run(compose("train", ["logger=tensorboard", *TINY]))
    assert (result.run_dir / "csv" / "metrics.csv").is_file()  # CSV stays on
    events = EventAccumulator(str(result.run_dir / "tensorboard"))
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    metrics = _metrics(result.run_dir)
    for name, value in {**metrics["val"], **metrics["test"]}.items():
        assert name in scalars
        assert events.Scalars(name)[-1].value == pytest.approx(value)
        assert events.Scalars(f"hparams/{name}")[-1].value == pytest.approx(value)
    start = events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    hparams = plugin_data_pb2.HParamsPluginData.FromString(start).session_start_info.hparams
    assert hparams["seed"].number_value == 42
    assert hparams["monitor/metric"].string_value == "val/loss"
    assert "run.json/text_summary" in events.Tags()["tensors"]


def test_mlflow_local_store_holds_params_metrics_manifest_and_checkpoint(isolated_env):
    from mlflow.tracking import MlflowClient

    result = run(compose("train", ["logger=mlflow", "tracking.log_checkpoint=true", *TINY]))
    store = isolated_env / "outputs" / "mlflow"
    client = MlflowClient(f"sqlite:///{store / 'mlflow.db'}")
    (found,) = client.search_runs([client.get_experiment_by_name("train").experiment_id])
    assert found.info.status == "FINISHED"
    assert found.data.tags["factory.run_id"] == result.run_dir.name
    assert found.data.params["seed"] == "42" and found.data.params["monitor/metric"] == "val/loss"
    metrics = _metrics(result.run_dir)
    for name, value in {**metrics["val"], **metrics["test"]}.items():
        assert found.data.metrics[name] == pytest.approx(value)
    assert len(client.get_metric_history(found.info.run_id, "val/loss")) >= 1

    assert {a.path for a in client.list_artifacts(found.info.run_id)} == {"factory", "checkpoint"}
    saved = {a.path for a in client.list_artifacts(found.info.run_id, "factory")}
    assert saved == {"factory/manifest.json", "factory/metrics.json", "factory/config.yaml"}
    (ckpt,) = client.list_artifacts(found.info.run_id, "checkpoint")
    assert ckpt.path == "checkpoint/best.ckpt" and ckpt.file_size == result.best_checkpoint.stat().st_size
    local = client.download_artifacts(found.info.run_id, "factory/manifest.json", str(isolated_env / "dl"))
    assert json.loads(open(local).read()) == manifest(result.run_dir)
    assert str(store) in found.info.artifact_uri  # artifacts stay under outputs/, not the working directory
    assert run_dirs(isolated_env) == [result.run_dir]  # no second run.json for run discovery to trip on


@pytest.mark.slow
def test_wandb_checkpoint_of_a_zero_run_is_one_consolidated_file(tmp_path):
    result = run_script(tmp_path, "train.py", "experiment=diagnosis", "strategy=deepspeed_zero2", "trainer.devices=1",
                        "trainer.accelerator=cpu", "logger=wandb", "tracking.log_checkpoint=true", "baseline=null",
                        "trainer.max_epochs=1", "model.net.hidden_dims=[16]", timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    (run_dir,) = run_dirs(tmp_path)
    assert manifest(run_dir)["checkpoint_format"] == "sharded" and (run_dir / "checkpoints" / "best.ckpt").is_dir()
    (offline,) = (run_dir / "wandb").glob("offline-run-*")
    (artifact,) = OfflineRun(offline).artifacts
    (entry,) = artifact.manifest.contents
    consolidated = run_dir / "checkpoints" / "best-fp32.ckpt"
    assert entry.local_path == str(consolidated) and consolidated.is_file()
    assert entry.size == consolidated.stat().st_size
    assert json.loads(artifact.metadata)["format"] == "sharded"
