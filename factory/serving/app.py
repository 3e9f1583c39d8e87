"""The FastAPI app: Open Inference Protocol v2 endpoints, ``/predict``, ``/metrics``, ``/docs``; for a
language model, ``/v2/models/{name}/generate`` and ``generate_stream`` (``factory.serving.generation``).

``create_app(cfg, holder)`` builds it around a ``ModelHolder``. Handlers read the body as
bytes and decode it with ``factory.serving.protocol``; a bad request is a 4xx with
``{"error": "<one line>"}`` (the v2 error object), any other failure a 500 with a
one-line body (the traceback goes to the server's log only).

Where other parts plug in (``app.state``):
    scorer: ``async (columns, rows, served) -> (out, served)``, the one path to the model:
        a request is scored by the ``served`` model it was decoded against (read once from
        ``holder.current``; a reload in between does not change it). ``DirectScorer`` by
        default: one model call per request; dynamic batching replaces it with a queue that
        coalesces requests of the same model.
    after_score: callables ``(request_id, served, columns, out)`` run after each scored
        request, before the response is sent (the request log: keep them cheap).
    closers: callables (or coroutine functions) run at shutdown in the order added
        (batching's queue drains before the request log flushes), after uvicorn has
        drained in-flight requests; then the reload thread stops.
    holder, metrics, cfg: the model holder, the ``Metrics`` and the server's config.

Example:
    >>> app = create_app(cfg, ModelHolder("fraud_detection@production", None, "onnx"))
    >>> uvicorn.run(app, port=8080)
"""
from __future__ import annotations

import inspect
import logging
import re
import time
import uuid
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from factory.serving import openapi
from factory.serving.batching import BatcherClosed
from factory.serving.metrics import Metrics, RequestMetrics
from factory.serving.model_holder import ModelHolder, Served
from factory.serving.protocol import (RequestError, check_outputs, decode_infer, decode_rows, dumps, encode_outputs,
                                      encode_predictions, output_names)

log = logging.getLogger(__name__)

JSON = "application/json"
REQUEST_ID = re.compile(r"[A-Za-z0-9._:/-]{1,128}")  # a client's X-Request-ID is kept if it looks like one
INLINE_ROWS = 64  # ONNX Runtime scores this many rows faster than a hop to a thread and back
QUICK_S = 0.001  # a model call this short may hold the event loop for a lone request (see DirectScorer.quick)


class DirectScorer:
    """One model call per request: small ONNX requests on the event loop, the rest in a thread."""

    def __init__(self, holder: ModelHolder, metrics: Metrics):
        self.holder, self.metrics = holder, metrics
        self._timed: tuple[Served, float] | None = None  # the model last scored on the loop, and the call's seconds

    def quick(self, served: Served) -> bool:
        """Whether ``served``'s calls are short enough to run a lone request on the event loop.

        A slow model (the 17M-parameter benchmark network: 3.7 ms a row) must not: while the loop
        is held, no other request gets in, so every request would look lone and none would batch.
        """
        timed = self._timed
        return timed is None or timed[0] is not served or timed[1] < QUICK_S

    async def __call__(self, columns: dict[str, np.ndarray], rows: int, served: Served) -> tuple[np.ndarray, Served]:
        from starlette.concurrency import run_in_threadpool

        if rows <= INLINE_ROWS and served.model.onnx is not None:
            start = time.perf_counter()
            out = served.score(columns)
            self._timed = (served, time.perf_counter() - start)
        else:
            out = await run_in_threadpool(served.score, columns)
        self.metrics.observe_batch(rows)
        return out, served


