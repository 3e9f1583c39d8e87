"""scikit-learn's bundled tables (no download): small, well-known, good for smoke tests."""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from factory.config.ranges import check_argument
from factory.config.schemas import SklearnSourceConf
from factory.data.sources.base import DataSource, LoadedTable
from factory.data.spec import TableSchema
from factory.errors import DataError


class SklearnSource(DataSource):
    """A table from ``sklearn.datasets``, named by ``dataset``.

    * ``breast_cancer``: 569 rows, 30 numeric features (sklearn's names in snake case,
      ``mean_radius``...), binary target ``target`` holding sklearn's class names,
      ``malignant`` / ``benign``, with ``benign`` the positive class: encoded as sklearn
      encodes it (0 = malignant, 1 = benign), and every figure and table names the classes.
    * ``digits``: 1,797 rows of 8x8 grey images, numeric features ``pixel_0`` ..
      ``pixel_63`` (0-16, row-major), target ``digit`` (10 classes), and
      ``image_shape=(1, 8, 8)`` in the schema.

    Args:
        dataset: one of ``breast_cancer``, ``digits``.

    Raises:
        DataError: an unknown dataset name.
    """

    def __init__(self, dataset: str):
        # The schema's choices: a config was checked against them already, a source built in Python was not.
        check_argument(SklearnSourceConf, "dataset", dataset, "data.source.dataset", DataError)
        self.dataset = dataset
        self.name = dataset

    def load(self) -> LoadedTable:
        # Imported here: sklearn.datasets costs ~1.3 s, and configs build sources cheaply.
        from sklearn import datasets

        if self.dataset == "breast_cancer":
            bunch = datasets.load_breast_cancer()
            names = [n.replace(" ", "_") for n in bunch.feature_names]
            schema = TableSchema(
                features=dict.fromkeys(names, "numeric"), target="target", task="binary", positive_label="benign"
            )
        else:
            bunch = datasets.load_digits()
            names = [f"pixel_{i}" for i in range(bunch.data.shape[1])]
            schema = TableSchema(
                features=dict.fromkeys(names, "numeric"),
                target="digit",
                task="multiclass",
                image_shape=(1, 8, 8),
            )
        columns = dict(zip(names, np.asarray(bunch.data, dtype=np.float64).T))
        # Class names where sklearn has them (breast_cancer), so nobody reads 0/1; digits are their names.
        target = np.asarray(bunch.target, dtype=np.int64)
        columns[schema.target] = bunch.target_names[target] if schema.task == "binary" else target
        return LoadedTable(pa.table(columns), schema)
