"""Test metrics of a trained checkpoint: by default on its own run's test split.

    python scripts/evaluate.py ckpt_path=outputs/diagnosis/<run>/checkpoints/best.ckpt
    python scripts/evaluate.py ckpt_path=outputs/diagnosis/<run>      # its best checkpoint
    python scripts/evaluate.py ckpt_path=<...>/best.ckpt data=files data.source.path=new.csv
"""
import sys

import hydra
from omegaconf import DictConfig

from factory.cli import job, run_cli
from factory.errors import FactoryError


@hydra.main(config_path="../conf", config_name="evaluate", version_base="1.3")
@job
def main(cfg: DictConfig) -> None:
    from factory.console import print_metrics
    from factory.training.recipe import evaluate  # validates before torch loads

    metrics = evaluate(cfg)
    print_metrics("evaluate: completed", {"test": metrics}, footer=f"checkpoint: {cfg.ckpt_path}")


if __name__ == "__main__":
    from factory.training.evaluation import check_overrides

    try:
        check_overrides(sys.argv[1:])
    except FactoryError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    run_cli(main)
