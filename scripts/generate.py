"""Sample text from a language model: a run directory, a checkpoint or a registered version.

    python scripts/generate.py model=outputs/gpt_small/<run> prompt="def main(" max_new_tokens=80 seed=1
    python scripts/generate.py model=gpt_small@production prompt="import " num_samples=3 top_k=50 temperature=0.8
"""
import sys

import hydra
from omegaconf import DictConfig, open_dict

from factory.cli import job, run_cli, set_model, take_argument, take_model_argument

MODEL = None  # the model=REF argument (a config group's name too: taken out before Hydra reads it)
PROMPT = None  # the prompt=TEXT argument: free text, so taken out before Hydra's override grammar sees it


@hydra.main(config_path="../conf", config_name="generate", version_base="1.3")
@job
def main(cfg: DictConfig) -> None:
    from factory.serving.samples import generate, show

    set_model(cfg, MODEL)
    if PROMPT is not None:
        with open_dict(cfg):
            cfg.prompt = PROMPT
    show(generate(cfg))


if __name__ == "__main__":
    sys.argv[1:], MODEL = take_model_argument(sys.argv[1:])
    sys.argv[1:], PROMPT = take_argument(sys.argv[1:], "prompt")
    run_cli(main)
