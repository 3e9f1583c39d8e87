"""Retrain and promote: check new data, train a challenger, score it against the champion on a fresh
holdout, promote it only past the gate; every step in outputs/pipeline/<name>/<run id>/pipeline.json.

    python scripts/retrain.py pipeline=fraud_detection
    python scripts/retrain.py experiment=fraud_detection model=fraud_detection data.source.seed=7 pipeline.margin=0.01

model=NAME is the registered model (pipeline.model), not conf/model/; every override that is not a key
of conf/retrain.yaml (experiment=, data.*, trainer.*, model.net.*) goes to the challenger's train config,
after pipeline.train. Exit 0: the job completed (promoted or kept: see the summary); non-zero: a step failed.
"""
import sys

import hydra
from omegaconf import DictConfig

from factory.cli import job, run_cli, take_model_argument

MODEL = None  # the model=NAME argument (a config group's name too: taken out before Hydra reads it)
TRAIN: list[str] = []  # the challenger's overrides from the command line


@hydra.main(config_path="../conf", config_name="retrain", version_base="1.3")
@job
def main(cfg: DictConfig) -> None:
    from factory.monitoring.pipeline import run_pipeline
    from factory.monitoring.retrain_args import add_arguments
    from factory.monitoring.retrain_report import summary

    print(summary(run_pipeline(add_arguments(cfg, MODEL, TRAIN))))


if __name__ == "__main__":
    from factory.monitoring.retrain_args import split_arguments

    rest, MODEL = take_model_argument(sys.argv[1:])
    sys.argv[1:], TRAIN = split_arguments(rest)
    run_cli(main)
