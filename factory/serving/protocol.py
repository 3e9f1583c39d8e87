"""Request bodies in, response bodies out: ``/predict`` rows and Open Inference Protocol v2 tensors.

Bodies are parsed from bytes with orjson (``json`` where it differs: ``parse_body``) and checked
by hand, value by value: a pydantic model per row costs more than the model call at batch 1.
Every problem is a ``RequestError`` whose one-line message names the field, column and row,
and whose status is the HTTP answer (400, or 413 over ``limits.max_rows``).

Decoded rows are *columns*: ``{feature: numpy array}``, float64 with NaN for a missing
numeric value, object (``str`` or ``None``) for a categorical one; an empty string is
missing too, as the ONNX graph reads it. Scored rows come back as the model's output
array ``out``: ``(N,)`` P(class 1) for binary, ``(N, C)`` probabilities for multiclass,
``(N,)`` values for regression (what ``OnnxPredictor.predict_columns`` returns).

The v2 format (https://github.com/kserve/open-inference-protocol, REST):
``{"id"?, "parameters"?, "inputs": [{"name", "shape", "datatype", "data"}], "outputs"?}``
with one input per feature column, shape ``[N]`` (or ``[N, 1]``), data row-major (flat
or nested); numeric columns ``FP64`` (any numeric datatype is read), categoricals ``BYTES``.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import numpy as np
import orjson

#: Numeric v2 datatypes a numeric feature accepts (read as float64).
NUMERIC_DATATYPES = frozenset({"FP64", "FP32", "FP16", "INT64", "INT32", "INT16", "INT8",
                               "UINT64", "UINT32", "UINT16", "UINT8"})
#: The v2 output tensors, in order: name -> datatype (regression has no probabilities).
OUTPUTS = {"prediction": "INT64", "score": "FP64", "probabilities": "FP64"}


class RequestError(Exception):
    """A bad request: ``status`` (400, 404, 413) and a one-line message naming what is wrong."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Signature:
    """What a request must hold: the model's feature columns and their kinds."""

    features: tuple[str, ...]
    kinds: dict[str, str]  # name -> "numeric" | "categorical"
    max_rows: int


@dataclass(frozen=True)
class InferRequest:
    """A decoded v2 inference request."""

    columns: dict[str, np.ndarray]
    rows: int
    id: str | None
    outputs: tuple[str, ...] | None  # requested outputs; None: all


def parse_body(body: bytes) -> Any:
    """The JSON of a request body. Raises RequestError for an empty or malformed one.

    orjson reads it (a 256-row ``/predict`` body: 0.12 ms, ``json.loads`` 0.35 ms); ``json`` then reads
    what orjson refuses or would read otherwise, so the result and every message stay ``json``'s:
    NaN and Infinity, a byte-order mark, a lone surrogate escape, integers past 64 bits (orjson
    makes floats of them; a body with 19 digits in a row goes to ``json``).
    """
    if not body or body.isspace():
        raise RequestError("empty request body: send a JSON object")
    if _LONG_DIGITS not in body.translate(_DIGITS):  # (a regular expression took 1.7 ms on 56 kB, this 0.03)
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            pass  # json's own answer below: what it accepts beyond orjson, or its message
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise RequestError(f"malformed JSON: {e}") from None
    except RecursionError:
        raise RequestError("malformed JSON: nested too deeply") from None


