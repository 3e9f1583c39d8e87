"""Feature and target encoding fitted on the train split, saved as plain JSON-able state.

Float block layout, in this order (``InputSpec.n_numeric`` columns):
    standardized numerics (schema order) | missing indicators | one-hot categoricals.
Categoricals with more than ``max_onehot`` levels are embedded instead: their int64
codes form ``x_cat``. Every categorical reserves code 0 for a missing value and code 1
for a level unseen in training; the train levels, sorted, follow from code 2. An empty
string is missing, as a null is (never a level): CSV reading makes empty cells nulls, and
the exported ONNX graph takes ``""`` for missing, so every reader and both backends agree.
A state saved before this rule whose levels hold ``""`` still loads; ``""`` then encodes as
missing (its level's code is no longer produced).

Missing-indicator policy: a numeric column gets an indicator only if it had missing
values in the train split (as scikit-learn's ``SimpleImputer(add_indicator=True)``).
The list is part of the state, so later tables get the same columns; a column that
was complete in training is only imputed. Image tables get no indicators and no one-hot
columns, so the float block stays exactly ``C*H*W`` pixels wide.

Each numeric column also keeps up to ``BINS`` quantile bins of its train values (``bins``: the
edges, in the column's own units), for networks with piecewise-linear numerical embeddings
(``factory.models.num_embeddings``); they cost nothing to the others. Image tables get none.

``reading_state`` is the part of the state learned from no value (schema, column names, class
labels): what an exported file's metadata keeps, so it discloses no level, bin edge or mean.
"""
from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from factory.data.spec import InputSpec, TableSchema
from factory.data.validation import check_finite, label_mask
from factory.errors import DataError, FactoryError

MISSING, UNSEEN, FIRST_LEVEL = 0, 1, 2
#: Quantile bins per numeric column: the default of the embeddings paper (Gorishniy et al., 2022).
BINS = 48


