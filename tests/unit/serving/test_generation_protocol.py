"""Generate requests decoded (factory.serving.generation): every bad value a 4xx naming its field."""
from __future__ import annotations

import json

import pytest

from factory.serving.generation import DEFAULT_MAX_TOKENS, GenerateRequest, decode_generate, sse
from factory.serving.protocol import RequestError

LIMIT = 100


def decode(doc) -> GenerateRequest:
    return decode_generate(json.dumps(doc).encode(), LIMIT)


def test_a_full_request_and_the_defaults():
    assert decode({"text_input": "def f(", "parameters": {"max_tokens": 32, "temperature": 0.8, "top_k": 40,
                                                          "seed": 1}}) == GenerateRequest("def f(", 32, 0.8, 40, 1)
    assert decode({"text_input": ""}) == GenerateRequest("", DEFAULT_MAX_TOKENS, 1.0, None, None)
    assert decode_generate(b'{"text_input": "x"}', 10).max_tokens == 10  # the default lowered to the limit
    # Triton's TensorRT-LLM clients put parameters at the top level; nulls are the defaults; 32.0 is 32
    assert decode({"text_input": "x", "max_tokens": 32.0, "top_k": None, "parameters": {"seed": 0}}) == \
        GenerateRequest("x", 32, 1.0, None, 0)
    assert decode({"text_input": "x", "parameters": {"temperature": 0}}).temperature == 0.0  # greedy


@pytest.mark.parametrize("body, status, message", [
    (b"", 400, "empty request body"),
    (b"{", 400, "malformed JSON"),
    (b"[1]", 400, "request body: expected a JSON object"),
    (b"{}", 400, "text_input: missing"),
    (b'{"text_input": 3}', 400, "text_input: expected a string, got a number (3)"),
    (b'{"text_input": ["a"]}', 400, "text_input: expected a string, got an array"),
    (b'{"text_input": "a", "prompt": "b"}', 400, "prompt: unknown field"),
    (b'{"text_input": "a", "parameters": []}', 400, "parameters: expected an object"),
    (b'{"text_input": "a", "parameters": {"max_token": 3}}', 400, "parameters.max_token: unknown parameter"),
    (b'{"text_input": "a", "parameters": {"max_tokens": 101}}', 422,
     "parameters.max_tokens: 101 is over this server's limit of 100 tokens (limits.max_new_tokens)"),
    (b'{"text_input": "a", "max_tokens": 1000}', 422, "max_tokens: 1000 is over"),
    (b'{"text_input": "a", "parameters": {"max_tokens": 0}}', 400, "parameters.max_tokens: 0 is out of range"),
    (b'{"text_input": "a", "parameters": {"max_tokens": "5"}}', 400,
     "parameters.max_tokens: expected an integer, got a string"),
    (b'{"text_input": "a", "parameters": {"max_tokens": true}}', 400,
     "parameters.max_tokens: expected an integer, got a boolean"),
    (b'{"text_input": "a", "parameters": {"max_tokens": 2.5}}', 400, "parameters.max_tokens: expected an integer"),
    (b'{"text_input": "a", "parameters": {"temperature": -0.1}}', 400, "parameters.temperature: -0.1 is out of range"),
    (b'{"text_input": "a", "parameters": {"temperature": "hot"}}', 400, "parameters.temperature: expected a number"),
    (b'{"text_input": "a", "parameters": {"temperature": NaN}}', 400, "parameters.temperature: nan is out of range"),
    (b'{"text_input": "a", "parameters": {"top_k": 0}}', 400, "parameters.top_k: 0 is out of range"),
    (b'{"text_input": "a", "top_k": 1.5}', 400, "top_k: expected an integer"),
    (b'{"text_input": "a", "parameters": {"seed": -1}}', 400, "parameters.seed: -1 is out of range"),
    (b'{"text_input": "a", "parameters": {"seed": 9223372036854775808}}', 400,
     "parameters.seed: 9223372036854775808 is out of range (an integer from 0 to 9223372036854775807)"),
])
def test_bad_input_names_the_field(body, status, message):
    with pytest.raises(RequestError) as caught:
        decode_generate(body, LIMIT)
    assert caught.value.status == status
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_an_event_is_one_json_data_line():
    event = sse({"model_name": "lm", "model_version": "1", "text_output": "a\nb"})
    assert event.endswith(b"\n\n") and event.count(b"\n") == 2  # a newline in the text stays escaped
    assert json.loads(event.removeprefix(b"data: ")) == {"model_name": "lm", "model_version": "1",
                                                         "text_output": "a\nb"}
