"""Compose configs from conf/ the way the CLI does, for notebooks and tests."""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Sequence

from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict, read_write

from factory.config.hydra_errors import check_group_choices, hydra_errors_as_config_errors
from factory.config.validate import validate

#: conf/ beside the package: the repository layout (installed editable).
CONFIG_DIR = Path(__file__).resolve().parents[2] / "conf"
#: A user's own config directory, searched after conf/ as the CLI's ``--config-dir`` is; read by
#: ``compose``, every ``scripts/*.py`` and reports (report kernels inherit it).
CONFIG_DIR_ENV = "FACTORY_CONFIG_DIR"

# `${hydra:key}` with a plain dotted key: the form Hydra documents (`${hydra:runtime.choices.db}`).
_HYDRA_REF = re.compile(r"\$\{hydra:\s*([\w.\-/]+)\s*\}")


def compose(config_name: str = "train", overrides: Sequence[str] | str = (),
            check: bool = True, config_dir: str | Path | None = None) -> DictConfig:
    """Return the config a CLI run with ``overrides`` would get, validated.

    Safe to call any number of times in one process: Hydra's global state is set up
    and torn down around each call. ``${hydra:...}`` interpolations
    (``${hydra:runtime.choices.data}``, ``${hydra:job.name}``) are replaced by the values a
    CLI run of ``scripts/<config_name>.py`` gives them, so the returned config resolves
    on its own; ``${hydra:runtime.output_dir}`` becomes ``${paths.run_dir}``, the directory
    a run of this config writes to (fixed when it starts, as under the CLI).

    Args:
        config_name: ``train``, ``evaluate`` or ``report`` (a file in conf/).
        overrides: Hydra overrides, as on the command line (``["data.source.rows=500"]``); also
            one string, as papermill's ``-p overrides ...`` passes them: a JSON or YAML list
            (``'["experiment=digits"]'``) or overrides separated by spaces, quoted as in a shell.
        check: validate against the schemas (raises ``ConfigError``).
        config_dir: a directory of the user's own configs (``experiment/my_exp.yaml``), searched
            after conf/, as the CLI's ``--config-dir``; default ``$FACTORY_CONFIG_DIR``.

    Returns:
        The composed config, without the ``hydra`` node.

    Raises:
        ConfigError: a bad override or value, or a ``config_dir`` that is not a directory.

    Example:
        >>> cfg = compose("train", ["experiment=diagnosis", "trainer.max_epochs=2"])
        >>> cfg = compose("train", ["experiment=my_exp"], config_dir="~/my_configs")
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    overrides = override_list(overrides)
    user_dir = user_config_dir(config_dir)
    if user_dir is not None:
        overrides = [*overrides, _searchpath_override(user_dir)]
    GlobalHydra.instance().clear()
    # job_name: the CLI's job is named after its script (scripts/train.py -> train).
    check_group_choices(list(overrides), CONFIG_DIR)
    with hydra_errors_as_config_errors(config_name):
        with initialize_config_dir(str(CONFIG_DIR), version_base="1.3", job_name=config_name):
            cfg = hydra_compose(config_name=config_name, overrides=list(overrides), return_hydra_config=True)
        cfg = _inline_hydra_interpolations(cfg)
    if check:
        validate(cfg, root=config_name)
    return cfg


def user_config_dir(config_dir: str | Path | None = None) -> Path | None:
    """The user's config directory: ``config_dir``, else ``$FACTORY_CONFIG_DIR``, else None.

    Raises:
        ConfigError: it names no directory.
    """
    from factory.errors import ConfigError

    given = config_dir if config_dir not in (None, "") else os.environ.get(CONFIG_DIR_ENV) or None
    if given is None:
        return None
    path = Path(given).expanduser().absolute()
    if not path.is_dir():
        source = "config_dir" if config_dir not in (None, "") else CONFIG_DIR_ENV
        raise ConfigError(f"{source}: {given}: no such directory")
    return path


def _searchpath_override(user_dir: Path) -> str:
    """``hydra.searchpath`` naming ``user_dir``: after conf/, as ``--config-dir`` puts it."""
    quoted = str(user_dir).replace("\\", "\\\\").replace("'", "\\'")
    return f"hydra.searchpath=['file://{quoted}']"


def override_list(overrides: Sequence[str] | str) -> list[str]:
    """``overrides`` as a list of strings: a list as given, or one string read as a JSON/YAML list
    (``'["experiment=digits"]'``) or as a command line (``"experiment=digits seed=1"``).

    Raises:
        ConfigError: a list string that does not parse, or items that are not strings.
    """
    import shlex

    import yaml

    from factory.errors import ConfigError

    if isinstance(overrides, str):
        text = overrides.strip()
        if text.startswith("["):
            try:
                overrides = yaml.safe_load(text)
            except yaml.YAMLError as e:
                problem = str(e).splitlines()[0]
                raise ConfigError(f"overrides: {text!r} is not a JSON or YAML list ({problem})") from None
        else:
            try:
                overrides = shlex.split(text)
            except ValueError as e:
                raise ConfigError(f"overrides: {text!r}: {e}") from None
    items = list(overrides or [])
    bad = [item for item in items if not isinstance(item, str)]
    if bad:
        raise ConfigError(f"overrides: expected strings such as 'experiment=digits', got {bad[0]!r}")
    return items


def _inline_hydra_interpolations(cfg: DictConfig) -> DictConfig:
    """Replace ``${hydra:...}`` by its value, then drop the ``hydra`` node.

    Hydra resolves these through a process-wide singleton (``HydraConfig``) that its app
    sets for the job's lifetime; a notebook composes many configs in one process, so
    each config gets its values written in instead of sharing (or lacking) that state.
    """
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    with read_write(cfg), open_dict(cfg):
        hydra = cfg.hydra
        if hydra.mode is None:
            hydra.mode = RunMode.RUN  # what Hydra's app sets before a run
        singleton = HydraConfig.instance()
        previous = singleton.cfg
        singleton.set_config(cfg)
        try:
            for parent, key, raw in list(_hydra_references(cfg)):
                _inline(cfg, parent, key, raw)
        finally:
            singleton.cfg = previous  # an unset HydraConfig tells factory it runs outside the CLI
        del cfg["hydra"]
    return cfg


def _hydra_references(node: DictConfig | ListConfig):
    """``(parent, key, raw string)`` of every value below ``node`` that interpolates ``hydra:``."""
    keys = list(node.keys()) if isinstance(node, DictConfig) else range(len(node))
    for key in keys:
        if node._get_parent() is None and key == "hydra":
            continue
        child = node._get_node(key)
        if isinstance(child, (DictConfig, ListConfig)) and not child._is_interpolation():
            if not (child._is_none() or child._is_missing()):
                yield from _hydra_references(child)
            continue
        raw = child._value()
        if isinstance(raw, str) and "hydra:" in raw and OmegaConf.is_interpolation(node, key):
            yield node, key, raw


def _inline(cfg: DictConfig, parent: Any, key: Any, raw: str) -> None:
    """Write the value of each ``${hydra:key}`` in ``parent[key]`` into it (see ``compose``)."""
    matches = list(_HYDRA_REF.finditer(raw))
    if len(matches) == 1 and matches[0].group(0) == raw.strip():
        parent[key] = _hydra_value(cfg, matches[0].group(1), whole=True)  # keeps the value's type
        return
    text = _HYDRA_REF.sub(lambda m: _hydra_value(cfg, m.group(1), whole=False), raw)
    if "hydra:" in text:  # a form the pattern does not cover (nested): resolve the whole value now
        text = parent._get_node(key)._dereference_node()._value()
    parent[key] = text


def _hydra_value(cfg: DictConfig, key: str, whole: bool) -> Any:
    """The value of ``hydra.<key>``; inside a longer string, its text (``${`` escaped)."""
    if key == "runtime.output_dir":
        # Under the CLI: the run directory. It holds a fresh run id, fixed when a run starts.
        if OmegaConf.select(cfg, "paths.run_dir", default=None) is not None:
            return "${paths.run_dir}"
        value = os.path.abspath(str(OmegaConf.select(cfg, "hydra.run.dir")))
    else:
        value = OmegaConf.select(cfg.hydra, key)
    if whole:
        return OmegaConf.to_container(value, resolve=True) if isinstance(value, (DictConfig, ListConfig)) else value
    text = OmegaConf.to_yaml(value).strip() if isinstance(value, (DictConfig, ListConfig)) else str(value)
    return text.replace("${", "\\${")