def decode_rows(body: bytes, sig: Signature) -> tuple[dict[str, np.ndarray], int]:
    """``{"rows": [{feature: value, ...}, ...]}`` -> ``(columns, n)``.

    Raises:
        RequestError: empty or malformed JSON, ``rows`` absent or not a non-empty list, a
            row that is not an object, a missing or unknown column, a value of the wrong
            type (``rows[3].amount: expected a number or null, got 'abc'``); 413 over max_rows.
    """
    doc = parse_body(body)
    if not isinstance(doc, dict) or "rows" not in doc:
        raise RequestError('expected a JSON object {"rows": [{column: value, ...}, ...]}')
    unknown = [k for k in doc if k != "rows"]
    if unknown:
        raise RequestError(f"unknown field {unknown[0]!r}: the body holds only \"rows\"")
    rows = doc["rows"]
    if not isinstance(rows, list):
        raise RequestError(f"rows: expected a list of objects, got {_kind(rows)}")
    if not rows:
        raise RequestError("rows: empty list; send at least one row")
    if len(rows) > sig.max_rows:
        raise RequestError(f"rows: {len(rows)} rows, over the limit of {sig.max_rows} per request "
                           "(limits.max_rows)", 413)
    # The usual case in C: every row an object of exactly the model's columns (as many keys, none missing),
    # read into one tuple per row; a per-row loop in Python was most of the decoding. Else the loop names the row.
    features = sig.features
    get = itemgetter(*features) if len(features) > 1 else lambda row, name=features[0]: (row[name],)
    try:
        table = list(map(get, rows)) if set(map(type, rows)) == _DICT and set(map(len, rows)) == {len(features)} \
            else None
    except KeyError:
        table = None
    if table is None:
        _check_rows(rows, features)  # raises: the checks above failed for some row
        table = list(map(get, rows))
    columns = {}
    by_feature = zip(*table)  # one tuple of values per feature
    for name, values in zip(sig.features, by_feature):
        if sig.kinds[name] == "categorical":
            columns[name] = _categorical(values, lambda i, n=name: f"rows[{i}].{n}")
        else:
            columns[name] = _numeric(values, lambda i, n=name: f"rows[{i}].{n}")
    return columns, len(rows)