class Preprocessor:
    """Turns Arrow tables into ``(x_num, x_cat, y)`` arrays with statistics from one table.

    Build it with ``Preprocessor.fit(train_table, schema)`` or ``from_state_dict``; the
    state is plain lists, dicts, strings and numbers, so it can live in a Lightning
    checkpoint or a JSON file.

    Example:
        >>> pre = Preprocessor.fit(train, schema, max_onehot=16)
        >>> x_num, x_cat, y = pre.transform(test)
        >>> Preprocessor.from_state_dict(json.loads(json.dumps(pre.state_dict())))
    """

    def __init__(self, state: dict):
        state = self._state = copy.deepcopy(state)  # the caller's dict may change later; ours must not
        schema = dict(state["schema"])
        if schema["image_shape"] is not None:
            schema["image_shape"] = tuple(schema["image_shape"])
        self.schema = TableSchema(**schema)
        numeric = state["numeric"]
        self._names = [c["name"] for c in numeric]
        self._mean = np.array([c.get("mean", np.nan) for c in numeric], dtype=np.float64)  # no mean: reading only
        self._std = np.array([c.get("std", np.nan) for c in numeric], dtype=np.float64)
        self._indicators = [self._names.index(name) for name in state["indicators"]]
        self._categorical = state["categorical"]
        self.class_labels: list = state["class_labels"]
        self._reading_only = bool(state.get("reading_only"))

    @classmethod
    def fit(cls, table: pa.Table, schema: TableSchema, max_onehot: int = 16) -> Preprocessor:
        """Learn statistics, levels and classes from ``table`` (the train split only).

        Args:
            table: validated train rows.
            schema: the source's declaration of features, target and task.
            max_onehot: categoricals with at most this many train levels are one-hot
                encoded; more levels are embedded.
        """
        values = _numeric_matrix(table, schema.numeric)  # (N, n_numeric) float64, NaN = missing
        seen = ~np.isnan(values)
        count = np.maximum(seen.sum(axis=0), 1)  # an all-missing column gets mean 0, std 1
        mean = np.where(seen, values, 0.0).sum(axis=0) / count
        std = np.sqrt(np.where(seen, (values - mean) ** 2, 0.0).sum(axis=0) / count)
        levels = {name: pc.unique(_as_text(table.column(name)).drop_null()).to_pylist() for name in schema.categorical}
        return cls.from_statistics(schema, mean, std, ~seen.all(axis=0), levels,
                                   pc.unique(table.column(schema.target)), max_onehot,
                                   [values[seen[:, j], j] for j in range(values.shape[1])])

    @classmethod
    def from_statistics(cls, schema: TableSchema, mean: np.ndarray, std: np.ndarray, missing: np.ndarray,
                        levels: dict[str, list], targets: pa.Array | pa.ChunkedArray, max_onehot: int = 16,
                        samples: list[np.ndarray] | None = None) -> Preprocessor:
        """Build the state from train statistics gathered elsewhere (``fit``'s, or a streaming pass's).

        Args:
            schema: the source's schema.
            mean, std: per numeric column (schema order), population statistics of its seen values.
            missing: per numeric column, whether any train value was missing.
            levels: categorical column -> its distinct train values as text (any order; ``""`` dropped).
            targets: the distinct train target values (the class labels come from them).
            max_onehot: as in ``fit``.
            samples: per numeric column, the seen values its quantile bins come from (all train
                values, or a uniform sample of them: ``factory.data.parquet_stream``); ``None``: no bins.
        """
        image = schema.image_shape is not None
        std = np.where(np.asarray(std) == 0, 1.0, std)  # constant columns (blank image borders) stay 0 after centring
        numeric = [
            {"name": name, "mean": float(m), "std": float(s)} for name, m, s in zip(schema.numeric, mean, std)
        ]
        if not image and samples is not None:
            for column, sample in zip(numeric, samples):
                column["bins"] = _quantile_edges(sample, column["mean"], column["std"])
        indicators = [] if image else [name for name, absent in zip(schema.numeric, missing) if absent]
        categorical = []
        for name in schema.categorical:
            kept = sorted(level for level in levels[name] if level != "")  # "" is missing, not a level
            categorical.append({"name": name, "levels": kept, "onehot": not image and len(kept) <= max_onehot})
        schema_state = dataclasses.asdict(schema)
        if schema.image_shape is not None:
            schema_state["image_shape"] = list(schema.image_shape)
        return cls(
            {
                "schema": schema_state,
                "numeric": numeric,
                "indicators": indicators,
                "categorical": categorical,
                "class_labels": _class_labels(pa.chunked_array([targets]) if isinstance(targets, pa.Array)
                                              else targets, schema),
            }
        )

    def state_dict(self) -> dict:
        """Everything ``transform`` needs, as JSON-serializable Python (a copy)."""
        return copy.deepcopy(self._state)

    @classmethod
    def from_state_dict(cls, state: dict) -> Preprocessor:
        """Rebuild a fitted preprocessor from ``state_dict()`` or ``reading_state()`` output (e.g. after JSON)."""
        return cls(state)

    def reading_state(self) -> dict:
        """The state minus everything learned from the rows' values: schema, column names, class labels.

        A preprocessor rebuilt from it reads tables (``raw_features``) and encodes the target
        (``encode_target``), and refuses to ``transform``: no category level, quantile bin (whose
        end edges are the train minimum and maximum) or mean is in it. What an exported ONNX
        file's metadata keeps (the graph holds the levels and statistics it scores with).
        """
        return {"schema": copy.deepcopy(self._state["schema"]), "numeric": [{"name": n} for n in self._names],
                "indicators": [], "categorical": [{"name": c["name"]} for c in self._categorical],
                "class_labels": copy.deepcopy(self.class_labels), "reading_only": True}

    def _require_fitted(self) -> None:
        if self._reading_only:
            raise FactoryError("this preprocessing state is for reading tables only (an exported file's "
                               "metadata): it holds no levels or statistics to encode features with")

    @property
    def n_float(self) -> int:
        """Width of the float block before any image reshape."""
        self._require_fitted()
        onehot = sum(len(c["levels"]) + FIRST_LEVEL for c in self._categorical if c["onehot"])
        return len(self._names) + len(self._indicators) + onehot

    def input_spec(self, class_counts: list[int] | None = None) -> InputSpec:
        """Describe the encoded inputs for building a network.

        Args:
            class_counts: train rows per encoded class (classification), stored as-is.
        """
        image_shape = self.schema.image_shape
        return InputSpec(
            n_numeric=self.n_float,
            embed_cardinalities=[len(c["levels"]) + FIRST_LEVEL for c in self._categorical if not c["onehot"]],
            n_classes=len(self.class_labels) or 1,
            task=self.schema.task,
            class_counts=list(class_counts or []),
            image_shape=list(image_shape) if image_shape is not None else None,
            n_continuous=len(self._names),
            bin_edges=self._standardized_bins(),
        )

    def _standardized_bins(self) -> list[list[float]] | None:
        """Each numeric column's bin edges in the units the network sees; None if not fitted."""
        numeric = self._state["numeric"]
        if not numeric or any("bins" not in c for c in numeric):  # images, and states saved before bins
            return None
        # Distinct in float32, as the network holds them: edges must strictly increase, and two edges
        # apart in float64 may be equal in float32 (a column with one extreme value squeezes the rest).
        edges = [np.unique(((np.array(c["bins"]) - c["mean"]) / c["std"]).astype(np.float32)) for c in numeric]
        return [(e if e.size >= 2 else np.array([e[0] - 1, e[0] + 1], dtype=np.float32)).tolist() for e in edges]

    def transform(self, table: pa.Table) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Encode a table with the fitted statistics; vectorized over rows.

        Args:
            table: any table holding the fitted feature and target columns.

        Returns:
            ``x_num``: float32 ``(N, n_float)``, or ``(N, C, H, W)`` for images;
            ``x_cat``: int64 ``(N, n_embedded)`` codes; ``y``: int64 ``(N,)`` class
            indices for classification, float32 ``(N,)`` for regression.

        Raises:
            DataError: a fitted column is absent, a numeric feature holds an infinity,
                or the target has missing (or non-finite) values or classes unknown at fit time.
        """
        _require(table, [*self.schema.features, self.schema.target])
        x_num, x_cat = self.transform_features(table)
        return x_num, x_cat, self._encode_target(table.column(self.schema.target))

    def transform_features(self, table: pa.Table) -> tuple[np.ndarray, np.ndarray]:
        """``transform`` without the target: encode new rows to score (the target may be absent).

        Raises:
            DataError: a fitted feature column is absent, or a numeric one holds an infinity.
        """
        self._require_fitted()
        _require(table, self.schema.features)
        n = table.num_rows
        raw = _numeric_matrix(table, self._names)
        x_num = np.empty((n, self.n_float), dtype=np.float32)
        k = len(self._names)
        x_num[:, :k] = np.nan_to_num((raw - self._mean) / self._std, nan=0.0)  # impute: train mean -> 0
        x_num[:, k : k + len(self._indicators)] = np.isnan(raw[:, self._indicators])
        col, embedded = k + len(self._indicators), []
        for cat in self._categorical:
            codes = _codes(table.column(cat["name"]), cat["levels"])
            if cat["onehot"]:
                width = len(cat["levels"]) + FIRST_LEVEL
                x_num[:, col : col + width] = 0.0
                x_num[np.arange(n), col + codes] = 1.0
                col += width
            else:
                embedded.append(codes)
        if self.schema.image_shape is not None:
            x_num = x_num.reshape(n, *self.schema.image_shape)
        x_cat = np.stack(embedded, axis=1) if embedded else np.zeros((n, 0), dtype=np.int64)
        return x_num, x_cat

    def raw_features(self, table: pa.Table) -> dict[str, np.ndarray]:
        """The feature columns before encoding, as an exported graph takes them (``factory.export``).

        Returns:
            Feature name -> (N,) array, in feature order: numeric columns float64 with NaN
            for missing (read as ``transform_features`` reads them); categorical ones as the
            text their levels are matched on, ``""`` for missing (a null or ``""``).

        Raises:
            DataError: as ``transform_features``.
        """
        _require(table, self.schema.features)
        numeric = _numeric_matrix(table, self._names)
        columns = {name: np.ascontiguousarray(numeric[:, j]) for j, name in enumerate(self._names)}
        for cat in self._categorical:
            text = pc.fill_null(_as_text(table.column(cat["name"])), "")
            columns[cat["name"]] = text.to_numpy().astype(object)
        return {name: columns[name] for name in self.schema.features}

    def encode_target(self, table: pa.Table) -> np.ndarray:
        """The target column of ``table`` encoded as ``transform`` encodes it.

        Raises:
            DataError: as ``transform`` for the target (absent, missing values, unknown classes).
        """
        _require(table, [self.schema.target])
        return self._encode_target(table.column(self.schema.target))

    def _encode_target(self, column: pa.ChunkedArray) -> np.ndarray:
        schema, name = self.schema, self.schema.target
        if column.null_count:
            raise DataError(f"target '{name}' has {column.null_count} missing value(s); drop or fill those rows")
        column = _decoded(column)
        if schema.task == "regression":
            check_finite(pc.cast(column, pa.float64()).to_numpy(), f"target '{name}'", nan=True)
            return pc.cast(column, pa.float32()).to_numpy().copy()  # Arrow buffers are read-only
        if schema.task == "binary" and schema.positive_label is not None:
            return label_mask(column, schema.positive_label).to_numpy().astype(np.int64)
        if schema.task == "binary":
            y = pc.cast(column, pa.float64()).to_numpy()
            if not np.isin(y, (0.0, 1.0)).all():
                raise DataError(f"binary target '{name}' must be 0/1 or set positive_label")
            return y.astype(np.int64)
        try:
            classes = pa.array(self.class_labels).cast(column.type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            raise DataError(f"target '{name}' has type {column.type}; fitted classes: {self.class_labels}") from None
        index = pc.index_in(column, value_set=classes)
        if index.null_count:
            unknown = pc.unique(pc.filter(column, pc.is_null(index))).to_pylist()
            raise DataError(f"target '{name}' has classes unseen in training: {unknown[:5]}")
        return index.to_numpy().astype(np.int64)


def _class_labels(column: pa.ChunkedArray, schema: TableSchema) -> list:
    """Display labels, index = encoded class: 0/1, ``[other, positive]``, or sorted classes."""
    if schema.task == "regression":
        return []
    if schema.task == "multiclass":
        return sorted(pc.unique(_decoded(column)).to_pylist())
    positive = schema.positive_label
    if positive is None:
        return [0, 1]
    column = _decoded(column)
    others = pc.unique(pc.filter(column, pc.invert(label_mask(column, positive)))).to_pylist()
    return [others[0] if len(others) == 1 else f"not {positive}", positive]


def _quantile_edges(values: np.ndarray, mean: float, std: float) -> list[float]:
    """Distinct quantile edges of a column's observed train values (at most ``BINS`` bins).

    A column with fewer distinct values gets fewer bins; a constant or all-missing one gets
    the single bin ``[mean - std, mean + std]`` (a network needs at least two edges).
    """
    edges = np.unique(np.quantile(values, np.linspace(0.0, 1.0, BINS + 1))) if values.size else np.empty(0)
    if edges.size < 2:
        edges = np.array([mean - std, mean + std])
    return edges.tolist()


def _require(table: pa.Table, columns: list[str]) -> None:
    absent = [c for c in columns if c not in table.column_names]
    if absent:
        raise DataError(f"table lacks column(s) the fitted preprocessing needs: {', '.join(map(repr, absent))}")


def _decoded(column: pa.ChunkedArray) -> pa.ChunkedArray:
    return column.cast(column.type.value_type) if pa.types.is_dictionary(column.type) else column


def _as_text(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Categorical values as strings, so levels compare the same way at fit and later."""
    return pc.cast(_decoded(column), pa.string())


