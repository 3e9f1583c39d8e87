"""Request decoding and response encoding of the server (``factory.serving.protocol``), on tiny bodies."""
from __future__ import annotations

import json

import numpy as np
import pytest

from factory.serving.protocol import (RequestError, Signature, check_outputs, decode_infer, decode_rows, dumps,
                                      encode_outputs, encode_predictions)

SIG = Signature(("amount", "channel"), {"amount": "numeric", "channel": "categorical"}, max_rows=3)


def rows(*items) -> bytes:
    return json.dumps({"rows": list(items)}).encode()


def infer(*inputs, **extra) -> bytes:
    return json.dumps({"inputs": list(inputs), **extra}).encode()


def tensor(name, data, datatype=None, shape=None) -> dict:
    return {"name": name, "datatype": datatype or ("FP64" if name == "amount" else "BYTES"),
            "shape": shape if shape is not None else [len(data)], "data": data}


def test_rows_decode_to_columns_with_missing_values():
    columns, n = decode_rows(rows({"amount": 1.5, "channel": "web"}, {"amount": None, "channel": None},
                                  {"amount": 3, "channel": ""}), SIG)
    assert n == 3
    assert columns["amount"].dtype == np.float64 and np.isnan(columns["amount"][1])
    assert columns["amount"][[0, 2]].tolist() == [1.5, 3.0]
    assert columns["channel"].dtype == object and columns["channel"].tolist() == ["web", None, None]
    nan = decode_rows(b'{"rows": [{"amount": NaN, "channel": 7}]}', SIG)[0]  # NaN is missing; an int category is text
    assert np.isnan(nan["amount"][0]) and nan["channel"].tolist() == ["7"]


