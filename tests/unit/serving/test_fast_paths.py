"""The server's fast paths give what the plain ones gave: orjson against ``json.loads``, the
in-C row check against the per-row loop, bulk histogram observations against one at a time."""
from __future__ import annotations

import json

import numpy as np
import pytest

from factory.serving.metrics import Metrics, observe_many
from factory.serving.protocol import RequestError, Signature, decode_rows, parse_body

SIG = Signature(("amount", "channel", "hour"), {"amount": "numeric", "channel": "categorical", "hour": "numeric"},
                max_rows=100)

BODIES = [
    b'{"rows": [{"amount": 1.5, "channel": "web", "hour": 3}]}',
    b'{"a": NaN, "b": Infinity, "c": -Infinity}',  # json reads these; orjson refuses them
    b'\xef\xbb\xbf{"rows": []}',                    # a UTF-8 byte-order mark
    b'{"s": "\\ud800"}',                             # a lone surrogate escape
    b'[123456789012345678901234567890, -9223372036854775809, 18446744073709551616]',  # past 64 bits: ints
    b'[9223372036854775807, -9223372036854775808, 1e308, 1.5e-400, 0.1, -0]',
    b'{"k": 1, "k": 2}',
    b'  {"rows": [{"amount": null}]}  \n',
    b'"caf\xc3\xa9 \\u00e9"',
    b'[' * 5000 + b']' * 5000,                       # too deep for both
    b'{"rows": [}', b'{"a": 1} x', b'\xff\xfe', b'{"a": "\x01"}', b'1e400', b'[1,]',
]


@pytest.mark.parametrize("body", BODIES, ids=range(len(BODIES)))
def test_parse_body_answers_as_json_loads(body):
    try:
        expected = json.loads(body)
    except RecursionError:
        with pytest.raises(RequestError, match="^malformed JSON: nested too deeply$"):
            parse_body(body)
        return
    except (ValueError, UnicodeDecodeError) as e:
        with pytest.raises(RequestError) as raised:
            parse_body(body)
        assert str(raised.value) == f"malformed JSON: {e}"  # json's message, not orjson's
        return
    got = parse_body(body)
    assert repr(got) == repr(expected)  # the same values and types (an int stays an int, NaN stays NaN)


def test_empty_bodies_are_refused():
    for body in (b"", b"  \n\t"):
        with pytest.raises(RequestError, match="empty request body"):
            parse_body(body)


def _plain_columns(rows: list[dict]) -> dict:
    """What the per-feature, per-row decoding built."""
    return {"amount": np.array([r["amount"] for r in rows], dtype=np.float64),
            "channel": np.array([r["channel"] or None for r in rows], dtype=object),
            "hour": np.array([r["hour"] for r in rows], dtype=np.float64)}


def test_decoded_columns_match_the_row_by_row_result():
    rows = [{"amount": 1.5, "channel": "web", "hour": 3}, {"hour": None, "channel": "", "amount": None},
            {"amount": 7, "channel": "café", "hour": 23.5}, {"amount": -2.0, "channel": None, "hour": 0}]
    columns, n = decode_rows(json.dumps({"rows": rows}).encode(), SIG)
    assert n == 4 and list(columns) == list(SIG.features)
    for name, expected in _plain_columns(rows).items():
        assert columns[name].dtype == expected.dtype and columns[name].shape == (4,)
        assert columns[name].tolist() == expected.tolist() or np.array_equal(columns[name], expected, equal_nan=True)
    assert columns["channel"].tolist() == ["web", None, "café", None]
    ascii_only, _ = decode_rows(json.dumps({"rows": [{"amount": 1, "channel": c, "hour": 1} for c in
                                                     ("a", "", "b")]}).encode(), SIG)
    assert ascii_only["channel"].tolist() == ["a", None, "b"]  # "" is missing on the fast path too


@pytest.mark.parametrize("row, message", [
    ([1, 2, 3], "rows[1]: expected an object of column: value, got a list"),
    ({"amount": 1, "channel": "x"}, "rows[1]: missing column 'hour'"),
    ({"amount": 1, "channel": "x", "hour": 1, "extra": 2}, "rows[1]: unknown column 'extra'"),
    ({"amount": 1, "channel": "x", "minute": 1}, "rows[1]: missing column 'hour'"),  # as many keys, one wrong
    ({"amount": 1, "channel": 5.5, "hour": 1}, "rows[1].channel: expected a string or null"),
    ({"amount": "abc", "channel": "x", "hour": 1}, "rows[1].amount: expected a number or null, got \"abc\""),
])
def test_a_bad_row_is_still_named(row, message):
    good = {"amount": 1, "channel": "x", "hour": 1}
    with pytest.raises(RequestError) as raised:
        decode_rows(json.dumps({"rows": [good, row, good]}).encode(), SIG)
    assert str(raised.value).startswith(message), str(raised.value)


def _exposition(metrics: Metrics) -> dict[str, float]:
    body, _ = metrics.exposition()
    return {line.rpartition(" ")[0]: float(line.rpartition(" ")[2]) for line in body.decode().splitlines()
            if line.startswith(("factory_score", "factory_rows_scored"))}


@pytest.mark.parametrize("task", ["binary", "regression"])
def test_bulk_scores_give_the_exposition_of_one_observe_each(task):
    rng = np.random.default_rng(0)
    if task == "binary":  # bucket bounds exactly, both ends, and NaN (counted as scored, in no bucket)
        scores = np.concatenate([rng.random(300), [0.0, 0.05, 0.1, 0.95, 1.0, np.nan]]).astype(np.float32)
    else:
        scores = np.concatenate([rng.normal(0, 20, 300), [-np.inf, np.inf, 10.0, 0.005, np.nan]])
    bulk, single = Metrics(task), Metrics(task)
    bulk.observe_scores(scores[:3])  # one observe each
    bulk.observe_scores(scores[3:100])  # in bulk
    bulk.observe_scores(scores[100:])
    single.rows.inc(len(scores))
    for value in scores.tolist():
        if value == value:
            single.scores.observe(value)
    got, expected = _exposition(bulk), _exposition(single)
    assert got.keys() == expected.keys() and len(got) > 5
    for name, value in expected.items():
        if name == "factory_score_sum":  # added per request, not per value: equal to rounding
            assert got[name] == pytest.approx(value, rel=1e-12, abs=1e-12) or (np.isnan(value) and np.isnan(got[name]))
        else:
            assert got[name] == value, name


def test_observe_many_falls_back_to_observe():
    class Plain:  # a histogram without prometheus_client's internals
        def __init__(self):
            self.seen = []

        def observe(self, value):
            self.seen.append(value)

    plain = Plain()
    observe_many(plain, np.array([0.5, 2.0]))
    observe_many(plain, np.array([]))
    assert plain.seen == [0.5, 2.0]
