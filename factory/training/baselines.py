"""scikit-learn baselines trained on the model's train split and scored on its test split.

``baseline:`` in a train config lists them by name; each returns its metrics named like the
model's for the task (``factory.models.metrics``), without the split prefix.

- ``logistic_regression``: on the model's own preprocessing (standardized numerics, missing
  indicators, one-hot codes): classification only.
- ``hist_gradient_boosting``: scikit-learn's ``HistGradientBoosting{Classifier,Regressor}``
  with default settings on the raw columns: categoricals natively (pandas ``category``), missing
  values left to the trees. The bar practitioners hold a tabular model to.

A language model's run always records a ``unigram`` and a ``bigram`` baseline on its val tokens
instead (``language_model``, ``factory.training.ngram``).
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from factory.errors import ConfigError

#: ``input_spec.task`` of a language model's data (``factory.data.text.TextSpec``).
LANGUAGE_MODELING = "language_modeling"
#: HistGradientBoosting bins a categorical's levels: at most this many (its ``max_bins`` default).
MAX_CATEGORIES = 255


def names(value: Any) -> list[str]:
    """``baseline:`` as a list of names: a name alone (old configs, the CLI) is a list of one, null none."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(name) for name in value]


def check(value: Any, task: str) -> None:
    """Refuse, before training, a baseline that cannot run for ``task``.

    Raises:
        ConfigError: ``logistic_regression`` for a regression task; any for a language model.
    """
    if task == LANGUAGE_MODELING and names(value):
        raise ConfigError(f"baseline: [{','.join(names(value))}] is for tabular data; a language model's run "
                          "records its own unigram and bigram baselines: set baseline=null")
    if task == "regression" and "logistic_regression" in names(value):
        others = [name for name in names(value) if name != "logistic_regression"]
        raise ConfigError("baseline: logistic_regression needs a classification task and this data's task is "
                          f"regression; use baseline=[{','.join(others) or 'hist_gradient_boosting'}]")


def run_all(datamodule, value: Any, split: str = "test", seed: int = 0) -> dict[str, dict[str, float]]:
    """Every baseline ``value`` names, fitted on the train split and scored on ``split``: ``{name: metrics}``."""
    return {name: BASELINES[name](datamodule, split=split, seed=seed) for name in names(value)}


def for_run(datamodule, value: Any, seed: int = 0) -> dict[str, dict[str, float]]:
    """The baselines a run records in ``metrics.json``: for a language model always its unigram and
    bigram (cheap; ``language_model``), else those ``value`` names (``run_all``)."""
    if datamodule.input_spec.task == LANGUAGE_MODELING:
        return language_model(datamodule)
    return run_all(datamodule, value, seed=seed)


def language_model(datamodule, split: str = "val") -> dict[str, dict[str, float]]:
    """A unigram and a bigram fitted on the train tokens, scored on the targets of the windows the
    model's ``val/perplexity`` is measured on (``data.eval_windows`` of ``split``; the same tokens, so
    the ratio compares like with like; ``factory.training.ngram``):
    ``{"unigram": {"loss", "perplexity"}, "bigram": {...}}``; ``{}`` when the split holds too few tokens."""
    from factory.data.text.windows import EvalWindows
    from factory.training.ngram import ngram_baselines

    evaluated, block_size = datamodule.tokens(split), datamodule.block_size
    if len(evaluated) < block_size + 1:
        return {}
    starts = EvalWindows(len(evaluated), block_size, 1, datamodule.eval_windows).starts()
    return ngram_baselines(datamodule.tokens("train"), evaluated, datamodule.input_spec.vocab_size,
                           windows=(starts, block_size))


