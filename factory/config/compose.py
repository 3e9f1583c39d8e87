"""Compose configs from conf/ the way the CLI does, for notebooks and tests."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from omegaconf import DictConfig

from factory.config.hydra_errors import hydra_errors_as_config_errors
from factory.config.validate import validate

#: conf/ beside the package: the repository layout (installed editable).
CONFIG_DIR = Path(__file__).resolve().parents[2] / "conf"


def compose(config_name: str = "train", overrides: Sequence[str] = (),
            check: bool = True) -> DictConfig:
    """Return the config a CLI run with ``overrides`` would get, validated.

    Safe to call any number of times in one process: Hydra's global state is set up
    and torn down around each call.

    Args:
        config_name: ``train`` or ``evaluate`` (a file in conf/).
        overrides: Hydra overrides, as on the command line (``["data.source.rows=500"]``).
        check: validate against the schemas (raises ``ConfigError``).

    Returns:
        The composed config, without the ``hydra`` node.

    Example:
        >>> cfg = compose("train", ["experiment=diagnosis", "trainer.max_epochs=2"])
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with hydra_errors_as_config_errors(), initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = hydra_compose(config_name=config_name, overrides=list(overrides))
    if check:
        validate(cfg, root=config_name)
    return cfg
