"""``scripts/retrain.py``'s command line: which overrides are the retrain job's, which the challenger's.

``model=NAME`` (the registered model) is taken out first (``factory.cli.take_model_argument``), as
``scripts/score.py`` does; then every override of a key of ``conf/retrain.yaml`` (and every Hydra
flag) stays with the job, and the rest (``experiment=``, ``data.*``, ``trainer.*``, ``model.net.*``)
is appended to ``pipeline.train``, the challenger's train config.
"""
from __future__ import annotations

import dataclasses

from omegaconf import DictConfig

from factory.config.schemas import RetrainConf, TrainConf

#: Keys of conf/retrain.yaml: overrides of these go to the retrain config, every other one to the challenger's.
RETRAIN_KEYS = ("hydra", *(f.name for f in dataclasses.fields(RetrainConf)))
#: A key this close (difflib's ratio) to a retrain key, and no train key, is a typo of it.
NEAR_MISS = 0.8


def split_arguments(argv: list[str]) -> tuple[list[str], list[str]]:
    """``(retrain overrides and Hydra flags, the challenger's train overrides)`` of a command line.

    ``experiment=fraud_detection``, ``data.source.seed=7``, ``trainer.max_epochs=5`` are the
    challenger's (``conf/train.yaml``'s keys); ``pipeline=...``, ``pipeline.margin=...``,
    ``registry=...`` and flags (``--cfg job``) are the retrain job's. ``model=NAME`` is taken out
    before (``factory.cli.take_model_argument``).
    """
    own, train, flag = [], [], False
    for arg in argv:
        if flag and "=" not in arg and not arg.startswith(("-", "~")):  # a flag's value: --cfg job, -cd dir
            own.append(arg)
            flag = False
            continue
        key = arg.lstrip("+~").partition("=")[0].split(".", 1)[0].split("/", 1)[0]
        flag = arg.startswith("-") and "=" not in arg
        (own if arg.startswith("-") or key in RETRAIN_KEYS else train).append(arg)
    return own, train


def add_arguments(cfg: DictConfig, model: str | None, train: list[str]) -> DictConfig:
    """``cfg`` with the command line's ``model=NAME`` (or ``NAME@STAGE``) as ``pipeline.model`` (and
    ``pipeline.stage``) and its train overrides appended to ``pipeline.train`` (``split_arguments``)."""
    from omegaconf import open_dict

    check_near_misses(train)
    with open_dict(cfg):
        if model is not None:  # NAME, or NAME@STAGE as scripts/score.py takes it: the champion's stage too
            name, _, stage = model.partition("@")
            cfg.pipeline.model = name
            if stage:
                cfg.pipeline.stage = stage
        cfg.pipeline.train = [*cfg.pipeline.train, *train]
    return cfg


def check_near_misses(train: list[str]) -> None:
    """Refuse a challenger override whose top key is a near-miss of a retrain key (``pipline.margin=0.5``):
    passed on, it would fail only in the challenger's config step, after the record is written.

    Raises:
        ConfigError: ``pipline.margin: unknown key (did you mean pipeline.margin?)``.
    """
    import difflib

    from factory.config.compose import CONFIG_DIR
    from factory.errors import ConfigError

    train_keys = {f.name for f in dataclasses.fields(TrainConf)} | {p.name for p in CONFIG_DIR.iterdir() if p.is_dir()}
    for arg in train:
        key = arg.lstrip("+~").partition("=")[0]
        head = key.split(".", 1)[0].split("/", 1)[0]
        if head in train_keys:
            continue
        match = difflib.get_close_matches(head, RETRAIN_KEYS, n=1, cutoff=NEAR_MISS)
        if match:
            raise ConfigError(f"{key}: unknown key (did you mean {match[0]}{key[len(head):]}?)")
