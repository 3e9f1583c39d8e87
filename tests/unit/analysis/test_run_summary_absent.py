"""The run report's model and data when they cannot be had: why, in one line, instead of an error.

Real composed configs and real sources: a CSV that is gone, a warehouse URL whose password
``config.yaml`` holds masked, a checkpoint file that is not one.
"""
from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from factory import compose
from factory.analysis import run_summary
from factory.analysis.notebook import LoadedRun
from factory.rundir.manifest import RunRecord


def _run(tmp_path: Path, data: list[str], metrics: dict | None = None, **record) -> LoadedRun:
    """A run as ``factory.load_run`` reads it, its config resolved as ``config.yaml`` holds it."""
    config = OmegaConf.create(OmegaConf.to_container(compose("train", data), resolve=True))
    fields = dict(run_id="2026-12-07_01-36-26_f778b0", task_name="table", run_dir=str(tmp_path), status="completed")
    manifest = RunRecord(**{**fields, **record})
    manifest.save()
    return LoadedRun(tmp_path, manifest, config, metrics or {})


def _one_line(reason: str | None, start: str) -> str:
    assert reason is not None and reason.startswith(start) and "\n" not in reason, reason
    assert "Traceback" not in reason
    return reason


def test_a_csv_gone_since_the_run_is_data_not_available_naming_the_file(tmp_path: Path):
    gone = tmp_path / "gone.csv"
    run = _run(tmp_path, ["data=files", f"data.source.path={gone}", "data.source.target=y"],
               metrics={"test": {"test/loss": 0.3, "test/r2": 0.8}})
    datamodule, reason = run_summary.data_or_reason(run)
    assert datamodule is None
    assert str(gone) in _one_line(reason, "data not available: `")
    # no data and no checkpoint: the task as the run's metric names say, the report's summary intact
    model, no_model = run_summary.model_or_reason(run)
    assert model is None and _one_line(no_model, "no checkpoint: the run left none") == "no checkpoint: the run left none"
    assert run_summary.task_of(run, model, datamodule) == "regression"
    assert run_summary.summary(run, model, "regression").startswith("- **completed**: test loss **0.3**")


def test_a_warehouse_password_held_masked_is_data_not_available_still_masked(tmp_path: Path):
    url = "postgresql://analyst:***@localhost:1/sales"  # what config.yaml keeps of the password
    run = _run(tmp_path, ["data=warehouse", f"data.source.url={url}"], status="failed", error="DataError: ...")
    datamodule, reason = run_summary.data_or_reason(run)
    assert datamodule is None
    assert "postgresql://analyst:***@localhost:1/sales" in _one_line(reason, "data not available: `cannot query")
    assert run_summary.model_or_reason(run)[1] == "no checkpoint: the run left none (it is failed)"
    assert run_summary.task_of(run) is None  # a run that failed loading its data logged no metric


def test_a_checkpoint_that_cannot_be_loaded_says_so_in_one_line(tmp_path: Path):
    checkpoint = tmp_path / "checkpoints" / "best.ckpt"
    checkpoint.parent.mkdir()
    checkpoint.write_bytes(b"not a checkpoint")
    run = _run(tmp_path, ["experiment=diagnosis"], best_checkpoint=str(checkpoint))
    model, reason = run_summary.model_or_reason(run)
    assert model is None
    # factory.models.load_model names the file and the cause, as the data's restore does below
    assert _one_line(reason, "no checkpoint: `") == (f"no checkpoint: `ckpt_path: {checkpoint} is not a readable "
                                                     "checkpoint (UnpicklingError)`")
    datamodule, no_data = run_summary.data_or_reason(run)  # its preprocessing is in that file too
    assert datamodule is None and _one_line(no_data, "data not available: `ckpt_path:")
