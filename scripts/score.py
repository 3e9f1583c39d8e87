"""Batch scoring: a registered model over files or a data config's table, to a Parquet directory.

    python scripts/score.py model=fraud_detection@production input='in/*.parquet' output=scored/today
    python scripts/score.py model=fraud_detection@3 input=in/ output=scored/v3 backend=torch
    python scripts/score.py model=fraud_detection@production data=fraud data.source.rows=100000 output=scored/f
"""
import sys

import hydra
from omegaconf import DictConfig

from factory.cli import job, run_cli, set_model, take_model_argument

MODEL = None  # the model=REF argument (a config group's name too: taken out before Hydra reads it)


@hydra.main(config_path="../conf", config_name="score", version_base="1.3")
@job
def main(cfg: DictConfig) -> None:
    from factory.serving.score import score, summary

    set_model(cfg, MODEL)
    print(summary(score(cfg)))


if __name__ == "__main__":
    sys.argv[1:], MODEL = take_model_argument(sys.argv[1:])
    run_cli(main)
