"""A language model over HTTP: Triton's generate extension, whole or streamed as server-sent events.

Routes (``install``), beside the Open Inference Protocol ones and behind the same auth and metrics:

- ``POST /v2/models/{name}[/versions/{v}]/generate``: ``{"text_input": "...", "parameters":
  {"max_tokens": 32, "temperature": 0.8, "top_k": 40, "seed": 1}}`` ->
  ``{"model_name", "model_version", "text_output"}`` (the continuation, without the prompt).
- ``POST /v2/models/{name}[/versions/{v}]/generate_stream``: the same request; the answer is
  ``text/event-stream``, one ``data: {"model_name", "model_version", "text_output": piece}`` event
  per piece of text as it is sampled, then a final event with ``"text_output": ""``,
  ``"final": true`` and the token counts. An error after the stream started is a last
  ``data: {"error": "..."}`` event (the status line was already sent).

Counts (the final event, the metrics, the request log): the prompt's tokens as the model reads
them; generated tokens as the pieces sampled, one per token except that a character whose UTF-8
bytes span tokens comes as one piece (``LanguageModel.stream_text`` yields text, not ids).

The parameters may also sit at the top level (``{"text_input": ..., "max_tokens": 32}``), as
Triton's TensorRT-LLM clients send them. Bad input is a 4xx naming the field, before any
sampling: ``max_tokens`` over ``limits.max_new_tokens`` is 422, the rest 400.

Sampling is CPU-bound: each generation (each step of a stream) runs in a worker thread, so the
event loop keeps answering health probes and other requests. A client that disconnects
mid-stream cancels the response (Starlette listens for the disconnect): the model stops after
the step in progress. The request log gets one row per generation with its counts, never the
prompt or the generated text (they may hold personal data).
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import Response, StreamingResponse

from factory.serving import openapi
from factory.serving.model_holder import Served
from factory.serving.protocol import RequestError, dumps, parse_body

log = logging.getLogger(__name__)

PARAMETERS = ("max_tokens", "temperature", "top_k", "seed")
DEFAULT_MAX_TOKENS = 64  # LanguageModel.generate_text's default (lowered to the server's limit)
MAX_SEED = 2**63 - 1


@dataclass(frozen=True)
class GenerateRequest:
    """A decoded generate request."""

    text: str
    max_tokens: int
    temperature: float
    top_k: int | None
    seed: int | None


def decode_generate(body: bytes, max_new_tokens: int) -> GenerateRequest:
    """A generate body -> ``GenerateRequest``, every value checked.

    Raises:
        RequestError: malformed JSON, ``text_input`` absent or not a string, an unknown field, a
            parameter of the wrong type or out of range (400); ``max_tokens`` over ``max_new_tokens`` (422).
    """
    doc = parse_body(body)
    if not isinstance(doc, dict):
        raise RequestError(f"request body: expected a JSON object with text_input, got {_kind(doc)}")
    if "text_input" not in doc:
        raise RequestError("text_input: missing; send {\"text_input\": \"<prompt>\", \"parameters\": {...}}")
    text = doc["text_input"]
    if not isinstance(text, str):
        raise RequestError(f"text_input: expected a string, got {_kind(text)}")
    given: dict[str, tuple[str, Any]] = {}  # parameter -> (where it was given, value)
    for key, value in doc.items():
        if key in PARAMETERS:
            given[key] = (key, value)
        elif key not in ("text_input", "parameters"):
            raise RequestError(f"{key}: unknown field (a generate request holds text_input and parameters: "
                               f"{', '.join(PARAMETERS)})")
    parameters = doc.get("parameters")
    if parameters is not None:
        if not isinstance(parameters, dict):
            raise RequestError(f"parameters: expected an object, got {_kind(parameters)}")
        for key, value in parameters.items():
            if key not in PARAMETERS:
                raise RequestError(f"parameters.{key}: unknown parameter (expected {', '.join(PARAMETERS)})")
            given[key] = (f"parameters.{key}", value)
    max_tokens = _integer(given.get("max_tokens"), min(DEFAULT_MAX_TOKENS, max_new_tokens), 1)
    if max_tokens > max_new_tokens:
        raise RequestError(f"{given['max_tokens'][0]}: {max_tokens} is over this server's limit of {max_new_tokens} "
                           "tokens (limits.max_new_tokens)", 422)
    temperature = _number(given.get("temperature"), 1.0)
    top_k = _integer(given.get("top_k"), None, 1)
    seed = _integer(given.get("seed"), None, 0, MAX_SEED)
    return GenerateRequest(text, max_tokens, temperature, top_k, seed)


def _integer(given: tuple[str, Any] | None, default: int | None, low: int, high: int | None = None) -> int | None:
    if given is None or given[1] is None:
        return default
    where, value = given
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # 32.0 from a client that writes every number as a float
    if isinstance(value, bool) or not isinstance(value, int):
        raise RequestError(f"{where}: expected an integer, got {_kind(value)}")
    if value < low or (high is not None and value > high):
        bound = f">= {low}" if high is None else f"from {low} to {high}"
        raise RequestError(f"{where}: {value} is out of range (an integer {bound})")
    return value


def _number(given: tuple[str, Any] | None, default: float) -> float:
    if given is None or given[1] is None:
        return default
    where, value = given
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RequestError(f"{where}: expected a number, got {_kind(value)}")
    if not math.isfinite(value) or value < 0:
        raise RequestError(f"{where}: {value} is out of range (a finite number >= 0; 0 samples greedily)")
    return float(value)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, (int, float)):
        return f"a number ({value})"
    if isinstance(value, str):
        return f"a string ({value[:40]!r})"
    return "an array" if isinstance(value, list) else "an object"


def sse(doc: dict) -> bytes:
    """One server-sent event carrying ``doc`` as JSON."""
    return b"data: " + dumps(doc) + b"\n\n"


def prompt_tokens(served: Served, text: str) -> int:
    """Tokens the model reads for prompt ``text`` (an empty prompt: the one end-of-text token that starts
    a document). The tokenizer is built once per loaded model."""
    tokenizer = served.__dict__.get("_tokenizer")
    if tokenizer is None:
        tokenizer = served.model.model.tokenizer
        object.__setattr__(served, "_tokenizer", tokenizer)  # a cache on a frozen dataclass: not a field
    return max(len(tokenizer.encode(text).ids), 1)


def install(app: FastAPI, *, model: Callable[..., Served], read_body: Callable, request_id: Callable[[Request], str],
            max_new_tokens: int) -> None:
    """Add the generate routes to ``app`` (``factory.serving.app.create_app`` calls this).

    Args:
        model: ``(name, version) -> Served`` (404 for another name or version).
        read_body: the app's size-checked body reader; ``request_id``: the request's id.
        max_new_tokens: ``limits.max_new_tokens``.
    """
    from starlette.concurrency import run_in_threadpool

    metrics = app.state.metrics

    def language_model(name: str, version: str | None) -> Served:
        served = model(name, version)
        if not served.is_language_model:
            raise RequestError(f"model {name!r} is a {served.task} model: it generates no text; score rows with "
                               f"POST /v2/models/{name}/infer or POST /predict", 400)
        return served

    def record(rid: str, served: Served, endpoint: str, req: GenerateRequest, prompt: int, generated: int,
               finish: str, seconds: float) -> None:
        metrics.observe_generation(prompt, generated, finish)
        hook = getattr(app.state, "request_log", None)
        if hook is None:
            return
        floats = {"prompt_tokens": prompt, "generated_tokens": generated, "max_tokens": req.max_tokens,
                  "temperature": req.temperature, "top_k": req.top_k, "seed": req.seed, "seconds": seconds}
        features = {"endpoint": np.array([endpoint], dtype=object),
                    **{k: np.array([np.nan if v is None else v], dtype=np.float64) for k, v in floats.items()}}
        hook.log_for(served.name).append(request_id=rid, model=served.name, version=served.version,
                                         features=features, prediction=np.array([finish], dtype=object),
                                         score=np.array([np.nan]))

    def whole(served: Served, req: GenerateRequest) -> tuple[str, int, int]:
        # generate_text is stream_text's pieces joined: taking the pieces here counts the tokens as a stream does
        pieces = list(served.model.stream_text(req.text, max_new_tokens=req.max_tokens,
                                               temperature=req.temperature, top_k=req.top_k, seed=req.seed))
        return "".join(pieces), prompt_tokens(served, req.text), len(pieces)

    async def generate(request: Request, name: str, version: str | None) -> Response:
        served = language_model(name, version)  # read once: the version that generates is the one named
        rid = request_id(request)
        req = decode_generate(await read_body(request), max_new_tokens)
        start = time.perf_counter()
        try:
            text, prompt, generated = await run_in_threadpool(whole, served, req)
        except ValueError as e:  # the model's own refusal of a value (one line), not a crash
            raise RequestError(str(e)) from None
        record(rid, served, "generate", req, prompt, generated, "completed", time.perf_counter() - start)
        body = dumps({"model_name": served.name, "model_version": str(served.version), "text_output": text})
        return Response(body, 200, {"x-request-id": rid}, media_type="application/json")

    async def generate_stream(request: Request, name: str, version: str | None) -> Response:
        served = language_model(name, version)
        rid = request_id(request)
        req = decode_generate(await read_body(request), max_new_tokens)  # a 4xx before any event
        start = time.perf_counter()
        pieces = served.model.stream_text(req.text, max_new_tokens=req.max_tokens, temperature=req.temperature,
                                          top_k=req.top_k, seed=req.seed)
        named = {"model_name": served.name, "model_version": str(served.version)}
        done = object()

        async def events():
            sent, finish = [], "cancelled"  # until the last event is out: a disconnect cancels this generator
            try:
                while True:
                    piece = await run_in_threadpool(next, pieces, done)  # one sampling step off the event loop
                    if piece is done:
                        break
                    if not sent:
                        metrics.observe_first_token(time.perf_counter() - start)
                    sent.append(piece)
                    yield sse({**named, "text_output": piece})
                prompt, generated = await run_in_threadpool(prompt_tokens, served, req.text), len(sent)
                finish = "completed"
                yield sse({**named, "text_output": "", "final": True, "prompt_tokens": prompt,
                           "generated_tokens": generated})
            except Exception as e:  # noqa: BLE001 - the status line is out: the error is the last event
                finish = "error"
                log.exception("%s: generation failed", request.url.path)
                message = str(e).splitlines()[0] if isinstance(e, ValueError) and str(e) else (
                    f"internal server error ({type(e).__name__}); the server's log has the details")
                yield sse({**named, "error": message})
            finally:
                pieces.close()  # a cancelled stream stops sampling here (the step in flight has returned)
                if finish != "completed":
                    prompt, generated = prompt_tokens(served, req.text), len(sent)
                record(rid, served, "generate_stream", req, prompt, generated, finish, time.perf_counter() - start)

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"x-request-id": rid, "cache-control": "no-cache"})

    doc = {"tags": ["generate"], "openapi_extra": openapi.request_body(openapi.GenerateRequest),
           "responses": {200: {"model": openapi.GenerateResponse}, 422: openapi.ERRORS[422],
                         **{k: v for k, v in openapi.ERRORS.items() if k != 413}}}
    stream_doc = {**doc, "responses": {**doc["responses"], 200: {
        "description": "text/event-stream: `data: {\"model_name\", \"model_version\", \"text_output\"}` per piece, "
                       "then one with `\"final\": true` and the token counts",
        "content": {"text/event-stream": {}}}}}

    @app.post("/v2/models/{name}/generate", summary="Generate text (language models)", **doc)
    async def generate_latest(request: Request, name: str) -> Response:
        return await generate(request, name, None)

    @app.post("/v2/models/{name}/versions/{version}/generate", summary="Generate text (a version)", **doc)
    async def generate_version(request: Request, name: str, version: str) -> Response:
        return await generate(request, name, version)

    @app.post("/v2/models/{name}/generate_stream", summary="Generate text as server-sent events", **stream_doc)
    async def stream_latest(request: Request, name: str) -> Response:
        return await generate_stream(request, name, None)

    @app.post("/v2/models/{name}/versions/{version}/generate_stream", summary="Generate text as server-sent "
              "events (a version)", **stream_doc)
    async def stream_version(request: Request, name: str, version: str) -> Response:
        return await generate_stream(request, name, version)