def _check_rows(rows: list, features: tuple[str, ...]) -> None:
    """The RequestError naming the first row that is not an object of exactly ``features``, if any."""
    wanted = set(features)
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise RequestError(f"rows[{i}]: expected an object of column: value, got {_kind(row)}")
        if len(row) != len(wanted) or row.keys() != wanted:
            missing = [f for f in features if f not in row]
            if missing:
                raise RequestError(f"rows[{i}]: missing column {missing[0]!r}"
                                   + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
            extra = next(k for k in row if k not in wanted)
            raise RequestError(f"rows[{i}]: unknown column {extra!r} (the model's columns: "
                               f"{', '.join(features)})")


def decode_infer(body: bytes, sig: Signature) -> InferRequest:
    """A v2 ``$inference_request`` -> columns, rows, the request's ``id`` and requested outputs.

    Raises:
        RequestError: as ``decode_rows``, and for a missing, unknown or repeated input, a
            datatype that does not fit the column's kind, a shape other than ``[N]``/``[N, 1]``
            or that does not match the data, inputs of different lengths.
    """
    doc = parse_body(body)
    if not isinstance(doc, dict):
        raise RequestError(f"expected a JSON object with \"inputs\", got {_kind(doc)}")
    inputs = doc.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise RequestError("inputs: expected a non-empty list of tensors {name, shape, datatype, data}")
    request_id = doc.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise RequestError(f"id: expected a string, got {_kind(request_id)}")
    columns: dict[str, np.ndarray] = {}
    rows = None
    for i, tensor in enumerate(inputs):
        if not isinstance(tensor, dict):
            raise RequestError(f"inputs[{i}]: expected an object {{name, shape, datatype, data}}, got {_kind(tensor)}")
        name = tensor.get("name")
        where = f"inputs[{i}] ({name!r})" if isinstance(name, str) else f"inputs[{i}]"
        for key in ("name", "shape", "datatype", "data"):
            if key not in tensor:
                raise RequestError(f"{where}: missing {key!r}")
        for key in ("name", "datatype"):  # checked before any set or dict lookup: a list is unhashable
            if not isinstance(tensor[key], str):
                raise RequestError(f"{where}: {key}: expected a string, got {_kind(tensor[key])}")
        if name not in sig.kinds:
            raise RequestError(f"{where}: unknown input (the model's inputs: {', '.join(sig.features)})")
        if name in columns:
            raise RequestError(f"{where}: input {name!r} given twice")
        n = _check_shape(tensor["shape"], where)
        if rows is None:
            rows = n
            if n > sig.max_rows:
                raise RequestError(f"{where}: {n} rows, over the limit of {sig.max_rows} per request "
                                   "(limits.max_rows)", 413)
        elif n != rows:
            raise RequestError(f"{where}: {n} rows, but inputs before it have {rows}; every input "
                               "holds one value per row")
        data = _flat(tensor["data"], where)
        if len(data) != n:
            raise RequestError(f"{where}: shape {tensor['shape']} holds {n} values, data has {len(data)}")
        columns[name] = _column(name, tensor["datatype"], data, sig, where)
    missing = [f for f in sig.features if f not in columns]
    if missing:
        raise RequestError(f"inputs: missing input {missing[0]!r}"
                           + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    if rows == 0:
        raise RequestError("inputs: zero rows; send at least one")
    return InferRequest(columns, rows, request_id, _requested(doc.get("outputs")))


def encode_predictions(out: np.ndarray, task: str, labels: list) -> list[dict]:
    """``out`` -> one ``{"prediction", "score", "probabilities"}`` per row (``probabilities``:
    label -> p, classification only; ``prediction`` is the predicted class's label)."""
    if task == "regression":
        return [{"prediction": v, "score": v} for v in _floats(out)]
    keys = [str(label) for label in labels]
    if task == "binary":
        return [{"prediction": labels[p >= 0.5], "score": p, "probabilities": {keys[0]: 1.0 - p, keys[1]: p}}
                for p in _floats(out)]
    best = out.argmax(axis=1).tolist()
    return [{"prediction": labels[b], "score": probs[b], "probabilities": dict(zip(keys, probs))}
            for b, probs in zip(best, _floats(out))]


def encode_outputs(out: np.ndarray, task: str, wanted: tuple[str, ...] | None) -> list[dict]:
    """``out`` -> v2 ``$response_output`` tensors: ``prediction`` (class index, INT64; FP64 for
    regression), ``score`` (FP64) and ``probabilities`` (FP64, ``[N, C]``, classification)."""
    n = len(out)
    if task == "regression":
        values = _floats(out)
        tensors = {"prediction": ("FP64", [n], values), "score": ("FP64", [n], values)}
    elif task == "binary":
        p = out.astype(np.float64)
        tensors = {"prediction": ("INT64", [n], (p >= 0.5).astype(np.int64).tolist()),
                   "score": ("FP64", [n], p.tolist()),
                   "probabilities": ("FP64", [n, 2], np.stack([1.0 - p, p], axis=1).ravel().tolist())}
    else:
        p = out.astype(np.float64)
        best = p.argmax(axis=1)
        tensors = {"prediction": ("INT64", [n], best.tolist()),
                   "score": ("FP64", [n], p[np.arange(n), best].tolist()),
                   "probabilities": ("FP64", list(p.shape), p.ravel().tolist())}
    names = [name for name in tensors if wanted is None or name in wanted]
    return [{"name": name, "datatype": tensors[name][0], "shape": tensors[name][1], "data": tensors[name][2]}
            for name in names]


def output_names(task: str) -> list[str]:
    """The v2 outputs a model of ``task`` produces."""
    return ["prediction", "score"] if task == "regression" else list(OUTPUTS)


def check_outputs(wanted: tuple[str, ...] | None, task: str) -> None:
    """Refuse a requested output the model does not produce (400)."""
    known = output_names(task)
    for name in wanted or ():
        if name not in known:
            raise RequestError(f"outputs: unknown output {name!r} (the model's outputs: {', '.join(known)})")


def dumps(doc: Any) -> bytes:
    """Compact, strict JSON: a value that is not finite becomes null.

    orjson, not ``json``: encoding a 256-row ``/predict`` answer took 0.58 ms with ``json``, more
    than scoring the rows, and orjson writes NaN and infinities as null by itself.
    """
    return orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)


# Internals

_PLAIN_NUMBERS = {float, int, type(None)}  # bool is its own type: never plain
_STR = {str}
_DICT = {dict}
# 19 digits in a row may be an integer past 64 bits: for json.loads, not orjson (found in ``body.translate(_DIGITS)``)
_DIGITS = bytes(0x30 if 0x30 <= c <= 0x39 else 0x20 for c in range(256))  # a digit -> "0", anything else -> " "
_LONG_DIGITS = b"0" * 19

def _numeric(values: list, where) -> np.ndarray:
    """float64 with NaN for null/NaN; a string, bool, list, object or infinity is an error."""
    if set(map(type, values)) <= _PLAIN_NUMBERS:  # the usual case, checked as a whole (10x faster)
        try:
            column = np.array(values, dtype=np.float64)
        except OverflowError:  # an int beyond float64: the loop below names it
            column = None
        if column is not None and not np.isinf(column).any():
            return column
    for i, v in enumerate(values):
        t = type(v)
        if t is float:
            if math.isinf(v):
                raise RequestError(f"{where(i)}: expected a finite number or null, got {v}")
        elif t is int:
            if not -1e308 < v < 1e308:  # float64 holds no more
                raise RequestError(f"{where(i)}: {_value(v)} is out of range for a float64")
        elif v is not None:
            raise RequestError(f"{where(i)}: expected a number or null, got {_value(v)}")
    return np.array(values, dtype=np.float64)


def _categorical(values: list, where) -> np.ndarray:
    """object array of str, None for missing (null or ""); an integer is read as its digits."""
    if set(map(type, values)) == _STR and all(map(str.isascii, values)):  # the usual case, checked as a whole
        out = np.empty(len(values), dtype=object)
        out[:] = values if "" not in values else [v or None for v in values]
        return out
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        t = type(v)
        if t is str:
            if not v.isascii():  # JSON's "\ud800" decodes to a lone surrogate, which UTF-8 cannot hold
                try:
                    v.encode()
                except UnicodeEncodeError:
                    raise RequestError(f"{where(i)}: not valid Unicode text (a lone surrogate escape such "
                                       f"as \\ud800)") from None
            out[i] = v or None
        elif v is None:
            out[i] = None
        elif t is int:
            out[i] = str(v)
        else:
            raise RequestError(f"{where(i)}: expected a string or null (a categorical column), got {_value(v)}")
    return out


def _column(name: str, datatype: Any, data: list, sig: Signature, where: str) -> np.ndarray:
    if sig.kinds[name] == "categorical":
        if datatype != "BYTES":
            raise RequestError(f"{where}: datatype {datatype!r}, expected 'BYTES' (a categorical column)")
        return _categorical(data, lambda i: f"{where}.data[{i}]")
    if datatype not in NUMERIC_DATATYPES:
        raise RequestError(f"{where}: datatype {datatype!r}, expected 'FP64' (a numeric column; "
                           "FP32 and INT types are read too)")
    return _numeric(data, lambda i: f"{where}.data[{i}]")


def _check_shape(shape: Any, where: str) -> int:
    """Rows in a ``[N]`` or ``[N, 1]`` shape."""
    ok = (isinstance(shape, list) and 1 <= len(shape) <= 2
          and all(type(d) is int and d >= 0 for d in shape) and (len(shape) == 1 or shape[1] == 1))
    if not ok:
        raise RequestError(f"{where}: shape {shape!r}, expected [N] or [N, 1] (one value per row)")
    return shape[0]


def _flat(data: Any, where: str) -> list:
    if not isinstance(data, list):
        raise RequestError(f"{where}: data: expected a list, got {_kind(data)}")
    if data and isinstance(data[0], list):  # nested row-major: [[v], [v], ...]
        if not all(isinstance(d, list) and len(d) == 1 for d in data):
            raise RequestError(f"{where}: data: nested lists must each hold one value")
        return [d[0] for d in data]
    return data


def _requested(outputs: Any) -> tuple[str, ...] | None:
    if outputs is None:
        return None
    if not isinstance(outputs, list) or not all(isinstance(o, dict) and isinstance(o.get("name"), str)
                                                for o in outputs):
        raise RequestError('outputs: expected a list of {"name": ...} objects')
    return tuple(o["name"] for o in outputs)


def _floats(out: np.ndarray) -> list:
    return out.astype(np.float64).tolist()



def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
            type(None): "null"}.get(type(value), "a number")


def _value(v: Any) -> str:
    """A short rendering of a bad value for the message (never the whole of a long one)."""
    text = json.dumps(v) if not isinstance(v, float) else repr(v)
    return text if len(text) <= 40 else text[:37] + "..."
