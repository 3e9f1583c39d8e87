"""A scikit-learn baseline trained on the same split and preprocessing as the model."""
from __future__ import annotations

import numpy as np


def _design_matrix(x_num, x_cat, encoder):
    """Floats as they are (images flattened) beside one-hot codes of embedded categoricals."""
    from scipy import sparse

    dense = np.asarray(x_num, dtype=np.float64).reshape(len(x_num), -1)
    if x_cat.shape[1] == 0:
        return dense
    return sparse.hstack([sparse.csr_matrix(dense), encoder.transform(np.asarray(x_cat))]).tocsr()


def logistic_regression(datamodule, split: str = "test", seed: int = 0) -> dict[str, float]:
    """Fit ``LogisticRegression`` on the train split; metrics on ``split``, named like the model's.

    Returns:
        ``{"pr_auc", "auroc", "accuracy", "f1"}`` for binary tasks,
        ``{"accuracy", "f1_macro"}`` for multiclass.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, average_precision_score, f1_score, roc_auc_score
    from sklearn.preprocessing import OneHotEncoder

    task = datamodule.input_spec.task
    if task == "regression":
        raise ValueError("the logistic_regression baseline needs a classification task")
    preprocess = datamodule.preprocessor.transform
    train_num, train_cat, train_y = (np.asarray(a) for a in preprocess(datamodule.split_table("train")))
    eval_num, eval_cat, eval_y = (np.asarray(a) for a in preprocess(datamodule.split_table(split)))
    encoder = OneHotEncoder(handle_unknown="ignore").fit(train_cat) if train_cat.shape[1] else None
    model = LogisticRegression(max_iter=2000, random_state=seed)
    model.fit(_design_matrix(train_num, train_cat, encoder), train_y)
    x_eval = _design_matrix(eval_num, eval_cat, encoder)
    predicted = model.predict(x_eval)
    if task == "binary":
        score = model.predict_proba(x_eval)[:, 1]
        return {"pr_auc": float(average_precision_score(eval_y, score)),
                "auroc": float(roc_auc_score(eval_y, score)),
                "accuracy": float(accuracy_score(eval_y, predicted)),
                "f1": float(f1_score(eval_y, predicted, zero_division=0))}
    return {"accuracy": float(accuracy_score(eval_y, predicted)),
            "f1_macro": float(f1_score(eval_y, predicted, average="macro", zero_division=0))}
