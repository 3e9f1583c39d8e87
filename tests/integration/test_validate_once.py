"""Each way into training and evaluation checks its config exactly once (issue 10).

``scripts/train.py`` leaves the check to ``recipe.run``, which makes it before torch loads;
``factory.train`` (the notebook path) checks in ``run`` too; ``evaluate`` checks its
settled config once, and a checkpoint's own data, adopted later, on its own
(``validate_key``). The scripts' Hydra functions are called in process with a composed
config, as Hydra would call them.
"""
from __future__ import annotations

import contextlib
import importlib.util
import shutil
import sys

import pytest

import factory
from factory import compose
from factory.training.recipe import run
from tests.conftest import REPO

TINY = ["trainer=debug", "logger=csv", "data.source.rows=2000"]


@contextlib.contextmanager
def counted():
    """Count calls of ``validate`` (by root) and ``validate_key`` (by key), wherever they are bound."""
    import factory.config
    import factory.training.recipe as recipe

    module = sys.modules["factory.config.validate"]
    calls: list[str] = []
    validate, validate_key = module.validate, module.validate_key

    def counting_validate(cfg, root="train"):
        calls.append(root)
        return validate(cfg, root=root)

    def counting_validate_key(cfg, key, root):
        calls.append(f"{root}.{key}")
        return validate_key(cfg, key, root=root)

    with pytest.MonkeyPatch.context() as mp:
        for owner in (module, factory.config, recipe):
            mp.setattr(owner, "validate", counting_validate)
        for owner in (module, recipe):
            mp.setattr(owner, "validate_key", counting_validate_key)
        yield calls


def _script_main(name: str):
    """``main`` of ``scripts/<name>.py``: its ``@hydra.main`` function, called with a config runs it directly."""
    spec = importlib.util.spec_from_file_location(f"_factory_script_{name}", REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


@pytest.fixture(scope="module")
def best_checkpoint(tmp_path_factory):
    """The best checkpoint of one small diagnosis run."""
    root = tmp_path_factory.mktemp("diagnosis")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FACTORY_ROOT", str(root))
        result = run(compose("train", ["experiment=diagnosis", "logger=csv", "trainer.max_epochs=1",
                                       "baseline=null"]))
    assert result.best_checkpoint is not None
    return result.best_checkpoint


def test_scripts_train_validates_once(isolated_env):
    cfg = compose("train", TINY, check=False)  # what Hydra hands the script: not yet checked
    with counted() as calls:
        _script_main("train")(cfg)
    assert calls == ["train"]


def test_factory_train_validates_once(isolated_env):
    cfg = compose("train", TINY)  # compose's own check is the notebook's, before editing the config
    with counted() as calls:
        assert factory.train(cfg).status == "completed"
    assert calls == ["train"]


def test_scripts_evaluate_validates_once(isolated_env, best_checkpoint):
    cfg = compose("evaluate", [f"ckpt_path={best_checkpoint}"], check=False)
    with counted() as calls:
        _script_main("evaluate")(cfg)
    assert calls == ["evaluate"]


def test_a_checkpoint_alone_checks_only_the_data_it_brings(isolated_env, best_checkpoint):
    copied = isolated_env / "copied.ckpt"
    shutil.copyfile(best_checkpoint, copied)  # no config.yaml beside it: its data comes from the checkpoint
    cfg = compose("evaluate", [f"ckpt_path={copied}"], check=False)
    with counted() as calls:
        _script_main("evaluate")(cfg)
    assert calls == ["evaluate", "evaluate.data"]
