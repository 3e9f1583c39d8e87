"""``report=run_report`` on a language model's run executes the language-model notebook; on any other run,
and for any other report, the spec stays as it is. The choice reads ``config.yaml`` only (no torch)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from factory.reports.spec import (LANGUAGE_MODEL_NOTEBOOK, RUN_REPORT_NOTEBOOK, check_inputs, for_run_kind,
                                  spec_from_file)


def _run(outputs: Path, run_id: str, model_target: str | None) -> Path:
    run_dir = outputs / "task" / run_id
    run_dir.mkdir(parents=True)
    (run_dir / "run.json").write_text(json.dumps({"run_id": run_id, "task_name": "task", "status": "completed",
                                                  "started_at": "2026-01-01T00:00:00+00:00"}))
    if model_target is not None:
        (run_dir / "config.yaml").write_text(f"model:\n  _target_: {model_target}\n")
    return run_dir


@pytest.mark.parametrize("target, notebook", [
    ("factory.models.LanguageModel", LANGUAGE_MODEL_NOTEBOOK),
    ("factory.models.SupervisedModel", RUN_REPORT_NOTEBOOK),
    (None, RUN_REPORT_NOTEBOOK),  # no config.yaml: the run report says what it can
])
def test_the_run_report_of_a_language_model_is_its_own_notebook(tmp_path: Path, target, notebook):
    run_dir = _run(tmp_path / "outputs", "2026-01-01_00-00-00_aaaaaa", target)
    for given in (str(run_dir), "aaaaaa"):  # a path, or a run id found under outputs/
        spec = spec_from_file("run_report", parameters={"run_dir": given})
        check_inputs(spec, tmp_path)
        chosen = for_run_kind(spec, tmp_path)
        assert chosen.notebook == notebook and chosen.name == "run_report"
        assert chosen.parameters == spec.parameters


def test_other_reports_are_left_alone(tmp_path: Path):
    _run(tmp_path / "outputs", "2026-01-01_00-00-00_aaaaaa", "factory.models.LanguageModel")
    spec = spec_from_file("compare_runs", parameters={"experiment": "task"})
    assert for_run_kind(spec, tmp_path) is spec
    explicit = spec_from_file("lm_report", parameters={"run_dir": "aaaaaa"})
    assert for_run_kind(explicit, tmp_path) is explicit and explicit.notebook == LANGUAGE_MODEL_NOTEBOOK
