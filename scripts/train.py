"""Train, validate and test a model from composed configs.

    python scripts/train.py experiment=fraud_detection trainer.max_epochs=5
    python scripts/train.py --help        # config groups and their options
"""
import hydra
from omegaconf import DictConfig

from factory.cli import job, run_cli


@hydra.main(config_path="../conf", config_name="train", version_base="1.3")
@job
def main(cfg: DictConfig) -> float | None:
    from factory.training.launch import show_result
    from factory.training.recipe import run  # validates the config before torch loads: errors answer fast

    result = run(cfg)
    show_result(cfg, result)  # the table a notebook's factory.train shows too
    return result.monitored_value  # what sweeps optimize


if __name__ == "__main__":
    run_cli(main)