def create_app(cfg: Any, holder: ModelHolder, tokens: list[bytes] | None = None) -> FastAPI:
    """The server app for ``cfg`` (``conf/serve.yaml``) serving ``holder``'s model.

    Args:
        cfg: the composed serve config (``limits.max_rows`` is read here).
        holder: the model holder; its reload thread starts with the app.
        tokens: bearer tokens (``factory.serving.auth.load_tokens``); None: no auth.
    """
    from factory.rundir.provenance import factory_version

    version = factory_version()
    metrics = Metrics(holder.current.task)
    from factory.serving.request_log_files import monitoring_file

    if not holder.current.is_language_model:  # the monitor job reads feature columns: it writes none for one
        metrics.watch_monitoring(monitoring_file(cfg.serving_dir, holder.current.name))  # drift gauges, when written
    holder.on_swap = lambda old, new: metrics.model_loaded(new, old)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        metrics.model_loaded(holder.current)
        holder.start()
        try:
            yield
        finally:
            for close in app.state.closers:
                try:
                    result = close()
                    if inspect.isawaitable(result):
                        await result
                except Exception:  # noqa: BLE001 - one failing component must not keep the others open
                    log.exception("shutdown: %r failed", close)
            holder.close()

    app = FastAPI(title="factory model server", version=version, lifespan=lifespan,
                  description="A registered model over HTTP: the Open Inference Protocol (KServe v2) and a "
                              "plain JSON `/predict`. Errors are `{\"error\": \"<one line>\"}`.")
    app.state.cfg, app.state.holder, app.state.metrics = cfg, holder, metrics
    app.state.scorer = app.state.direct = DirectScorer(holder, metrics)
    app.state.after_score, app.state.closers = [], []
    from factory.serving import batching, request_log

    batching.install(app, cfg)  # batching.enabled: requests coalesce in one queue (replaces the scorer)
    request_log.install(app, cfg)  # log.enabled: every scored row to Parquet; closes after batching drains
    max_rows = int(cfg.limits.max_rows)
    max_new_tokens = int(cfg.limits.max_new_tokens)
    max_body_mb = float(cfg.limits.max_body_mb)
    max_body = int(max_body_mb * 2**20)

    async def read_body(request: Request) -> bytes:
        """The body, refused (413) past ``limits.max_body_mb``: by Content-Length before reading, or while
        a chunked body streams in."""
        def too_large(size: str) -> RequestError:
            return RequestError(f"request body of {size} bytes is over the limit of {max_body_mb:g} MB "
                                "(limits.max_body_mb)", 413)

        length = request.headers.get("content-length")
        if length is not None:  # the HTTP parser delivers no more than Content-Length bytes
            if length.isdigit() and int(length) > max_body:
                raise too_large(length)
            return await request.body()
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_body:
                raise too_large(f"over {max_body}")
            chunks.append(chunk)
        return b"".join(chunks)

    def request_id(request: Request) -> str:
        given = request.headers.get("x-request-id")
        return given if given and REQUEST_ID.fullmatch(given) else uuid.uuid4().hex

    def model(name: str, version: str | None = None) -> Served:
        served = holder.current
        if name != served.name:
            raise RequestError(f"unknown model {name!r}: this server serves {served.name!r}", 404)
        if version is not None and version.removeprefix("v") != str(served.version):
            raise RequestError(f"model {name!r} version {version!r} is not served: this server serves "
                               f"version {served.version}", 404)
        return served

    async def score(rid: str, columns: dict, rows: int, served: Served) -> tuple[np.ndarray, Served]:
        # The only request in the server has no company to wait for: it skips the hop to the batch
        # worker (measured at c=1: 1.32 ms p50 through the worker against 0.70 ms direct).
        columns = served.protect(columns)  # pii: hash features: hashed before the model and the request log see them
        # A request of max_batch_size rows or more fills a batch alone: batching cannot help it, and the queue
        # cost it a third of its rows/s (256-row requests at 8 connections: 74.7k rows/s, 116k scored directly).
        # (Unless the direct path would hold the event loop with a slow model's call: see DirectScorer.quick.)
        scorer, direct = app.state.scorer, app.state.direct
        if scorer is not direct and not getattr(scorer, "closed", False) and (
                (rows >= getattr(scorer, "max_batch_size", rows + 1) and (rows > INLINE_ROWS or direct.quick(served)))
                or (metrics.in_flight == 1 and direct.quick(served))):
            scorer = direct
        try:
            out, served = await scorer(columns, rows, served)
        except BatcherClosed:
            raise RequestError("the server is shutting down; try again", 503) from None
        for hook in app.state.after_score:
            hook(rid, served, columns, out)
        metrics.observe_scores(out.max(axis=1) if out.ndim == 2 else out)
        return out, served

    def ok(doc: Any, rid: str | None = None, status: int = 200) -> Response:
        return Response(dumps(doc), status, {"x-request-id": rid} if rid else None, media_type=JSON)

    # --- Open Inference Protocol v2 ---

    @app.get("/v2/health/live", tags=["health"], summary="Server liveness (Kubernetes livenessProbe)")
    async def live() -> Response:
        return ok({"live": True})

    @app.get("/v2/health/ready", tags=["health"], summary="Server readiness (Kubernetes readinessProbe)")
    async def ready() -> Response:
        return ok({"ready": holder.current is not None})

    @app.get("/v2", tags=["v2"], summary="Server metadata")
    async def server_metadata() -> Response:
        return ok({"name": "factory", "version": version, "extensions": []})

    def model_metadata(served: Served) -> Response:
        if served.is_language_model:  # Triton's generate extension: text in, text out
            lm = served.model
            return ok({"name": served.name, "versions": [str(served.version)], "platform": "pytorch",
                       "inputs": [{"name": "text_input", "datatype": "BYTES", "shape": [1]}],
                       "outputs": [{"name": "text_output", "datatype": "BYTES", "shape": [-1]}],
                       "parameters": {"task": served.task, "stage": served.stage, "vocab_size": lm.vocab_size,
                                      "block_size": lm.block_size, "max_new_tokens": max_new_tokens}})
        inputs = [{"name": f, "datatype": "BYTES" if served.kinds[f] == "categorical" else "FP64", "shape": [-1]}
                  for f in served.features]
        outputs = [{"name": o, "datatype": "FP64" if o != "prediction" or served.task == "regression" else "INT64",
                    "shape": [-1, len(served.class_labels)] if o == "probabilities" else [-1]}
                   for o in output_names(served.task)]
        return ok({"name": served.name, "versions": [str(served.version)],
                   "platform": "onnxruntime_onnx" if served.backend.startswith("onnx") else "pytorch",
                   "inputs": inputs, "outputs": outputs,
                   "parameters": {"task": served.task, "stage": served.stage,
                                  "class_labels": [str(c) for c in served.class_labels]}})

    def scorable(served: Served) -> Served:
        if served.is_language_model:
            raise RequestError(f"model {served.name!r} is a language model: it scores no rows; generate text with "
                               f"POST /v2/models/{served.name}/generate (or generate_stream)", 400)
        return served

    async def infer(request: Request, name: str, version: str | None) -> Response:
        served = scorable(model(name, version))  # read once: decoded against, scored by and named by this version
        rid = request_id(request)
        body = await read_body(request)
        req = decode_infer(body, served.signature(max_rows))
        check_outputs(req.outputs, served.task)
        out, served = await score(rid, req.columns, req.rows, served)
        return ok({"model_name": served.name, "model_version": str(served.version),
                   "id": req.id if req.id is not None else rid,
                   "outputs": encode_outputs(out, served.task, req.outputs)}, rid)

    meta_doc = {"tags": ["v2"], "responses": {200: {"model": openapi.ModelMetadata}, 404: openapi.ERRORS[404]}}
    infer_doc = {"tags": ["v2"], "openapi_extra": openapi.request_body(openapi.InferRequest),
                 "responses": {200: {"model": openapi.InferResponse}, **openapi.ERRORS}}
    ready_doc = {"tags": ["v2"], "responses": {404: openapi.ERRORS[404]}}

    @app.get("/v2/models/{name}", summary="Model metadata", **meta_doc)
    async def metadata(name: str) -> Response:
        return model_metadata(model(name))

    @app.get("/v2/models/{name}/versions/{version}", summary="Model metadata (a version)", **meta_doc)
    async def metadata_version(name: str, version: str) -> Response:
        return model_metadata(model(name, version))

    @app.get("/v2/models/{name}/ready", summary="Model readiness", **ready_doc)
    async def model_ready(name: str) -> Response:
        return ok({"name": model(name).name, "ready": True})

    @app.get("/v2/models/{name}/versions/{version}/ready", summary="Model readiness (a version)", **ready_doc)
    async def model_ready_version(name: str, version: str) -> Response:
        return ok({"name": model(name, version).name, "ready": True})

    @app.post("/v2/models/{name}/infer", summary="Inference", **infer_doc)
    async def infer_latest(request: Request, name: str) -> Response:
        return await infer(request, name, None)

    @app.post("/v2/models/{name}/versions/{version}/infer", summary="Inference (a version)", **infer_doc)
    async def infer_version(request: Request, name: str, version: str) -> Response:
        return await infer(request, name, version)

    # --- plain JSON ---

    @app.post("/predict", tags=["predict"], summary="Score rows",
              openapi_extra=openapi.request_body(openapi.PredictRequest),
              responses={200: {"model": openapi.PredictResponse}, 400: openapi.ERRORS[400],
                         401: openapi.ERRORS[401], 413: openapi.ERRORS[413]})
    async def predict(request: Request) -> Response:
        """`{"rows": [{column: value, ...}, ...]}` -> one prediction per row, with the model version
        that scored them and the request id (also the `X-Request-ID` header; a client's own is kept)."""
        rid = request_id(request)
        served = scorable(holder.current)  # read once: decoded against, scored by and named by this version
        columns, rows = decode_rows(await read_body(request), served.signature(max_rows))
        out, served = await score(rid, columns, rows, served)
        return ok({"model": served.name, "version": served.version, "request_id": rid,
                   "predictions": encode_predictions(out, served.task, served.class_labels)}, rid)

    # --- language models: Triton's generate extension (factory.serving.generation) ---

    from factory.serving import generation

    generation.install(app, model=model, read_body=read_body, request_id=request_id, max_new_tokens=max_new_tokens)

    @app.get("/metrics", tags=["metrics"], summary="Prometheus metrics (text format)")
    async def prometheus() -> Response:
        body, content_type = metrics.exposition()
        return Response(body, media_type=content_type)

    _install_error_handlers(app)
    app.add_middleware(CatchErrors)  # innermost: a crash answers here, inside auth and metrics
    if tokens:  # before any route; a 401 never reaches a handler, the model or the request log
        from factory.serving.auth import BearerAuth

        app.add_middleware(BearerAuth, tokens=tokens)
    app.add_middleware(RequestMetrics, metrics=metrics, routes=app.router.routes)  # added last: outermost, times all
    return app


