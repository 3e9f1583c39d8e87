"""Every YAML under conf/ composes and validates; schemas agree with the code they describe."""
from __future__ import annotations

import inspect

import pytest
import yaml
from hydra.utils import get_object
from omegaconf import OmegaConf

from factory.config import CONFIG_DIR, compose, validate
from factory.config.schemas import SCHEMAS
from factory.errors import ConfigError

ROOT_CONFIGS = {"train", "evaluate"}
# Overrides that give a config its required values.
REQUIRED = {
    "data/files": ["data.source.path=x.csv", "data.source.target=y"],
    "data/files_stream": ["data.source.path=x/", "data.source.target=y"],
    "evaluate": ["ckpt_path=x.ckpt"],
}
# Groups composed into evaluate.yaml; everything else composes into train.yaml.
EVALUATE_ONLY: set[str] = set()
# Groups of another root config (conf/<root>.yaml selects them), composed there: group -> (root, required overrides).
OWN_ROOT = {"monitor": ("monitor", []), "pipeline": ("retrain", ["pipeline.model=x"])}


def _group_options() -> list[str]:
    return sorted(str(p.relative_to(CONFIG_DIR).with_suffix("")) for p in CONFIG_DIR.rglob("*.yaml")
                  if p.parent != CONFIG_DIR and p.parent.name != "hydra")


@pytest.mark.parametrize("option", _group_options())
def test_every_group_option_composes_and_validates(option: str):
    # conf/data/bench/hmda.yaml is the option data=bench/hmda; hydra/sweeper/sampler is a group of its own
    group, name = option.rsplit("/", 1) if option.startswith("hydra/") else option.split("/", 1)
    overrides = [f"{group}={name}", *REQUIRED.get(option, [])]
    if group.startswith("hydra/sweeper/"):  # the sweeper's own groups exist under hparams_search=optuna
        overrides.insert(0, "hparams_search=optuna")
    if option == "strategy/ddp":
        overrides.append("trainer.devices=2")
    if group in OWN_ROOT:
        root, required = OWN_ROOT[group]
        cfg = compose(root, [*overrides, *required], check=False)
        if root == "monitor":  # scripts/monitor.py sets model=REF (a config group's name too) after composing
            from factory.cli import set_model

            set_model(cfg, "x@production")
        validate(cfg, root=root)
        return
    cfg = compose("train", overrides)
    assert cfg is not None


@pytest.mark.parametrize("root", sorted(ROOT_CONFIGS))
def test_root_configs_compose(root: str):
    compose(root, REQUIRED.get(root, []))


@pytest.mark.parametrize("path", sorted(CONFIG_DIR.rglob("*.yaml")), ids=lambda p: str(p.relative_to(CONFIG_DIR)))
def test_every_config_file_documents_itself(path):
    lines = [line for line in path.read_text().splitlines() if not line.startswith("# @package")]
    assert lines[0].startswith("# "), f"{path.name}: first line should say what the file is"
    assert any("Run:" in line for line in lines[:4]), f"{path.name}: header should give the command"


@pytest.mark.parametrize("target", sorted(SCHEMAS))
def test_schema_matches_signature(target: str):
    """Each schema field is a parameter of its target, and each required parameter is covered."""
    schema = SCHEMAS[target]
    parameters = inspect.signature(get_object(target)).parameters
    fields = set(schema.__dataclass_fields__)
    accepts_kwargs = any(p.kind is p.VAR_KEYWORD for p in parameters.values())
    assert accepts_kwargs or fields <= set(parameters), f"not parameters of {target}: {fields - set(parameters)}"
    # Filled in at build time rather than from config.
    supplied = {"self", "spec", "source", "params", "optimizer", "logger", "callbacks", "strategy", "default_root_dir"}
    required = {n for n, p in parameters.items() if p.default is p.empty
                and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
    assert required - fields - supplied == set(), f"{target}: required but not in schema"


def _targets(node, found):
    if isinstance(node, dict):
        if "_target_" in node:
            found.add(node["_target_"])
        for value in node.values():
            _targets(value, found)
    return found


def test_every_factory_target_in_conf_has_a_schema():
    targets = set()
    for path in CONFIG_DIR.rglob("*.yaml"):
        if path.parent.relative_to(CONFIG_DIR).parts[:1] != ("hydra",):  # Hydra checks its own node
            node = yaml.safe_load(path.read_text()) or {}
            node.pop("hydra", None)  # a primary config's hydra: node (callbacks) is Hydra's too
            _targets(node, targets)
    missing = {t for t in targets if t.startswith(("factory.", "pytorch_lightning.")) and t not in SCHEMAS}
    assert missing == set()


def test_compose_twice_in_one_process_gives_fresh_run_dirs():
    first = compose("train", ["trainer=debug"])
    second = compose("train", ["trainer=debug"])
    assert first.paths.run_dir != second.paths.run_dir
    assert first.paths.run_dir == first.paths.run_dir  # stable within one config


def test_run_dir_layout(isolated_env):
    cfg = compose("train", ["experiment=diagnosis"])
    run_dir = cfg.paths.run_dir
    assert run_dir.startswith(f"{isolated_env}/outputs/diagnosis/")
    stamp = run_dir.rsplit("/", 1)[-1]
    date, time, short_id = stamp.split("_")
    assert len(date) == 10 and len(time) == 8 and len(short_id) == 6


def test_experiment_overrides_apply():
    cfg = compose("train", ["experiment=digits"])
    assert cfg.model.net._target_ == "factory.models.SmallCNN"
    assert cfg.monitor.metric == "val/accuracy"
    assert OmegaConf.select(cfg, "data.source.dataset") == "digits"


def test_config_error_is_config_error():
    with pytest.raises(ConfigError):
        compose("train", ["model.net.hiden_dims=[1]"])
