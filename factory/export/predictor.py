"""An exported ONNX file scored with ONNX Runtime: the same frame as the PyTorch path, or bare arrays.

``OnnxPredictor.predict`` returns exactly what ``factory.models.predict.predict_table`` returns
(the frame is built by the same ``scored_frame``); ``predict_columns`` is the server's fast
path: arrays in, one ``session.run``, probabilities out, no pandas.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from factory.errors import DataError, FactoryError


class OnnxPredictor:
    """A model exported by ``export_onnx``, loaded in an ONNX Runtime session.

    Args:
        source: the ``.onnx`` file, or its bytes (read once, e.g. after a checksum check).
        intra_op_threads: ONNX Runtime's threads within an op; ``None``: its default.

    Attributes:
        features: the raw feature columns, in model order (the graph's inputs).
        kinds: feature name -> ``"numeric"`` or ``"categorical"``.
        class_labels: display label of each class index (empty for regression).
        task: ``binary``, ``multiclass`` or ``regression``.
        metadata: the file's metadata, JSON values decoded.

    Example:
        >>> onnx = OnnxPredictor("fraud.onnx")
        >>> onnx.predict(pd.read_parquet("new.parquet"))  # + prediction, score (as predict_table)
        >>> onnx.predict_columns({"amount": np.array([12.5]), "channel": np.array(["online"]), ...})
    """

    def __init__(self, source: str | Path | bytes, *, intra_op_threads: int | None = None) -> None:
        import onnxruntime as ort  # here: importing factory.export stays light

        options = ort.SessionOptions()
        # No spinning: ORT's pool threads otherwise busy-wait after every run, a core taken from whatever
        # shares the machine (a server's event loop and request-log writer: -25 to -40% rows/s on 2 cores).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if intra_op_threads is not None:
            options.intra_op_num_threads = int(intra_op_threads)
        where = "<bytes>" if isinstance(source, (bytes, bytearray)) else str(source)
        if not isinstance(source, (bytes, bytearray)) and not Path(source).is_file():
            raise FactoryError(f"no such ONNX file: {source}")
        try:
            self.session = ort.InferenceSession(source if isinstance(source, (bytes, bytearray)) else str(source),
                                                options, providers=["CPUExecutionProvider"])
        except Exception as e:  # noqa: BLE001: onnxruntime raises its own types for a bad file
            reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise FactoryError(f"{where} is not a loadable ONNX model ({reason})") from None
        props = self.session.get_modelmeta().custom_metadata_map
        try:
            self.metadata = {key: json.loads(value) for key, value in props.items()}
            self.features: list[str] = list(self.metadata["features"])
            self.kinds: dict[str, str] = dict(self.metadata["kinds"])
            self.class_labels: list = list(self.metadata["class_labels"])
            self.task: str = self.metadata["task"]
        except (KeyError, ValueError) as e:
            raise FactoryError(f"{where} was not exported by factory (its metadata lacks {e})") from None
        self.output = self.session.get_outputs()[0].name
        self._numeric = [name for name in self.features if self.kinds[name] == "numeric"]
        self._plan = [(name, self.kinds[name] == "numeric") for name in self.features]  # per call: no dict lookups
        self._outputs = [self.output]
        self._preprocessor = None

    @property
    def preprocessor(self):
        """The fitted ``Preprocessor`` recorded in the file (read raw tables, encode the target)."""
        if self._preprocessor is None:
            from factory.data.preprocessing import Preprocessor

            self._preprocessor = Preprocessor.from_state_dict(self.metadata["preprocessor"])
        return self._preprocessor

    def predict_columns(self, columns: dict) -> np.ndarray:
        """Score raw feature columns in one ``session.run``.

        Args:
            columns: feature name -> 1-D array (or list) of N values: numbers (NaN or None for
                missing) for numeric features, strings (``""`` or None for missing) for
                categorical ones. Other keys are ignored.

        Returns:
            float32 ``(N,)`` P(class 1) for binary, ``(N, C)`` class probabilities for
            multiclass, ``(N,)`` values for regression.

        Raises:
            DataError: a feature is absent, not 1-D, not numeric where it must be, holds an
                infinity (named with its first row), or the columns differ in length.
        """
        feeds, rows, numeric = {}, -1, []
        for name, is_numeric in self._plan:
            values = columns.get(name, _ABSENT)
            if values is _ABSENT:
                raise DataError(f"missing feature column {name!r}")
            if is_numeric:
                # The server's arrays are float64, 1-D and contiguous already: then nothing to convert.
                if not (type(values) is np.ndarray and values.dtype == _FLOAT64 and values.ndim == 1
                        and values.flags.c_contiguous):
                    values = _numeric(name, values)
                numeric.append(values)
            else:
                values = _text(name, values)
            if len(values) != rows and rows >= 0:
                raise DataError(f"feature column {name!r} has {len(values)} values; the others have {rows}")
            rows = len(values)
            feeds[name] = values
        # As the preprocessing refuses it: NaN is missing, an infinity is an error. One check for all columns
        # (per column, it was most of the overhead on a one-row request).
        if numeric and np.isinf(np.concatenate(numeric) if len(numeric) > 1 else numeric[0]).any():
            name = next(name for name in self._numeric if np.isinf(feeds[name]).any())
            row = int(np.flatnonzero(np.isinf(feeds[name]))[0])
            raise DataError(f"feature column {name!r} holds an infinite value at row {row}")
        return self.session.run(self._outputs, feeds)[0]

    def predict(self, table, batch_size: int = 65536):
        """Score raw rows (pandas DataFrame or Arrow table) as ``predict_table`` does with PyTorch.

        Args:
            table: rows holding the feature columns; the target column is optional.
            batch_size: rows per ``session.run`` (bounds the graph's working memory).

        Returns:
            The same DataFrame as ``factory.models.predict.predict_table``: the rows plus
            ``prediction``, ``score`` (``prob_<label>`` per class for multiclass; ``target`` and
            ``label`` when the table has the target).

        Raises:
            DataError: a feature column is absent or holds an infinity; a bad target.
        """
        from factory.models.predict import as_arrow, scored_frame

        table, index = as_arrow(table)
        preprocessor = self.preprocessor
        columns = preprocessor.raw_features(table)
        y = preprocessor.encode_target(table) if preprocessor.schema.target in table.column_names else None
        n = table.num_rows
        parts = [self.predict_columns({k: v[start:start + batch_size] for k, v in columns.items()})
                 for start in range(0, n, batch_size)]
        out = np.concatenate(parts) if parts else np.empty((0,))  # as predict_table, for no rows
        return scored_frame(table, index, self.task, self.class_labels, out, y)


_ABSENT = object()
_FLOAT64 = np.dtype(np.float64)


def _numeric(name: str, values) -> np.ndarray:
    if not (isinstance(values, np.ndarray) and values.dtype == np.float64):  # the server's arrays already are
        try:
            values = np.asarray(values, dtype=np.float64)  # None -> NaN
        except (TypeError, ValueError):
            raise DataError(f"feature column {name!r} must hold numbers (NaN or null for missing)") from None
    if values.ndim != 1:
        raise DataError(f"feature column {name!r} must be 1-D; got shape {values.shape}")
    return values if values.flags.c_contiguous else np.ascontiguousarray(values)


def _text(name: str, values) -> np.ndarray:
    """Strings for the graph's LabelEncoder: None/NaN -> "", other values as Arrow writes them (as at training)."""
    array = values if type(values) is np.ndarray and values.dtype == object else np.asarray(values, dtype=object)
    if array.ndim != 1:
        raise DataError(f"feature column {name!r} must be 1-D; got shape {array.shape}")
    items = array.tolist()
    if all(type(v) is str for v in items):  # the usual case (JSON, Arrow strings): no conversion
        return array
    if all(type(v) is str or v is None for v in items):  # missing as None: no Arrow round trip either
        return np.array([v if v is not None else "" for v in items], dtype=object)
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        text = pc.cast(pa.array(array, from_pandas=True), pa.string())
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        raise DataError(f"feature column {name!r} must hold strings (\"\" or null for missing)") from None
    return pc.fill_null(text, "").to_numpy(zero_copy_only=False).astype(object)
