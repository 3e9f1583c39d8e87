"""Humans in the loop: rows a registered model is least sure of, as Label Studio tasks; their labels back as a snapshot.

    python scripts/label.py export model=fraud_detection@production data=fraud n=200 strategy=uncertainty out=labeling/b1
    python scripts/label.py export model=fraud_detection@production input='pool/*.parquet' strategy=diverse out=labeling/b2
    python scripts/label.py import labeling/b1/project-1-at-2026-12-07.json        # prints the new snapshot id
    python scripts/train.py experiment=fraud_detection data.snapshot=<id>           # trains on base + labeled rows
"""
import sys

import hydra
from omegaconf import DictConfig, open_dict

from factory.cli import job, run_cli, set_model, take_argument, take_model_argument
from factory.errors import EXIT_BAD_INPUT

MODEL = None  # the model=REF argument (a config group's name too: taken out before Hydra reads it)
STRATEGY = None  # strategy=uncertainty|random|diverse: conf/strategy/ is a group too (distributed training)
ACTION, ANNOTATIONS = None, None  # export | import, and import's export file: positional, not Hydra's


@hydra.main(config_path="../conf", config_name="label", version_base="1.3")
@job
def main(cfg: DictConfig) -> None:
    from factory.config.validate import validate
    from factory.serving import labeling

    set_model(cfg, MODEL)
    with open_dict(cfg):
        cfg.action, cfg.annotations = ACTION, ANNOTATIONS or cfg.annotations
        cfg.strategy = STRATEGY or cfg.strategy
    validate(cfg, root="label")
    if cfg.action == "export":
        print(labeling.export_summary(labeling.export(cfg), cfg.out))
    else:
        print(labeling.import_summary(labeling.import_labels(cfg)))


def positional(argv: list[str]) -> tuple[list[str], str | None, str | None]:
    """``(the Hydra arguments, export | import, import's file)`` from ``label.py ACTION [FILE] key=value ...``."""
    rest = [a for a in argv if "=" in a or a.startswith("-")]
    words = [a for a in argv if a not in rest]
    if not words or words[0] not in ("export", "import") or len(words) > (2 if words[0] == "import" else 1):
        if not any(a in ("--help", "-h") for a in argv):
            print("error: usage: label.py export model=NAME@stage (data=<config> | input=<files>) out=<folder> | "
                  f"label.py import <export.json> [tasks=<folder>] [base=<snapshot>] (got {' '.join(argv) or 'nothing'})",
                  file=sys.stderr)
            sys.exit(EXIT_BAD_INPUT)
        return rest, None, None
    return rest, words[0], words[1] if len(words) > 1 else None


if __name__ == "__main__":
    sys.argv[1:], MODEL = take_model_argument(sys.argv[1:])
    sys.argv[1:], STRATEGY = take_argument(sys.argv[1:], "strategy")
    sys.argv[1:], ACTION, ANNOTATIONS = positional(sys.argv[1:])
    run_cli(main)