@pytest.mark.parametrize("body, status, message", [
    (b"", 400, "empty request body"),
    (b"  \n", 400, "empty request body"),
    (b'{"rows": [', 400, "malformed JSON"),
    (b"[1, 2]", 400, 'expected a JSON object {"rows"'),
    (b'{"rows": {"amount": 1}}', 400, "rows: expected a list of objects, got an object"),
    (b'{"rows": []}', 400, "rows: empty list"),
    (b'{"rows": [], "extra": 1}', 400, "unknown field 'extra'"),
    (rows({"amount": 1, "channel": "a"}, 5), 400, r"rows\[1\]: expected an object"),
    (rows({"amount": 1}), 400, r"rows\[0\]: missing column 'channel'"),
    (rows({"amount": 1, "channel": "a"}, {"amount": 1, "channel": "a", "zip": 1}), 400,
     r"rows\[1\]: unknown column 'zip' \(the model's columns: amount, channel\)"),
    (rows({"amount": "abc", "channel": "a"}), 400, r"rows\[0\]\.amount: expected a number or null, got \"abc\""),
    (rows({"amount": 1, "channel": "a"}, {"amount": True, "channel": "a"}), 400, r"rows\[1\]\.amount: .* got true"),
    (b'{"rows": [{"amount": Infinity, "channel": "a"}]}', 400, r"rows\[0\]\.amount: expected a finite number"),
    (rows({"amount": 1, "channel": 2.5}), 400, r"rows\[0\]\.channel: expected a string or null .* got 2.5"),
    (rows({"amount": 1, "channel": ["a"]}), 400, r"rows\[0\]\.channel: .* got \[\"a\"\]"),
    (rows(*[{"amount": 1, "channel": "a"}] * 4), 413, "4 rows, over the limit of 3"),
    (rows({"amount": 10 ** 400, "channel": "a"}), 400, r"rows\[0\]\.amount: 1000.* is out of range for a float64"),
    (b'{"rows": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", 400, "malformed JSON"),
])
def test_bad_rows_name_the_field_and_row(body, status, message):
    with pytest.raises(RequestError, match=message) as info:
        decode_rows(body, SIG)
    assert info.value.status == status and "\n" not in str(info.value)


def test_a_long_bad_value_is_cut_in_the_message():
    with pytest.raises(RequestError) as info:
        decode_rows(rows({"amount": "x" * 10_000, "channel": "a"}), SIG)
    assert len(str(info.value)) < 120


def test_infer_decodes_flat_and_nested_tensors():
    req = decode_infer(infer(tensor("amount", [1, None], "FP32"), tensor("channel", [["web"], [None]], shape=[2, 1]),
                             id="r-1", outputs=[{"name": "score"}]), SIG)
    assert req.rows == 2 and req.id == "r-1" and req.outputs == ("score",)
    assert req.columns["amount"][0] == 1.0 and np.isnan(req.columns["amount"][1])
    assert req.columns["channel"].tolist() == ["web", None]


@pytest.mark.parametrize("body, status, message", [
    (b'{"id": "x"}', 400, "inputs: expected a non-empty list"),
    (infer(tensor("amount", [1])), 400, "missing input 'channel'"),
    (infer(tensor("amount", [1]), tensor("channel", ["a"]), tensor("zip", [1], "FP64")), 400,
     r"inputs\[2\] \('zip'\): unknown input"),
    (infer(tensor("amount", [1]), tensor("amount", [1])), 400, "given twice"),
    (infer(tensor("amount", ["a"], "BYTES"), tensor("channel", ["a"])), 400,
     r"inputs\[0\] \('amount'\): datatype 'BYTES', expected 'FP64'"),
    (infer(tensor("amount", [1]), tensor("channel", [1], "INT64")), 400, "datatype 'INT64', expected 'BYTES'"),
    (infer(tensor("amount", [1, 2], shape=[3]), tensor("channel", ["a"])), 400, r"shape \[3\] holds 3 values, data has 2"),
    (infer(tensor("amount", [1, 2], shape=[1, 2]), tensor("channel", ["a"])), 400, r"expected \[N\] or \[N, 1\]"),
    (infer(tensor("amount", [1, 2]), tensor("channel", ["a"])), 400, r"inputs\[1\] \('channel'\): 1 rows, but inputs before it have 2"),
    (infer(tensor("amount", ["x"], "FP64"), tensor("channel", ["a"])), 400, r"inputs\[0\] \('amount'\)\.data\[0\]: expected a number"),
    (infer({"name": "amount", "data": [1]}), 400, r"inputs\[0\] \('amount'\): missing 'shape'"),
    (infer(tensor("amount", [1] * 4), tensor("channel", ["a"] * 4)), 413, "over the limit of 3"),
    (infer(tensor("amount", [1]), tensor("channel", ["a"]), id=5), 400, "id: expected a string"),
])
def test_bad_infer_requests_name_the_input(body, status, message):
    with pytest.raises(RequestError, match=message) as info:
        decode_infer(body, SIG)
    assert info.value.status == status and "\n" not in str(info.value)


def test_binary_predictions_and_outputs():
    out = np.array([0.2, 0.9], dtype=np.float32)
    preds = encode_predictions(out, "binary", ["legit", "fraud"])
    assert [p["prediction"] for p in preds] == ["legit", "fraud"]
    assert preds[1]["score"] == pytest.approx(0.9) and preds[1]["probabilities"]["legit"] == pytest.approx(0.1)
    tensors = {t["name"]: t for t in encode_outputs(out, "binary", None)}
    assert tensors["prediction"] == {"name": "prediction", "datatype": "INT64", "shape": [2], "data": [0, 1]}
    assert tensors["probabilities"]["shape"] == [2, 2] and len(tensors["probabilities"]["data"]) == 4
    assert [t["name"] for t in encode_outputs(out, "binary", ("score",))] == ["score"]


def test_multiclass_and_regression_outputs():
    out = np.array([[0.1, 0.7, 0.2]])
    (pred,) = encode_predictions(out, "multiclass", [3, 5, 8])
    assert pred["prediction"] == 5 and pred["score"] == pytest.approx(0.7)
    assert list(pred["probabilities"]) == ["3", "5", "8"]
    tensors = {t["name"]: t for t in encode_outputs(out, "multiclass", None)}
    assert tensors["prediction"]["data"] == [1] and tensors["probabilities"]["shape"] == [1, 3]
    (reg,) = encode_predictions(np.array([2.5]), "regression", [])
    assert reg == {"prediction": 2.5, "score": 2.5}
    with pytest.raises(RequestError, match="unknown output 'probabilities'"):
        check_outputs(("probabilities",), "regression")


def test_responses_are_strict_json():
    assert dumps({"score": float("nan"), "x": [1.0, float("inf")]}) == b'{"score":null,"x":[1.0,null]}'
