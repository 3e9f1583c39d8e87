"""Turn Hydra's and OmegaConf's multi-line composition errors into one-line ConfigErrors."""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from factory.errors import ConfigError


def describe(error: BaseException) -> str:
    """One line naming the key (or group) at fault."""
    from hydra.errors import MissingConfigException
    from omegaconf.errors import OmegaConfBaseException

    if isinstance(error, MissingConfigException) and error.missing_cfg_file:
        options = f" (available: {', '.join(error.options)})" if error.options else ""
        return f"{error.missing_cfg_file}: no such config{options}"
    cause = error.__cause__ if isinstance(error.__cause__, OmegaConfBaseException) else error
    full_key = getattr(cause, "full_key", None)
    if full_key and "not in struct" in str(cause):
        return f"{full_key}: unknown key (to add a new key: +{full_key}=...)"
    text = " ".join(line.strip() for line in str(cause).splitlines()
                    if line.strip() and not line.strip().startswith(("full_key:", "object_type=")))
    return f"{full_key}: {text}" if full_key else text


@contextmanager
def hydra_errors_as_config_errors() -> Iterator[None]:
    """Re-raise composition and override errors as ``ConfigError`` with one line."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        yield
    except (HydraException, OmegaConfBaseException) as e:
        raise ConfigError(describe(e)) from e


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
