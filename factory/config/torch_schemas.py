"""Schemas of the torch optimizers and LR schedulers that configs name (``model.optimizer``).

They import nothing from torch: ``model.optimizer.lr=abc`` or ``lr=-1`` is reported before
torch loads. Other ``torch.optim.*`` targets get the checks of ``OptimizerKeysConf`` on the
keys they share. ``tests/unit/config/test_added_keys.py`` holds each one to its signature's
names, ``tests/unit/config/test_schema_defaults.py`` to its defaults.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

from factory.config.ranges import COUNT, FRACTION, NON_NEGATIVE, POSITIVE, Range, bounded

BETAS = Range(ge=0, lt=1)


@dataclass
class OptimizerKeysConf:
    """Keys most torch optimizers share; checked where present on any ``torch.optim.*`` target.

    No defaults: only keys present are checked, and each optimizer keeps its own.
    """

    lr: float = bounded(POSITIVE)
    weight_decay: float = bounded(NON_NEGATIVE)
    betas: List[float] = bounded(BETAS)
    eps: float = bounded(NON_NEGATIVE)
    momentum: float = bounded(FRACTION)


@dataclass
class AdamWConf:
    lr: float = bounded(POSITIVE, 1e-3)
    betas: List[float] = bounded(BETAS, default_factory=lambda: [0.9, 0.999])
    eps: float = bounded(NON_NEGATIVE, 1e-8)
    weight_decay: float = bounded(NON_NEGATIVE, 1e-2)
    amsgrad: bool = False
    maximize: bool = False
    foreach: Optional[bool] = None
    capturable: bool = False
    differentiable: bool = False
    fused: Optional[bool] = None


@dataclass
class AdamConf(AdamWConf):
    weight_decay: float = bounded(NON_NEGATIVE, 0.0)
    decoupled_weight_decay: bool = False


@dataclass
class SGDConf:
    lr: float = bounded(POSITIVE, 1e-3)
    momentum: float = bounded(FRACTION, 0.0)
    dampening: float = bounded(Range(ge=0, le=1), 0.0)
    weight_decay: float = bounded(NON_NEGATIVE, 0.0)
    nesterov: bool = False
    maximize: bool = False
    foreach: Optional[bool] = None
    differentiable: bool = False
    fused: Optional[bool] = None


@dataclass
class CosineAnnealingLRConf:
    T_max: int = bounded(COUNT)  # noqa: N815 (torch's name)
    eta_min: float = bounded(NON_NEGATIVE, 0.0)
    last_epoch: int = bounded(Range(ge=-1), -1)


@dataclass
class StepLRConf:
    step_size: int = bounded(COUNT)
    gamma: float = bounded(POSITIVE, 0.1)
    last_epoch: int = bounded(Range(ge=-1), -1)


#: ``_target_`` -> schema, merged into ``factory.config.schemas.SCHEMAS``.
TORCH_SCHEMAS: dict[str, type] = {
    "torch.optim.AdamW": AdamWConf,
    "torch.optim.Adam": AdamConf,
    "torch.optim.SGD": SGDConf,
    "torch.optim.lr_scheduler.CosineAnnealingLR": CosineAnnealingLRConf,
    "torch.optim.lr_scheduler.StepLR": StepLRConf,
}
