"""Test metrics of a trained checkpoint on a data config.

    python scripts/evaluate.py ckpt_path=outputs/fraud_detection/<run>/checkpoints/best.ckpt
"""
import hydra
from omegaconf import DictConfig

from factory.cli import job, run_cli


@hydra.main(config_path="../conf", config_name="evaluate", version_base="1.3")
@job
def main(cfg: DictConfig) -> None:
    from factory.config import validate

    validate(cfg, root="evaluate")
    from factory.console import print_metrics
    from factory.training import evaluate

    print_metrics(f"evaluate {cfg.ckpt_path}", {"test": evaluate(cfg)})


if __name__ == "__main__":
    run_cli(main)