def _install_error_handlers(app: FastAPI) -> None:
    """Every error answers ``{"error": "<one line>"}``; nothing sends a traceback to the client."""

    def error(status: int, message: str, headers: dict | None = None) -> Response:
        return Response(dumps({"error": message.splitlines()[0] if message else "error"}), status, headers,
                        media_type=JSON)

    @app.exception_handler(RequestError)
    async def bad_request(request: Request, e: RequestError) -> Response:
        given = request.headers.get("x-request-id")  # a client tracing its request gets it back on an error too
        headers = {"x-request-id": given} if given and REQUEST_ID.fullmatch(given) else {}
        if e.status == 503:
            headers["retry-after"] = "1"
        return error(e.status, str(e), headers or None)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, e: StarletteHTTPException) -> Response:
        message = f"no route {request.method} {request.url.path}" if e.status_code in (404, 405) else str(e.detail)
        return error(e.status_code, message, getattr(e, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, e: RequestValidationError) -> Response:
        first = e.errors()[0] if e.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return error(400, f"{where}: {first.get('msg', 'invalid request')}")

    @app.exception_handler(Exception)
    async def crash(request: Request, e: Exception) -> Response:
        # Only what escapes CatchErrors (a middleware's own failure) comes here; Starlette re-raises after it.
        return error(500, _crash_message(e))


def _crash_message(e: BaseException) -> str:
    return f"internal server error ({type(e).__name__}); the server's log has the details"


class CatchErrors:
    """ASGI middleware: an unexpected exception is logged with its traceback and answered with the
    one-line 500, and not re-raised: Starlette's own handler re-raises, and uvicorn then closes the
    client's keep-alive connection."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def send_started(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, send_started)
        except Exception as e:
            if started:  # half a response is out: nothing sensible can follow it
                raise
            log.exception("%s %s: internal server error", scope.get("method"), scope.get("path"))
            body = dumps({"error": _crash_message(e)})
            await send({"type": "http.response.start", "status": 500,
                        "headers": [(b"content-type", JSON.encode()), (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
