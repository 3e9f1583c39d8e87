"""A model scored on raw rows: the rows beside target, prediction and scores.

Below the registry and the notebook API, which both score tables (a registered model's
``predict``, a run's ``predictions``); it needs only a model and its fitted preprocessing.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

#: Columns added to the raw rows; a raw column of the same name is kept as ``<name>_raw``.
ADDED = ("target", "label", "prediction", "score")


def predict_split(model, datamodule, split: str = "test", batch_size: int = 8192) -> pd.DataFrame:
    """Score ``split`` of a set-up DataModule with ``model``.

    Returns:
        The split's raw columns (source order) plus ``target`` (class index; the value for
        regression), ``label`` (display label of the target), ``prediction`` (predicted
        class index, or value) and ``score``: P(class 1) for binary, the predicted class's
        probability for multiclass (with one ``prob_<label>`` column per class), the
        predicted value for regression.
    """
    return predict_table(model, datamodule.preprocessor, datamodule.split_table(split), batch_size)


def predict_table(model, preprocessor, table, batch_size: int = 8192) -> pd.DataFrame:
    """Score raw rows with ``model``, encoded by the ``preprocessor`` fitted at training time.

    Args:
        model: a ``SupervisedModel`` (put in eval mode here).
        preprocessor: the run's fitted ``Preprocessor`` (saved in every checkpoint).
        table: a ``pyarrow.Table`` or pandas DataFrame holding the feature columns; the
            target column is optional.

    Returns:
        As ``predict_split``; ``target`` and ``label`` only when the table has the target.
        A DataFrame's index is kept (an Arrow table's rows are numbered 0..n-1).

    Raises:
        DataError: a feature column the preprocessing needs is absent.
    """
    import torch

    from factory.models.metrics import scores

    table, index = as_arrow(table)
    has_target = preprocessor.schema.target in table.column_names
    if has_target:
        x_num, x_cat, y = preprocessor.transform(table)
    else:
        (x_num, x_cat), y = preprocessor.transform_features(table), None
    outputs = []
    model.eval()
    with torch.no_grad():
        for start in range(0, len(x_num), batch_size):
            logits = model(torch.from_numpy(x_num[start:start + batch_size]),
                           torch.from_numpy(x_cat[start:start + batch_size]))
            outputs.append(scores(model.task, logits).float().numpy())
    out = np.concatenate(outputs) if outputs else np.empty((0,))
    return scored_frame(table, index, model.task, preprocessor.class_labels, out, y)


def as_arrow(table) -> tuple:
    """``(pyarrow.Table, index)``: a DataFrame converted (its index kept aside), an Arrow table as is (index None)."""
    import pyarrow as pa

    if isinstance(table, pd.DataFrame):
        # results keep the caller's index, so they join back to the input
        return pa.Table.from_pandas(table, preserve_index=False), table.index
    return table, None


def scored_frame(table, index, task: str, class_labels: list, out: np.ndarray, y: np.ndarray | None) -> pd.DataFrame:
    """The rows of ``table`` beside their scores, as ``predict_table`` returns them (every backend's frame).

    Args:
        table: the scored rows (Arrow); index: the caller's DataFrame index, or None.
        task: ``binary``, ``multiclass`` or ``regression``; class_labels: the display labels.
        out: float32 scores: (N,) P(class 1) or value, (N, C) class probabilities for multiclass.
        y: the encoded target (``Preprocessor.transform``), or None when the table lacks it.
    """
    frame = table.to_pandas()
    if index is not None:
        frame.index = index
    frame = frame.rename(columns={c: f"{c}_raw" for c in frame.columns if c in ADDED})
    labels = list(class_labels)
    if y is not None:
        frame["target"] = y
        frame["label"] = [labels[i] for i in y] if task != "regression" else y
    if task == "multiclass":  # out: (N, C) probabilities
        frame["prediction"] = out.argmax(axis=1)
        frame["score"] = out.max(axis=1)
        for i, label in enumerate(labels):
            frame[f"prob_{label}"] = out[:, i]
    elif task == "binary":  # out: (N,) P(class 1)
        frame["prediction"] = (out >= 0.5).astype(np.int64)
        frame["score"] = out
    else:
        frame["prediction"] = out
        frame["score"] = out
    return frame
