"""Deterministic train/val/test row indices, stratified by class for classification; cross-validation folds.

Rare classes never fail the split: each class is split on its own and rounds its val
and test shares to whole rows, keeping at least one row in train. A class with one or
two rows therefore lives only in train (val/test metrics simply lack it), while every
class the model can be asked about is one it has seen.
"""
from __future__ import annotations

import numpy as np

from factory.config.ranges import check_argument
from factory.config.rules import split_sum_problem
from factory.config.schemas import TabularDataModuleConf
from factory.errors import ConfigError, DataError

SPLITS: tuple[str, ...] = ("train", "val", "test")


def check_fractions(val_fraction: float, test_fraction: float) -> None:
    """Raise ``ConfigError`` unless both fractions lie in their schema's range and leave rows for training.

    A config's fractions were checked already (``factory.config.validate``); a ``TabularDataModule``
    or split asked for in Python were not, so the same rules (the schema's ranges, the config's
    sum rule) are applied here to those.
    """
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        check_argument(TabularDataModuleConf, name, value, f"data.{name}", ConfigError)
    problem = split_sum_problem(val_fraction, test_fraction)
    if problem:
        raise ConfigError(problem)


def check_fold(folds: int | None, fold: int) -> None:
    """Raise ``ConfigError`` unless ``folds`` is None or >= 2 and ``fold`` is one of them."""
    if folds is None:
        return
    if folds < 2:
        raise ConfigError(f"data.cv_folds={folds}: cross-validation needs at least 2 folds (null: one split)")
    if not 0 <= fold < folds:
        raise ConfigError(f"data.cv_fold={fold}: expected a fold from 0 to {folds - 1} (data.cv_folds={folds})")


def check_split_sizes(sizes: dict[str, int], val_fraction: float, test_fraction: float,
                      need_val: bool = True) -> None:
    """Raise ``DataError`` when a split that training or testing reads came out empty.

    A tiny table (or class) rounds its val and test shares to zero rows, since every
    class keeps a row in train; Lightning would fail later on a metric that was never
    logged. ``need_val``: the val split is read (training monitors it). A config with
    ``val_fraction=0`` and ``train=true`` is refused before this (``factory.config.rules``);
    this catches a data module fitted from Python.
    """
    if need_val and val_fraction == 0:
        raise DataError("data.val_fraction=0 leaves no validation rows, and training monitors "
                        "validation metrics; set it above 0")
    empty = [name for name, fraction in (("val", val_fraction if need_val else 0), ("test", test_fraction))
             if fraction > 0 and sizes.get(name, 0) == 0]
    if empty:
        split = ", ".join(f"{name} {sizes.get(name, 0)}" for name in SPLITS)
        raise DataError(
            f"the table is too small to split: its {sum(sizes.values())} row(s) give {split} rows with "
            f"data.val_fraction={val_fraction:g}, data.test_fraction={test_fraction:g} "
            f"(no {' and no '.join(empty)} rows; each class keeps a row in train); use more rows"
        )


