"""scripts/retrain.py's command line: the job's overrides, the challenger's, and model=NAME."""
from __future__ import annotations

from factory import compose
from factory.cli import take_model_argument
from factory.monitoring.retrain_args import add_arguments, split_arguments


def test_train_overrides_go_to_the_challenger_and_the_rest_to_the_job():
    argv = ["experiment=fraud_detection", "model=fraud_detection", "pipeline.margin=0.1", "registry=reg",
            "--config-dir", "mine", "data.source.seed=7", "+trainer.benchmark=true", "model.net.dropout=0.2",
            "hydra/job_logging=none", "--cfg", "job"]
    rest, model = take_model_argument(argv)
    own, train = split_arguments(rest)
    assert model == "fraud_detection"
    assert own == ["pipeline.margin=0.1", "registry=reg", "--config-dir", "mine", "hydra/job_logging=none",
                   "--cfg", "job"]
    assert train == ["experiment=fraud_detection", "data.source.seed=7", "+trainer.benchmark=true",
                     "model.net.dropout=0.2"]


def test_the_command_line_extends_the_pipelines_train_list_and_names_the_model():
    cfg = add_arguments(compose("retrain", ["pipeline=fraud_detection"]), "fraud_v2", ["trainer.max_epochs=3"])
    assert cfg.pipeline.model == "fraud_v2"
    assert list(cfg.pipeline.train)[0] == "experiment=fraud_detection"
    assert list(cfg.pipeline.train)[-1] == "trainer.max_epochs=3"
    assert cfg.pipeline.name == "fraud_detection"  # the pipeline file names its record folder
    bare = add_arguments(compose("retrain", ["pipeline.model=x"]), None, [])
    assert bare.pipeline.name == "x" and list(bare.pipeline.train) == []


def test_model_at_a_stage_names_the_champions_stage_too():
    cfg = add_arguments(compose("retrain", ["pipeline=fraud_detection"]), "fraud_detection@staging", [])
    assert (cfg.pipeline.model, cfg.pipeline.stage) == ("fraud_detection", "staging")


def test_a_bad_model_name_fails_the_config_step_before_any_training(tmp_path):
    import json

    import pytest

    from factory.monitoring.pipeline import PipelineError, run_pipeline

    cfg = add_arguments(compose("retrain", [f"registry={tmp_path}/registry"], check=False), "no/such",
                        ["trainer.max_epochs=1"])  # as scripts/retrain.py: model= is set after Hydra composes
    with pytest.raises(PipelineError, match=r"^retrain step config failed: model name 'no/such'"):
        run_pipeline(cfg)
    (path,) = (tmp_path / "outputs" / "pipeline").rglob("pipeline.json")
    record = json.loads(path.read_text())
    assert record["failed_step"] == "config" and list(record["steps"]) == ["config"]


def test_a_near_miss_of_a_retrain_key_is_refused_before_anything_is_written(tmp_path):
    import pytest

    from factory.errors import ConfigError

    own, train = split_arguments(["pipline.margin=0.5", "registy=reg", "data.source.seed=7"])
    assert own == [] and train[0] == "pipline.margin=0.5"  # not a retrain key: it would go to the challenger
    cfg = compose("retrain", ["pipeline=fraud_detection"])
    with pytest.raises(ConfigError, match=r"^pipline.margin: unknown key \(did you mean pipeline.margin\?\)$"):
        add_arguments(cfg, None, train)
    with pytest.raises(ConfigError, match=r"^registy: unknown key \(did you mean registry\?\)$"):
        add_arguments(cfg, None, ["registy=reg"])
    # Train keys, and groups of conf/, are never taken for typos: reports (train) is close to reports_dir.
    fine = ["reports.dir=x", "report=none", "+trainer.benchmark=true", "experiment=fraud_detection", "seed=3",
            "hparams_search=fraud", "energy.enabled=false"]
    assert list(add_arguments(cfg, None, fine).pipeline.train)[-len(fine):] == fine
