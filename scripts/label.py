"""Humans in the loop: rows a registered model is least sure of, as Label Studio tasks; their labels back as a snapshot.

    python scripts/label.py export model=fraud_detection@production data=fraud n=200 strategy=uncertainty out=labeling/b1
    python scripts/label.py export model=fraud_detection@production data='pool/*.parquet' strategy=diverse out=labeling/b2
    python scripts/label.py import labeling/b1/project-1-at-2026-12-07.json        # prints the new snapshot id
    python scripts/train.py experiment=fraud_detection data.snapshot=<id>           # trains on base + labeled rows
"""
import glob
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, open_dict

from factory.cli import job, run_cli, set_model, take_argument, take_model_argument
from factory.errors import EXIT_BAD_INPUT
from factory.serving.score_input import FORMATS

MODEL = None  # the model=REF argument (a config group's name too: taken out before Hydra reads it)
STRATEGY = None  # strategy=uncertainty|random|diverse: conf/strategy/ is a group too (distributed training)
ACTION, ANNOTATIONS = None, None  # export | import, and import's export file: positional, not Hydra's
FILES = None  # data=<file, glob or folder>: the pool as files (input=), not a conf/data/ config
VALUE_FLAGS = {"--cfg", "-c", "--package", "-p", "--config-dir", "-cd", "--config-path", "-cp", "--config-name",
               "-cn", "--info", "-i"}  # Hydra's flags that take the next word


def data_files(argv: list[str]) -> tuple[list[str], str | None]:
    """Take ``data=`` out when it names files (a Parquet/CSV/Arrow suffix, a glob, or a folder path with
    a ``/``), not a conf/data/ config; ``input=`` says the same without guessing."""
    rest, value = take_argument(argv, "data")
    if value is None:
        return argv, None
    path = Path(value)
    if glob.has_magic(value) or any(s.lower() in FORMATS for s in path.suffixes) or ("/" in value and path.is_dir()):
        return rest, value
    return argv, None


@hydra.main(config_path="../conf", config_name="label", version_base="1.3")
@job
def main(cfg: DictConfig) -> None:
    from factory.config.validate import validate
    from factory.serving import labeling

    set_model(cfg, MODEL)
    with open_dict(cfg):
        cfg.action, cfg.annotations = ACTION, ANNOTATIONS or cfg.annotations
        cfg.strategy = STRATEGY or cfg.strategy
        cfg.input = FILES if FILES is not None else cfg.input
    validate(cfg, root="label")
    if cfg.action == "export":
        print(labeling.export_summary(labeling.export(cfg), cfg.out))
    else:
        print(labeling.import_summary(labeling.import_labels(cfg)))


def positional(argv: list[str]) -> tuple[list[str], str | None, str | None]:
    """``(the Hydra arguments, export | import, import's file)`` from ``label.py ACTION [FILE] key=value ...``."""
    rest, words = [], []
    for i, arg in enumerate(argv):
        flag_value = i > 0 and argv[i - 1] in VALUE_FLAGS  # --cfg job, -cd DIR: Hydra's, not ours
        (rest if "=" in arg or arg.startswith("-") or flag_value else words).append(arg)
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
    sys.argv[1:], FILES = data_files(sys.argv[1:])
    sys.argv[1:], ACTION, ANNOTATIONS = positional(sys.argv[1:])
    run_cli(main)
