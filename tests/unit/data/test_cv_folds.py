"""Cross-validation folds (``data.cv_folds``): disjoint stratified test folds covering every row once."""
from __future__ import annotations

import numpy as np
import pytest

from factory.data.split import SPLITS, cv_fold_split
from factory.errors import ConfigError, DataError

Y = np.array([0] * 40 + [1] * 10 + [2] * 5)  # 55 rows, imbalanced


def _folds(y, k, seed=0, stratify=True):
    return [cv_fold_split(y, k, i, 0.2, seed, stratify=stratify) for i in range(k)]


def test_test_folds_are_disjoint_and_cover_every_row_once():
    folds = _folds(Y, 5)
    tests = np.concatenate([f["test"] for f in folds])
    assert sorted(tests.tolist()) == list(range(len(Y)))
    for parts in folds:  # within a fold, train/val/test partition the rows
        assert sorted(np.concatenate([parts[s] for s in SPLITS]).tolist()) == list(range(len(Y)))
        assert len(parts["val"]) > 0


def test_folds_are_stratified():
    for parts in _folds(Y, 5):
        assert np.bincount(Y[parts["test"]]).tolist() == [8, 2, 1]  # each class's share, 1/5 of it
        assert set(Y[parts["val"]]) == {0, 1, 2}


def test_folds_are_deterministic_and_follow_the_seed():
    again, other = _folds(Y, 3), _folds(Y, 3, seed=1)
    assert all(np.array_equal(a["test"], b["test"]) and np.array_equal(a["val"], b["val"])
               for a, b in zip(_folds(Y, 3), again))
    assert not all(np.array_equal(a["test"], b["test"]) for a, b in zip(again, other))


def test_regression_folds_are_unstratified():
    y = np.linspace(0, 1, 23)
    tests = [f["test"] for f in _folds(y, 4, stratify=False)]
    assert sorted(np.concatenate(tests).tolist()) == list(range(23))


def test_more_folds_than_a_class_has_rows_is_refused():
    with pytest.raises(DataError, match=r"data.cv_folds=6: class 2 has only 5 row\(s\).*cv_folds<=5"):
        cv_fold_split(Y, 6, 0, 0.2, seed=0)


@pytest.mark.parametrize("folds, fold, key", [(1, 0, "data.cv_folds=1"), (3, 3, "data.cv_fold=3")])
def test_bad_fold_settings_are_refused(folds, fold, key):
    with pytest.raises(ConfigError, match=key):
        cv_fold_split(Y, folds, fold, 0.2, seed=0)


def test_datamodule_refuses_a_fold_outside_the_folds_at_instantiation():
    from factory.data import TabularDataModule
    from factory.data.sources import SklearnSource

    with pytest.raises(ConfigError, match="data.cv_fold=2"):
        TabularDataModule(SklearnSource("breast_cancer"), cv_folds=2, cv_fold=2)


@pytest.mark.parametrize("override, why", [
    ("resume=auto", "resume=auto cannot continue a cross-validated run"),
    ("strategy=ddp", "strategy=.* launches several processes"),
    ("train=false", "train=false"),
    ("ckpt_path=some.ckpt", "ckpt_path= would continue one fit"),
])
def test_what_cross_validation_cannot_combine_with_is_refused_before_training(isolated_env, override, why):
    from factory.config import compose
    from factory.training.recipe import run

    with pytest.raises(ConfigError, match=f"data.cv_folds=3: {why}") as info:
        run(compose("train", ["experiment=diagnosis", "data.cv_folds=3", override], check=False))
    assert len(str(info.value).splitlines()) == 1
    assert not (isolated_env / "outputs").exists()  # refused before any run directory


def test_one_fold_is_refused_by_the_schema():
    from factory.config import compose

    with pytest.raises(ConfigError, match="data.cv_folds"):
        compose("train", ["experiment=diagnosis", "data.cv_folds=1"])


def test_evaluate_refuses_another_fold_of_the_same_table_and_ignores_test_fraction():
    from types import SimpleNamespace

    from factory.training.evaluation import Trained, check_split

    trained = Trained({"val_fraction": 0.15, "test_fraction": 0.15, "split_seed": 42, "cv_folds": 3, "cv_fold": 1},
                      42, "abc")

    def data(**changed):
        values = {"fingerprint": "abc", "val_fraction": 0.15, "test_fraction": 0.15, "split_seed": 42,
                  "cv_folds": 3, "cv_fold": 1, **changed}
        return SimpleNamespace(**values)

    check_split(data(test_fraction=0.3), trained, "best.ckpt", own_data=False)  # unused with folds
    with pytest.raises(ConfigError, match=r"data.cv_fold=2 \(trained with 1\)"):
        check_split(data(cv_fold=2), trained, "best.ckpt", own_data=False)
    with pytest.raises(ConfigError, match=r"data.cv_folds=None \(trained with 3\)"):
        check_split(data(cv_folds=None), trained, "best.ckpt", own_data=False)
    old_run = Trained({"val_fraction": 0.15, "test_fraction": 0.15, "split_seed": 42}, 42, "abc")  # no cv keys
    check_split(data(cv_folds=None, cv_fold=0), old_run, "best.ckpt", own_data=False)


def test_a_fold_trains_its_own_fold_in_its_own_directory_without_tracker_or_pruning(tmp_path):
    from factory.config import compose
    from factory.training.cross_validation import fold_config

    cfg = compose("train", ["experiment=diagnosis", "data.cv_folds=3", "+callbacks.optuna_pruning="
                            "{_target_:factory.sweeps.trial.OptunaPruning,storage:s,study:x,number:0}"], check=False)
    fold_cfg = fold_config(cfg, 2, tmp_path / "cv" / "2")
    assert fold_cfg.data.cv_fold == 2 and fold_cfg.logger is None and fold_cfg.callbacks.optuna_pruning is None
    assert fold_cfg.callbacks.model_checkpoint.dirpath == str(tmp_path / "cv" / "2" / "checkpoints")
    assert cfg.data.cv_fold == 0 and cfg.callbacks.optuna_pruning is not None  # the run's config unchanged


def test_folds_make_test_fraction_unused():
    from factory.config import compose

    cfg = compose("train", ["experiment=diagnosis", "data.cv_folds=3", "data.test_fraction=0"])  # validated: no error
    assert cfg.data.test_fraction == 0
