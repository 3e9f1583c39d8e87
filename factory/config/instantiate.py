"""Build objects from config nodes (``_target_``), naming the key when one fails.

Light to import: Hydra's instantiation loads with the first build.
"""
from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from factory.errors import ConfigError, FactoryError


def build(node: DictConfig, key: str, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate(node, **kwargs)``; a failure names ``key`` in one line.

    Errors the component raises about its own input (``FactoryError``) pass unchanged.
    """
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    try:
        if not kwargs or node.get("_partial_"):
            return instantiate(node, **kwargs)
        # kwargs go to the target as they are: Hydra would merge them into the node first, and a
        # large value (a model's input spec with its fitted bin edges) costs seconds as OmegaConf nodes.
        target = instantiate(node, _partial_=True)
    except InstantiationException as e:
        _raise_named(key, e.__cause__ or e, e)
    try:
        return target(**kwargs)
    except Exception as e:  # the target's own failure, as Hydra's instantiate reports it
        _raise_named(key, e, e)


def _raise_named(key: str, reason: BaseException, error: BaseException):
    """Raise ``reason`` unchanged when it is factory's own error, else a ConfigError naming ``key``."""
    if isinstance(reason, FactoryError):
        raise reason from None
    text = str(reason).strip().splitlines()
    raise ConfigError(f"{key}: {text[-1] if text else type(reason).__name__}") from error
