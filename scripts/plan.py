"""Per-device memory of the configured model under every strategy, and the cheapest that fits.

    python scripts/plan.py model=mlp_wide model.net.width=4096 model.net.depth=10 \
        strategy=deepspeed_zero3 trainer.devices=2
    python scripts/plan.py model=mlp_wide trainer.devices=8 trainer.num_nodes=2 plan.device_memory_gb=80
    python scripts/plan.py experiment=gpt_7b     # a language model plans from its config: no corpus read
"""
import sys

import hydra
from omegaconf import DictConfig

from factory.cli import job, run_cli

# A plan writes nothing: no run directory, no .hydra/ copy, no log file. Overrides given on
# the command line come after these, so they still win.
NO_OUTPUTS = ["hydra.run.dir=.", "hydra.output_subdir=null", "hydra/job_logging=none"]


@hydra.main(config_path="../conf", config_name="train", version_base="1.3")
@job
def main(cfg: DictConfig) -> None:
    from factory.config import validate

    validate(cfg, root="train")  # before torch loads: config errors answer fast
    from factory.config.instantiate import build
    from factory.distributed.planner import make_plan, print_plan
    from factory.distributed.transformer import config_spec

    spec = config_spec(cfg.data)  # a language model's vocabulary and block come from its config
    if spec is not None:
        print_plan(make_plan(cfg, spec, cfg.data.batch_size))
        return
    datamodule = build(cfg.data, "data")
    datamodule.persist = False  # a plan writes nothing: no snapshot, no quarantine file
    datamodule.setup("fit")  # the model's input widths come from the data
    print_plan(make_plan(cfg, datamodule.input_spec, datamodule.batch_size))


if __name__ == "__main__":
    sys.argv[1:1] = NO_OUTPUTS
    run_cli(main)
