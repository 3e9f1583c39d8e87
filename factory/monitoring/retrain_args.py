"""``scripts/retrain.py``'s command line: which overrides are the retrain job's, which the challenger's.

``model=NAME`` (the registered model) is taken out first (``factory.cli.take_model_argument``), as
``scripts/score.py`` does; then every override of a key of ``conf/retrain.yaml`` (and every Hydra
flag) stays with the job, and the rest (``experiment=``, ``data.*``, ``trainer.*``, ``model.net.*``)
is appended to ``pipeline.train``, the challenger's train config.
"""
from __future__ import annotations

import dataclasses

from omegaconf import DictConfig

from factory.config.schemas import RetrainConf

#: Keys of conf/retrain.yaml: overrides of these go to the retrain config, every other one to the challenger's.
RETRAIN_KEYS = ("hydra", *(f.name for f in dataclasses.fields(RetrainConf)))


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

    with open_dict(cfg):
        if model is not None:  # NAME, or NAME@STAGE as scripts/score.py takes it: the champion's stage too
            name, _, stage = model.partition("@")
            cfg.pipeline.model = name
            if stage:
                cfg.pipeline.stage = stage
        cfg.pipeline.train = [*cfg.pipeline.train, *train]
    return cfg
