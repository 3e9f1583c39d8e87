"""factory.compose builds the config the CLI builds, ``${hydra:...}`` interpolations included."""
from __future__ import annotations

import subprocess
import sys

import pytest
import yaml
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

from factory.config import compose
from factory.errors import ConfigError
from tests.conftest import REPO

HYDRA_TAGS = "tags=[${hydra:runtime.choices.data},${hydra:job.name},net_${hydra:runtime.choices.model}]"


def _cli_job_config(script: str, *overrides: str) -> dict:
    """What ``scripts/<script> --cfg job --resolve`` prints, parsed."""
    done = subprocess.run([sys.executable, str(REPO / "scripts" / script), "--cfg", "job", "--resolve", *overrides],
                          capture_output=True, text=True, check=True, cwd=REPO)
    return yaml.safe_load(done.stdout)


@pytest.mark.parametrize(("script", "overrides", "expected"), [
    ("train.py", ["experiment=digits", HYDRA_TAGS], ["digits", "train", "net_cnn_small"]),
    ("evaluate.py", ["ckpt_path=x.ckpt", "data=breast_cancer", "tags=[${hydra:job.name}_${hydra:runtime.choices.data}]"],
     ["evaluate_breast_cancer"]),
])
def test_hydra_interpolations_resolve_as_the_cli_resolves_them(script, overrides, expected):
    cfg = compose(script.removesuffix(".py"), overrides)
    composed = OmegaConf.to_container(cfg.tags, resolve=True)
    assert composed == expected
    assert _cli_job_config(script, *overrides)["tags"] == composed


def test_each_config_keeps_its_own_hydra_values_and_no_global_state_is_left():
    first = compose("train", ["data=digits", "tags=[${hydra:runtime.choices.data}]"])
    second = compose("train", ["data=breast_cancer", "tags=[${hydra:runtime.choices.data}]"])
    assert list(first.tags) == ["digits"] and list(second.tags) == ["breast_cancer"]
    assert "hydra" not in first and not HydraConfig.initialized()


def test_runtime_output_dir_is_the_run_directory_fixed_when_the_run_starts():
    from factory.training.recipe import pin_run_dir

    cfg = compose("train", ["ckpt_path=${hydra:runtime.output_dir}/checkpoints/last.ckpt"])
    pinned = pin_run_dir(cfg)  # what training.run does first
    assert pinned.ckpt_path == f"{pinned.paths.run_dir}/checkpoints/last.ckpt"


def test_an_unknown_hydra_key_resolves_to_null_as_under_the_cli():
    cfg = compose("train", ["tags=[${hydra:runtime.choices.nope}]"], check=False)
    assert list(cfg.tags) == [None]
    assert _cli_job_config("train.py", "tags=[${hydra:runtime.choices.nope}]")["tags"] == [None]


def test_a_bad_override_is_still_one_config_error():
    with pytest.raises(ConfigError, match="trainer.max_epochs"):
        compose("train", ["trainer.max_epochs=ten"])
