"""A hashed pii feature holding ``""`` reaches the model the same way online and offline (missing)."""
from __future__ import annotations

import json

import pyarrow as pa

from factory.data.curation import pii
from factory.serving.model_holder import Served, _onnx_column
from factory.serving.protocol import Signature, decode_rows
from factory.serving.score_input import feature_columns

KEY = b"k" * 32
KINDS = {"email": "categorical", "amount": "numeric"}
ROWS = [{"email": "", "amount": 1.0}, {"email": "ann@example.org", "amount": 2.0}, {"email": None, "amount": 3.0}]


def test_server_and_batch_scoring_hash_an_empty_string_alike():
    served = Served(None, "m", 1, "production", "onnx", ("email", "amount"), KINDS, "binary", [0, 1],
                    hashed=("email",), pii_key=KEY)
    columns, _ = decode_rows(json.dumps({"rows": ROWS}).encode(), Signature(("email", "amount"), KINDS, 10))
    online = _onnx_column(served.protect(columns)["email"], "categorical")

    # batch scoring and RegisteredModel.predict: pii.apply on the table, then the model's columns
    batch = pii.apply(pa.RecordBatch.from_pylist(ROWS), {"email": "hash"}, KEY, strict=False)
    offline = feature_columns(batch, ["email", "amount"], KINDS, lambda i: f"row {i}")["email"]

    assert online.tolist() == offline.tolist() == ["", pii.hash_value("ann@example.org", KEY), ""]