def _numeric_matrix(table: pa.Table, names: list[str]) -> np.ndarray:
    """(N, len(names)) float64 with NaN for nulls.

    Raises:
        DataError: a column holds an infinity (every table encoded, not only validated ones).
    """
    out = np.empty((table.num_rows, len(names)), dtype=np.float64)
    for j, name in enumerate(names):
        out[:, j] = _numeric_column(table, name)
    return out


def _numeric_column(table: pa.Table, name: str) -> np.ndarray:
    """One column of ``_numeric_matrix``: (N,) float64, NaN for nulls; an infinity is a ``DataError``."""
    column = _decoded(table.column(name))
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        # The parse validation checked (pandas', via pandera); Arrow's cast is stricter.
        values = column.to_pandas().astype("float64").to_numpy()
    else:
        values = pc.cast(column, pa.float64()).to_numpy()
    check_finite(values, f"numeric feature '{name}'")
    return values


def _codes(column: pa.ChunkedArray, levels: list[str] | pa.Array) -> np.ndarray:
    """(N,) int64 codes: MISSING (a null or ``""``), UNSEEN, or FIRST_LEVEL + position in ``levels``."""
    text = _as_text(column)
    levels = levels if isinstance(levels, pa.Array) else pa.array(levels, pa.string())
    index = pc.fill_null(pc.index_in(text, value_set=levels), -1).to_numpy()
    codes = index.astype(np.int64) + FIRST_LEVEL
    missing = pc.fill_null(pc.equal(text, ""), True).to_numpy(zero_copy_only=False)  # null or ""
    codes[missing] = MISSING  # also where an old state's levels hold "" (fitted before "" was missing)
    codes[~missing & (index < 0)] = UNSEEN
    return codes
