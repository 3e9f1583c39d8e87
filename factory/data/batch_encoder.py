"""``Preprocessor.transform`` for streamed record batches: the same arrays, bit for bit, in fewer passes.

Streaming encodes every row every epoch (the in-memory path once per run), so its encoding sets the
pace. ``BatchEncoder.encode(table, order)`` returns exactly ``transform(table)`` with its rows taken
in ``order`` (the shuffle), working column by column on whole arrays:

- numerics: the float64 standardization ``transform`` computes (same operations, same rounding),
  imputed and flagged, written straight into the one float32 block (no (N, k) float64 matrix, no
  ``nan_to_num`` copies);
- categoricals read as Arrow dictionaries (``ParquetStream`` reads them so): the code of each
  dictionary entry is looked up once (``pc.index_in`` against the fitted levels, on a few
  hundred entries) and the rows' codes are a gather of the indices; plain string columns are
  dictionary-encoded first; other types take ``transform``'s own path;
- one-hot columns are set by one scatter into the zeroed block; the shuffle permutes each
  1-D column before it is written, not the finished block.

Image tables (thousands of pixel columns, no categoricals) take ``transform`` itself.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from factory.data.preprocessing import FIRST_LEVEL, MISSING, Preprocessor, _codes, _numeric_column, _require


class BatchEncoder:
    """Encodes tables exactly as ``preprocessor.transform`` does (tests compare bit for bit).

    Example:
        >>> x_num, x_cat, y = BatchEncoder(pre).encode(batch, order=rng.permutation(batch.num_rows))
    """

    def __init__(self, preprocessor: Preprocessor):
        preprocessor._require_fitted()
        self.pre = preprocessor
        state = preprocessor.state_dict()
        self._names = [c["name"] for c in state["numeric"]]
        self._mean, self._std = preprocessor._mean, preprocessor._std  # the float64 values transform uses
        flagged = {name: i for i, name in enumerate(state["indicators"])}
        self._indicators = state["indicators"]
        self._flag = [flagged.get(name) for name in self._names]  # indicator row offset, or None
        self._width = preprocessor.n_float if preprocessor.schema.image_shape is None else 0
        self._categorical = []
        col = len(self._names) + len(flagged)
        for cat in state["categorical"]:
            levels = pa.array(cat["levels"], pa.string())
            self._categorical.append((cat["name"], levels, col if cat["onehot"] else None))
            col += len(cat["levels"]) + FIRST_LEVEL if cat["onehot"] else 0
        self._embedded = sum(off is None for _, _, off in self._categorical)
        self._luts: dict[str, tuple[pa.Array, np.ndarray]] = {}  # column -> its last dictionary and codes

    def encode(self, table: pa.Table, order: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``preprocessor.transform(table)``, its rows taken in ``order`` (None: as they are).

        Raises:
            DataError: as ``transform`` (absent column, infinite feature, bad target), naming rows
                in ``table``'s order.
        """
        pre = self.pre
        if pre.schema.image_shape is not None:
            arrays = pre.transform(table)
            return arrays if order is None else tuple(a[order] for a in arrays)
        _require(table, [*pre.schema.features, pre.schema.target])
        n = table.num_rows if order is None else len(order)
        k, flagged = len(self._names), len(self._indicators)
        # Numerics and indicators as rows of a (columns, N) block, each written contiguously, then put in
        # place by one transposed copy: writing (N,)-columns into the row-major block strided costs 5x.
        block = np.empty((k + flagged, n), dtype=np.float32)
        for j, name in enumerate(self._names):
            raw = _exact_integers(table.column(name))
            if raw is None:
                raw = _numeric_column(table, name)  # float64, NaN = missing; infinities refused, in table order
            if order is not None:
                raw = raw[order]
            z = np.subtract(raw, self._mean[j], dtype=np.float64)  # transform's float64 arithmetic, elementwise
            np.divide(z, self._std[j], out=z)
            if raw.dtype == np.float64:  # integers (no nulls) hold no NaN
                z[np.isnan(z)] = 0.0  # nan_to_num(nan=0): the train mean; infinities cast to float32 as theirs do
            block[j] = z
            if self._flag[j] is not None:
                block[k + self._flag[j]] = np.isnan(raw) if raw.dtype == np.float64 else 0.0
        x_num = np.zeros((n, self._width), dtype=np.float32)
        x_num[:, : k + flagged] = block.T
        x_cat = np.empty((n, self._embedded), dtype=np.int64)
        hot, embedded = [], 0
        for name, levels, offset in self._categorical:
            codes = self._codes(name, table.column(name), levels)
            if order is not None:
                codes = codes[order]
            if offset is None:
                x_cat[:, embedded] = codes
                embedded += 1
            else:
                hot.append(codes + offset)
        if hot:  # every one-hot 1.0 of the block in one scatter (flat positions row * width + column)
            rows = np.arange(n, dtype=np.int64) * self._width
            x_num.reshape(-1)[np.concatenate([rows + c for c in hot])] = 1.0
        y = self._target(table.column(pre.schema.target))
        return x_num, x_cat, y if order is None else y[order]

    def _target(self, column: pa.ChunkedArray) -> np.ndarray:
        """``_encode_target``; a 0/1 integer target without nulls read directly (anything else: its own path)."""
        schema = self.pre.schema
        if (schema.task == "binary" and schema.positive_label is None and pa.types.is_integer(column.type)
                and not column.null_count):
            values = column.to_numpy()
            if ((values == 0) | (values == 1)).all():
                return values.astype(np.int64)  # a copy: Arrow buffers are read-only
        return self.pre._encode_target(column)

    def _codes(self, name: str, column: pa.ChunkedArray, levels: pa.Array) -> np.ndarray:
        """``preprocessing._codes``: through each chunk's dictionary when the column has one (or is text)."""
        if not (pa.types.is_dictionary(column.type) or pa.types.is_string(column.type)
                or pa.types.is_large_string(column.type)):
            return _codes(column, levels)
        parts = []
        for chunk in column.chunks:
            if not pa.types.is_dictionary(chunk.type):
                chunk = pc.dictionary_encode(chunk)  # nulls stay null indices
            # The codes of the dictionary's entries (the same function of each value as _codes), then a
            # gather; a null index points one past them, at MISSING. A Parquet column chunk's batches
            # share its dictionary, and the files' chunks often hold equal ones: looked up once.
            last = self._luts.get(name)
            if last is not None and last[0].equals(chunk.dictionary):
                lut = last[1]
            else:
                lut = np.append(_codes(pa.chunked_array([chunk.dictionary]), levels), MISSING)
                self._luts[name] = (chunk.dictionary, lut)
            index = chunk.indices
            if index.null_count:
                index = pc.fill_null(index, len(chunk.dictionary))
            parts.append(lut[index.to_numpy()])
        if len(parts) == 1:
            return parts[0]
        return np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)


def _exact_integers(column: pa.ChunkedArray) -> np.ndarray | None:
    """An integer column without nulls as its int64 values, when float64 holds each exactly; else None.

    numpy's int64 -> float64 conversion rounds as Arrow's cast does, and within 2**53 (where Arrow's
    safe cast succeeds) both are exact; beyond it, or with nulls, ``_numeric_column`` decides.
    """
    if column.null_count or not pa.types.is_integer(column.type) or pa.types.is_uint64(column.type):
        return None
    values = column.to_numpy()
    if values.size and (values.max() > 2**53 or values.min() < -(2**53)):
        return None
    return values
