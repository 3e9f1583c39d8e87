"""Fixes from the server's review: bodies that crashed the decoder, and batches that mixed models."""
from __future__ import annotations

import json
import threading

import numpy as np
import pytest

from factory.serving.batching import Batcher
from factory.serving.protocol import RequestError, Signature, decode_infer, decode_rows

SIG = Signature(("amount", "channel"), {"amount": "numeric", "channel": "categorical"}, 100)


def _rows(*channels) -> bytes:
    # json.dumps writes a lone surrogate as the escape "\ud800", which json.loads reads back as one
    return json.dumps({"rows": [{"amount": 1.0, "channel": c} for c in channels]}).encode()


def _infer(**changes) -> bytes:
    inputs = [{"name": "amount", "shape": [1], "datatype": "FP64", "data": [1.0]},
              {"name": "channel", "shape": [1], "datatype": "BYTES", "data": ["web"]}]
    for key, value in changes.items():
        index, field = key.split("_", 1)
        inputs[int(index[1:])][field] = value
    return json.dumps({"inputs": inputs}).encode()


def test_a_lone_surrogate_in_a_categorical_is_a_400_naming_row_and_column():
    with pytest.raises(RequestError, match=r"rows\[1\]\.channel: not valid Unicode text") as raised:
        decode_rows(_rows("web", "\ud800"), SIG)
    assert raised.value.status == 400
    with pytest.raises(RequestError, match=r"inputs\[1\] \('channel'\)\.data\[0\]: not valid Unicode"):
        decode_infer(_infer(i1_data=["\udfff"]), SIG)
    columns, _ = decode_rows(_rows("é漢", "web"), SIG)  # real non-ASCII text is fine
    assert columns["channel"].tolist() == ["é漢", "web"]


@pytest.mark.parametrize("field, value, message", [
    ("i0_name", ["amount"], "inputs[0]: name: expected a string, got a list"),
    ("i1_name", {"a": 1}, "inputs[1]: name: expected a string, got an object"),
    ("i0_datatype", ["FP64"], "inputs[0] ('amount'): datatype: expected a string, got a list"),
    ("i1_datatype", {"t": "BYTES"}, "inputs[1] ('channel'): datatype: expected a string, got an object"),
    ("i0_shape", [[1]], "inputs[0] ('amount'): shape [[1]], expected [N] or [N, 1]"),
])
def test_v2_fields_of_the_wrong_json_type_are_400s_naming_the_input(field, value, message):
    with pytest.raises(RequestError) as raised:
        decode_infer(_infer(**{field: value}), SIG)
    assert str(raised.value).startswith(message) and raised.value.status == 400


@pytest.mark.parametrize("doc, message", [
    ({"id": ["x"]}, "id: expected a string, got a list"),
    ({"outputs": [{"name": ["score"]}]}, "outputs: expected a list of"),
    ({"outputs": "score"}, "outputs: expected a list of"),
])
def test_other_v2_fields_of_the_wrong_json_type_are_400s(doc, message):
    body = json.loads(_infer())
    with pytest.raises(RequestError, match=message):
        decode_infer(json.dumps({**body, **doc}).encode(), SIG)


class Doubler:
    """A model that doubles ``x`` and names itself; it refuses NaN (a value no check before queueing sees)."""

    def __init__(self, name: str):
        self.name = name
        self.calls: list[int] = []
        self.gate = threading.Event()

    def score(self, columns, model=None):
        self.gate.wait(5)
        model = model or self
        model.calls.append(len(columns["x"]))
        if np.isnan(columns["x"]).any():
            raise ValueError("NaN in x")
        return columns["x"] * 2, model.name


def test_requests_are_batched_only_with_requests_of_the_same_model_and_scored_by_it():
    default, a, b = Doubler("default"), Doubler("a"), Doubler("b")
    batcher = Batcher(default.score, max_batch_size=64, max_latency_ms=50)
    blocker = batcher.submit_nowait({"x": np.array([0.0])})  # the worker waits on it: the rest queue up
    futures = [batcher.submit_nowait({"x": np.array([float(i)])}, model=(a, b)[i // 4]) for i in range(8)]
    default.gate.set()
    blocker.result(timeout=5)
    for i, f in enumerate(futures):
        scored = f.result(timeout=5)
        assert scored.model == ("a", "b")[i // 4] and scored.outputs.tolist() == [2.0 * i]
    assert a.calls == b.calls == [4] and default.calls == [1]  # batched by model, never across models
    batcher.close()


def test_a_request_that_fails_a_batch_fails_alone():
    model = Doubler("m")
    batcher = Batcher(model.score, max_batch_size=64, max_latency_ms=50)
    blocker = batcher.submit_nowait({"x": np.array([0.0])}, model=Doubler("other"))  # runs alone, first
    futures = [batcher.submit_nowait({"x": np.array([np.nan if i == 3 else float(i)])}) for i in range(6)]
    model.gate.set()
    blocker.result(timeout=5)
    with pytest.raises(ValueError, match="NaN in x"):
        futures[3].result(timeout=5)
    assert [futures[i].result(timeout=5).outputs.tolist() for i in (0, 1, 2, 4, 5)] == [[0.0], [2.0], [4.0],
                                                                                       [8.0], [10.0]]
    assert model.calls[0] == 6  # the whole batch was tried first
    batcher.close()
