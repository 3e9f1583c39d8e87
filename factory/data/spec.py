"""What a data source declares about its table, and what a model is told about its inputs."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

Task = Literal["binary", "multiclass", "regression"]
ColumnKind = Literal["numeric", "categorical"]
TASKS: tuple[str, ...] = ("binary", "multiclass", "regression")


@dataclass(frozen=True)
class TableSchema:
    """The contract between a source's Arrow table and the rest of the pipeline.

    Attributes:
        features: feature column name -> ``"numeric"`` or ``"categorical"``, in model order.
        target: the target column.
        task: ``binary``, ``multiclass`` or ``regression``.
        positive_label: for a binary target stored as strings or other labels, the value
            that means class 1 (``"Yes"``, ``"bad"``). ``None``: the target is already 0/1.
        image_shape: when the numeric features are the pixels of an image, its (C, H, W)
            shape; vision models receive the features reshaped to it.
    """

    features: dict[str, ColumnKind]
    target: str
    task: Task
    positive_label: str | int | None = None
    image_shape: tuple[int, ...] | None = None

    @property
    def numeric(self) -> list[str]:
        return [c for c, kind in self.features.items() if kind == "numeric"]

    @property
    def categorical(self) -> list[str]:
        return [c for c, kind in self.features.items() if kind == "categorical"]


@dataclass
class InputSpec:
    """What a network needs to know about the preprocessed inputs; saved in checkpoints.

    Attributes:
        n_numeric: width of the float block (standardized numerics, missing indicators,
            one-hot categoricals).
        embed_cardinalities: levels (missing and unseen included) of each categorical that
            is embedded rather than one-hot encoded, in batch column order.
        n_classes: classes for classification, 1 for regression.
        task: as in ``TableSchema``.
        class_counts: rows per class in the train split (empty for regression); the loss
            derives class weights from it.
        image_shape: (C, H, W) when the float block is an image.
        n_continuous: how many leading float-block columns are standardized numerics (the
            columns a numerical embedding may embed); 0 in specs saved before it was recorded.
        bin_edges: per continuous column, its increasing quantile bin edges on the train
            split, in standardized units (piecewise-linear embeddings); None for images and
            specs saved before they were fitted.
    """

    n_numeric: int
    embed_cardinalities: list[int]
    n_classes: int
    task: str
    class_counts: list[int] = field(default_factory=list)
    image_shape: list[int] | None = None
    n_continuous: int = 0
    bin_edges: list[list[float]] | None = None

    @property
    def n_outputs(self) -> int:
        """Logit count: one for binary and regression, one per class otherwise."""
        return self.n_classes if self.task == "multiclass" else 1

    def to_dict(self) -> dict:
        return asdict(self)
