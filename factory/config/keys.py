"""Which keys a config node takes: its schema's fields, and its target's other arguments.

A ``+key=value`` that nothing reads is refused with why; ``factory.config.hydra_errors``
uses the same answer to say ``+key=...`` only where adding the key would pass.
"""
from __future__ import annotations

import dataclasses
import difflib
import typing
from typing import Any, Union

from omegaconf import DictConfig

from factory.config.schemas import ROOTS, SCHEMAS
from factory.config.torch_schemas import TORCH_SCHEMAS

# Keys Hydra's instantiate reads itself.
INSTANTIATE_KEYS = {"_target_", "_partial_", "_recursive_", "_convert_", "_args_"}
NoneType = type(None)

#: Arguments a target takes beyond its schema's fields. ``+trainer.benchmark=true`` adds one;
#: it goes to the target as given, and the target checks its value. A test keeps each list
#: equal to the target's signature less the schema's fields and FILLED_BY_FACTORY.
EXTRA_ARGUMENTS: dict[str, tuple[str, ...]] = {
    "pytorch_lightning.Trainer": ("max_time", "plugins", "profiler", "val_check_interval"),  # str, time or object
    "pytorch_lightning.loggers.WandbLogger": ("add_file_policy", "anonymous", "checkpoint_name", "dir", "prefix"),
    "pytorch_lightning.loggers.TensorBoardLogger": ("prefix", "sub_dir"),
    "pytorch_lightning.loggers.MLFlowLogger": ("prefix", "run_id", "save_dir", "synchronous", "tags"),
    "pytorch_lightning.loggers.CSVLogger": ("flush_logs_every_n_steps", "prefix"),
    "pytorch_lightning.callbacks.ModelCheckpoint": (
        "every_n_epochs", "every_n_train_steps", "save_on_exception", "save_on_train_epoch_end",
        "save_weights_only", "train_time_interval", "verbose"),
    "factory.training.checkpointing.RunCheckpoint": (  # a ModelCheckpoint: the same arguments
        "every_n_epochs", "every_n_train_steps", "save_on_exception", "save_on_train_epoch_end",
        "save_weights_only", "train_time_interval", "verbose"),
    "pytorch_lightning.callbacks.EarlyStopping": (
        "check_finite", "check_on_train_epoch_end", "divergence_threshold", "log_rank_zero_only",
        "stopping_threshold", "strict", "verbose"),
    "pytorch_lightning.callbacks.LearningRateMonitor": ("log_momentum", "log_weight_decay"),
}

#: Arguments factory passes itself when it builds the target, and what sets them instead.
FILLED_BY_FACTORY: dict[str, dict[str, str]] = {
    "pytorch_lightning.Trainer": {"strategy": "strategy=<option>", "logger": "logger=<option>",
                                  "callbacks": "callbacks=<option>", "default_root_dir": "paths.run_dir"},
    "pytorch_lightning.loggers.WandbLogger": {"id": "the run directory", "version": "the run directory",
                                              "experiment": "the run"},
    "factory.models.SupervisedModel": {"spec": "the data"},
    "factory.models.TabularMLP": {"spec": "the data"},
    "factory.models.TabM": {"spec": "the data"},
    "factory.models.WideMLP": {"spec": "the data"},
    "factory.models.SmallCNN": {"spec": "the data"},
    "factory.models.LanguageModel": {"spec": "the data"},
    "factory.models.GPT": {"spec": "the data"},
    "factory.distributed.cpu_adam": {"params": "the model"},
    **{target: {"params": "the model"} for target in TORCH_SCHEMAS if ".lr_scheduler." not in target},
    **{target: {"optimizer": "model.optimizer"} for target in TORCH_SCHEMAS if ".lr_scheduler." in target},
}


def unknown_key(path: str, key: str, schema: type | None, target: str | None) -> str | None:
    """Why ``key`` cannot be set on the node at ``path``, or ``None`` if it can.

    A node built from ``target`` takes its schema's fields and the target's
    ``EXTRA_ARGUMENTS`` (``+trainer.benchmark=true``); a plain node takes its schema's fields.
    """
    fields = [f.name for f in dataclasses.fields(schema)] if schema is not None else []
    extra = EXTRA_ARGUMENTS.get(target or "", ())
    if key in fields or key in extra or key in INSTANTIATE_KEYS:
        return None
    full = join(path, key)
    filled = FILLED_BY_FACTORY.get(target or "", {}).get(key)
    if filled:
        return f"{full}: set by factory from {filled}, not by this key"
    close = difflib.get_close_matches(key, [*fields, *extra], n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    reader = f"not an argument of {target}" if target else "nothing reads it"
    return f"{full}: unknown key{hint}; {reader}"


def schema_at(root: str, path: str, node: Any = None) -> tuple[type | None, str | None] | None:
    """The schema and ``_target_`` of the node at dotted ``path`` (``node``: that node, if known).

    Returns ``None`` when any key is accepted there (a mapping of free keys, or a target
    without a schema).
    """
    target = node.get("_target_") if isinstance(node, (dict, DictConfig)) else None
    if target is not None:
        schema = SCHEMAS.get(str(target))
        return (schema, str(target)) if schema or target in EXTRA_ARGUMENTS else None
    schema: Any = ROOTS.get(root, ROOTS["train"])
    for part in [p for p in path.split(".") if p]:
        if not dataclasses.is_dataclass(schema):
            return None
        hint = typing.get_type_hints(schema).get(part)
        args = [a for a in typing.get_args(hint) if a is not NoneType]
        schema = args[0] if typing.get_origin(hint) is Union and len(args) == 1 else hint
    return (schema, None) if dataclasses.is_dataclass(schema) else None


def join(path: str, key: str) -> str:
    """``path.key``, or ``key`` at the top."""
    return f"{path}.{key}" if path else key
