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
        return instantiate(node, **kwargs)
    except InstantiationException as e:
        if isinstance(e.__cause__, FactoryError):
            raise e.__cause__ from None
        reason = e.__cause__ or e
        text = str(reason).strip().splitlines()
        raise ConfigError(f"{key}: {text[-1] if text else type(reason).__name__}") from e
