"""Turn Hydra's and OmegaConf's multi-line composition errors into one-line ConfigErrors."""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from factory.errors import ConfigError


def describe(error: BaseException, root: str = "train") -> str:
    """One line naming the key (or group) at fault.

    Args:
        error: what Hydra or OmegaConf raised.
        root: the config composed (``train``, ``evaluate``, ``report``): its schema says
            whether a key missing from the config can be added with ``+key=...``.
    """
    from hydra.errors import MissingConfigException
    from omegaconf.errors import OmegaConfBaseException

    from factory.config.resolvers import factory_error

    if factory_error(error) is not None:  # a resolver's own one-line error (FACTORY_RUN_ID), unwrapped
        return str(factory_error(error))
    if isinstance(error, MissingConfigException) and error.missing_cfg_file:
        options = f" (available: {', '.join(error.options)})" if error.options else ""
        return f"{error.missing_cfg_file}: no such config{options}"
    cause = error.__cause__ if isinstance(error.__cause__, OmegaConfBaseException) else error
    full_key = getattr(cause, "full_key", None)
    if full_key and "not in struct" in str(cause):
        return _not_in_config(str(full_key), getattr(cause, "parent_node", None), root)
    text = " ".join(line.strip() for line in str(cause).splitlines()
                    if line.strip() and not line.strip().startswith(("full_key:", "object_type=")))
    return f"{full_key}: {text}" if full_key else text


def _not_in_config(full_key: str, parent: object, root: str) -> str:
    """``key=value`` on a key the config lacks: why it is unknown, or how to add it (``+key``)."""
    from factory.config.keys import schema_at, unknown_key

    path, _, key = full_key.rpartition(".")
    found = schema_at(root, path, parent)
    problem = unknown_key(path, key, *found) if found else None
    return problem or f"{full_key}: not in the config (to add it: +{full_key}=...)"


@contextmanager
def hydra_errors_as_config_errors(root: str = "train") -> Iterator[None]:
    """Re-raise composition and override errors as ``ConfigError`` with one line."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        yield
    except (HydraException, OmegaConfBaseException) as e:
        raise ConfigError(describe(e, root)) from e


def check_group_choices(overrides: list[str], config_dir: Path) -> None:
    """Refuse ``<group>=null`` (Hydra answers it with a bare ``ValueError`` and a traceback).

    Raises:
        ConfigError: naming the group and the way to drop it (``~group``).
    """
    for override in overrides:
        key, sep, value = override.partition("=")
        if sep and value.strip().lower() == "null" and (config_dir / key.lstrip("+")).is_dir():
            group = key.lstrip("+")
            raise ConfigError(f"{group}=null: a config group takes one of its options "
                              f"({', '.join(sorted(p.stem for p in (config_dir / group).glob('*.yaml')))}); "
                              f"to drop it, write ~{group}")