def logistic_regression(datamodule, split: str = "test", seed: int = 0) -> dict[str, float]:
    """Fit ``LogisticRegression`` on the train split's preprocessed block; metrics on ``split``.

    Returns:
        ``{"pr_auc", "auroc", "accuracy", "f1"}`` for binary tasks,
        ``{"accuracy", "f1_macro"}`` for multiclass.

    Raises:
        ConfigError: a regression task.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import OneHotEncoder

    task = datamodule.input_spec.task
    check("logistic_regression", task)
    preprocess = datamodule.preprocessor.transform
    train_num, train_cat, train_y = (np.asarray(a) for a in preprocess(datamodule.split_table("train")))
    eval_num, eval_cat, eval_y = (np.asarray(a) for a in preprocess(datamodule.split_table(split)))
    encoder = OneHotEncoder(handle_unknown="ignore").fit(train_cat) if train_cat.shape[1] else None
    model = LogisticRegression(max_iter=2000, random_state=seed)
    model.fit(_design_matrix(train_num, train_cat, encoder), train_y)
    x_eval = _design_matrix(eval_num, eval_cat, encoder)
    return _scores(task, eval_y, model.predict(x_eval), model.predict_proba(x_eval))


def hist_gradient_boosting(datamodule, split: str = "test", seed: int = 0) -> dict[str, float]:
    """Fit scikit-learn's ``HistGradientBoosting`` (defaults) on the raw train split; metrics on ``split``.

    The features are the model's columns as the table holds them: numerics as floats (missing
    values NaN, which the trees route), categoricals as pandas ``category`` with the train
    split's levels, split natively (``categorical_features="from_dtype"``). A level unseen in
    training reads as missing. A categorical with more than ``MAX_CATEGORIES`` levels keeps its
    most frequent ones. The target is encoded exactly as the model's.

    Returns:
        The model's metric names for the task: ``pr_auc, auroc, accuracy, f1`` (binary),
        ``accuracy, f1_macro`` (multiclass), ``mse, mae, r2`` (regression).
    """
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from threadpoolctl import threadpool_limits

    task = datamodule.input_spec.task
    schema = datamodule.preprocessor.schema
    train, evaluated = datamodule.split_table("train"), datamodule.split_table(split)
    levels = {name: _frequent_levels(train.column(name)) for name in schema.categorical}
    x_train, x_eval = (_raw_features(table, schema, levels) for table in (train, evaluated))
    train_y = datamodule.preprocessor.transform(train)[2]
    eval_y = datamodule.preprocessor.transform(evaluated)[2]
    kind = HistGradientBoostingRegressor if task == "regression" else HistGradientBoostingClassifier
    model = kind(categorical_features="from_dtype", random_state=seed)
    # One OpenMP thread: the trees' many short parallel regions stall whenever a core is busy
    # elsewhere (another process, or torch's own OpenMP runtime in this one). On the 2-core CPU
    # under load, fraud's 35,000 train rows fit in 0.9-1.8 s on one thread, 5.6-7.0 s on two;
    # breast_cancer in 0.6-0.9 s against 4.9-13 s (5.6 s without torch imported).
    with threadpool_limits(limits=1, user_api="openmp"):
        model.fit(x_train, train_y)
        predicted = model.predict(x_eval)
        scores = model.predict_proba(x_eval) if task != "regression" else None
    return _scores(task, eval_y, predicted, scores)


#: name -> baseline: the names ``baseline:`` accepts (``factory.config.schemas.TrainConf.baseline``).
BASELINES: dict[str, Callable[..., dict[str, float]]] = {
    "logistic_regression": logistic_regression,
    "hist_gradient_boosting": hist_gradient_boosting,
}


def _scores(task: str, y, predicted, scores) -> dict[str, float]:
    """The model's metrics for ``task`` (``factory.models.metrics.task_metrics``), by scikit-learn."""
    from sklearn import metrics

    if task == "regression":
        return {"mse": float(metrics.mean_squared_error(y, predicted)),
                "mae": float(metrics.mean_absolute_error(y, predicted)),
                "r2": float(metrics.r2_score(y, predicted))}
    if task == "binary":
        positive = scores[:, 1]
        return {"pr_auc": float(metrics.average_precision_score(y, positive)),
                "auroc": float(metrics.roc_auc_score(y, positive)),
                "accuracy": float(metrics.accuracy_score(y, predicted)),
                "f1": float(metrics.f1_score(y, predicted, zero_division=0))}
    return {"accuracy": float(metrics.accuracy_score(y, predicted)),
            "f1_macro": float(metrics.f1_score(y, predicted, average="macro", zero_division=0))}


def _design_matrix(x_num, x_cat, encoder):
    """Floats as they are (images flattened) beside one-hot codes of embedded categoricals."""
    from scipy import sparse

    dense = np.asarray(x_num, dtype=np.float64).reshape(len(x_num), -1)
    if x_cat.shape[1] == 0:
        return dense
    return sparse.hstack([sparse.csr_matrix(dense), encoder.transform(np.asarray(x_cat))]).tocsr()


def _text(column):
    """A categorical column's values as strings (nulls kept), as the model's preprocessing compares them."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    return pc.cast(column, pa.string())


def _frequent_levels(column) -> list[str]:
    """The train split's levels, the ``MAX_CATEGORIES`` most frequent when there are more."""
    counts = _text(column).value_counts().to_pylist()
    counts = [(c["counts"], c["values"]) for c in counts if c["values"] is not None]
    if len(counts) > MAX_CATEGORIES:
        counts = sorted(counts, key=lambda c: (-c[0], c[1]))[:MAX_CATEGORIES]
    return sorted(value for _, value in counts)


def _raw_features(table, schema, levels: dict[str, list[str]]):
    """The model's feature columns as a DataFrame: float numerics (NaN missing), categoricals as ``category``."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    columns = {}
    for name in schema.features:
        column = table.column(name)
        if name in levels:
            columns[name] = pd.Categorical(_text(column).to_pandas(), categories=levels[name])  # unseen -> NaN
            continue
        if pa.types.is_dictionary(column.type):
            column = column.cast(column.type.value_type)
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            columns[name] = column.to_pandas().astype("float64")  # numbers as text, checked by validation
        else:
            columns[name] = pc.cast(column, pa.float64()).to_numpy()
    return pd.DataFrame(columns)
