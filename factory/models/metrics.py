"""The loss and the torchmetrics collection for each task."""
from __future__ import annotations

import torch
from torch import nn
from torchmetrics import MeanAbsoluteError, MeanSquaredError, MetricCollection, R2Score
from torchmetrics.classification import (
    BinaryAccuracy,
    BinaryAUROC,
    BinaryAveragePrecision,
    BinaryF1Score,
    MulticlassAccuracy,
    MulticlassF1Score,
)


def task_metrics(task: str, n_classes: int) -> MetricCollection:
    """Metrics logged as ``<stage>/<name>``; updated per batch, synchronized once per epoch."""
    if task == "binary":
        return MetricCollection({
            "accuracy": BinaryAccuracy(), "f1": BinaryF1Score(),
            "auroc": BinaryAUROC(), "pr_auc": BinaryAveragePrecision(),
        })
    if task == "multiclass":
        return MetricCollection({
            "accuracy": MulticlassAccuracy(n_classes, average="micro"),
            "f1_macro": MulticlassF1Score(n_classes, average="macro"),
        })
    return MetricCollection({"mse": MeanSquaredError(), "mae": MeanAbsoluteError(), "r2": R2Score()})


def task_loss(task: str, pos_weight: float | None) -> nn.Module:
    if task == "binary":
        weight = None if pos_weight is None else torch.tensor(float(pos_weight))
        return nn.BCEWithLogitsLoss(pos_weight=weight)
    if task == "multiclass":
        return nn.CrossEntropyLoss()
    return nn.MSELoss()


def scores(task: str, logits: torch.Tensor) -> torch.Tensor:
    """Logits -> what metrics and users consume: P(class 1), class probabilities, or values."""
    if task == "binary":
        return torch.sigmoid(logits.squeeze(-1))
    if task == "multiclass":
        return torch.softmax(logits, dim=-1)
    return logits.squeeze(-1)