def stratified_split(
    y: np.ndarray, val_fraction: float, test_fraction: float, seed: int, stratify: bool = True
) -> dict[str, np.ndarray]:
    """Split row positions into train/val/test.

    Args:
        y: the target, one value per row (labels for classification).
        val_fraction: share of rows (of each class, when stratifying) for validation.
        test_fraction: share of rows for the test split.
        seed: the same seed and ``y`` always give the same split.
        stratify: split each class separately (classification); ``False`` shuffles all
            rows together (regression).

    Returns:
        ``{"train": ..., "val": ..., "test": ...}``: sorted int64 row positions that
        partition ``range(len(y))``; sorted so split tables keep the source's row order.

    Raises:
        ConfigError: a fraction outside [0, 1) or fractions summing to 1 or more.

    Example:
        >>> parts = stratified_split(np.array([0, 1] * 10), 0.2, 0.2, seed=0)
        >>> [len(parts[s]) for s in SPLITS]
        [12, 4, 4]
    """
    check_fractions(val_fraction, test_fraction)
    y = np.asarray(y)
    rng = np.random.default_rng(seed)
    if stratify:
        _, codes = np.unique(y, return_inverse=True)
        groups = [np.flatnonzero(codes == c) for c in range(codes.max(initial=-1) + 1)]
    else:
        groups = [np.arange(len(y))]
    parts: dict[str, list[np.ndarray]] = {name: [] for name in SPLITS}
    for rows in groups:
        rows = rng.permutation(rows)
        n_test = round(len(rows) * test_fraction)
        n_val = round(len(rows) * val_fraction)
        # Rounding up could leave a tiny class nothing in train: take the excess back,
        # from val first, so train always keeps at least one row of every class.
        excess = max(0, n_test + n_val - (len(rows) - 1))
        from_val = min(excess, n_val)
        n_val -= from_val
        n_test -= excess - from_val
        parts["test"].append(rows[:n_test])
        parts["val"].append(rows[n_test : n_test + n_val])
        parts["train"].append(rows[n_test + n_val :])
    return {name: np.sort(np.concatenate(chunks)).astype(np.int64) for name, chunks in parts.items()}


def cv_fold_split(
    y: np.ndarray, folds: int, fold: int, val_fraction: float, seed: int, stratify: bool = True
) -> dict[str, np.ndarray]:
    """Split row positions for fold ``fold`` of a ``folds``-fold cross-validation.

    The table is cut into ``folds`` disjoint folds (scikit-learn's ``StratifiedKFold``, or
    ``KFold`` for regression, shuffled by ``seed``): fold ``fold`` is the test split, so the
    ``folds`` test splits cover every row exactly once. Validation rows come from the other
    folds as ``stratified_split`` draws them (``val_fraction`` per class); no test fraction.

    Args:
        y: the target, one value per row (labels for classification).
        folds: how many folds (>= 2).
        fold: which fold is the test split, ``0 .. folds-1``.
        val_fraction: share of the remaining rows (of each class) for validation.
        seed: the same seed and ``y`` always give the same folds.
        stratify: keep each class's share in every fold (classification).

    Returns:
        ``{"train": ..., "val": ..., "test": ...}`` as ``stratified_split`` returns them.

    Raises:
        ConfigError: ``folds`` below 2 or ``fold`` outside ``0 .. folds-1``.
        DataError: fewer rows (of some class, when stratifying) than folds.

    Example:
        >>> tests = [cv_fold_split(np.array([0, 1] * 10), 5, i, 0.2, seed=0)["test"] for i in range(5)]
        >>> sorted(np.concatenate(tests).tolist()) == list(range(20))
        True
    """
    from sklearn.model_selection import KFold, StratifiedKFold

    check_fold(folds, fold)
    check_fractions(val_fraction, 0.0)
    y = np.asarray(y)
    if stratify:
        labels, counts = np.unique(y, return_counts=True)
        if len(counts) and counts.min() < folds:
            rare = labels[counts.argmin()].item()  # a plain value: its repr reads as the table wrote it
            raise DataError(f"data.cv_folds={folds}: class {rare!r} has only {counts.min()} row(s), too few to "
                            f"appear in each of {folds} stratified folds; use data.cv_folds<={counts.min()}")
        splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    else:
        if len(y) < folds:
            raise DataError(f"data.cv_folds={folds}: the table has only {len(y)} row(s), fewer than the folds")
        splitter = KFold(n_splits=folds, shuffle=True, random_state=seed)
    rest, test = list(splitter.split(np.zeros(len(y)), y if stratify else None))[fold]
    parts = stratified_split(y[rest], val_fraction, 0.0, seed, stratify=stratify)
    return {"train": np.sort(rest[parts["train"]]).astype(np.int64),
            "val": np.sort(rest[parts["val"]]).astype(np.int64),
            "test": np.sort(test).astype(np.int64)}
