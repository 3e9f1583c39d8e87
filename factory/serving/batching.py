"""Dynamic batching: concurrent requests coalesced into one model call.

Requests go into a queue drained by one model worker thread (ONNX Runtime and torch
release the GIL while they compute, so the event loop keeps accepting requests). The
worker takes the first waiting request, then everything already queued, up to
``max_batch_size`` rows; when it found company it keeps taking requests while they keep
coming (each within a fifth of ``max_latency_ms`` of the one before), until ``max_latency_ms``
after the first one arrived. A lone request with an empty queue runs at once: batching adds
no latency at low load; and when every client is waiting on the batch, it does not wait out
the deadline for requests that cannot come (at 8 connections, that halved the rows/s). What
arrives while a batch runs goes in the next, so under load batches grow by themselves.
Callers on an event loop are answered with one loop wake-up per batch, not one per request.

The score function takes ``{column: numpy array}`` (every request's rows concatenated) and
returns ``(outputs, model)``: outputs with one row per input row, and whatever names the
model that scored (the batch was scored by exactly that one, even if a reload swaps the
model between batches). Each caller gets back its own rows and that ``model``. A request
submitted with a ``model`` (the server's: the one its body was decoded against) is batched
only with requests of that same model and scored by it: ``score(columns, model)``.
A batch of several requests whose model call raises is scored again one request at a
time, so a bad request (one the checks before queueing could not see) fails alone.
``BatchingScorer`` is this as the server's ``app.state.scorer``; ``install`` puts it there.

Example:
    >>> batcher = Batcher(score, max_batch_size=256, max_latency_ms=5)
    >>> scored = await batcher.submit({"amount": np.array([12.5]), "country": np.array(["FR"], object)})
    >>> scored.outputs, scored.model
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np

Columns = Mapping[str, np.ndarray]
ScoreFn = Callable[[dict[str, np.ndarray]], "tuple[np.ndarray, Any]"]


class BatcherClosed(RuntimeError):
    """A request submitted after ``close()`` (the server is shutting down)."""


@dataclass(frozen=True)
class Scored:
    """One request's share of a model call."""

    outputs: np.ndarray  # this request's rows of the score function's outputs, in its order
    model: Any           # the score function's second value: what scored the whole batch
    batch_rows: int      # rows in the model call this request was part of


@dataclass
class _Request:
    columns: dict[str, np.ndarray]
    rows: int
    signature: tuple  # requests are concatenated only with requests of the same columns and kinds
    arrived: float
    future: concurrent.futures.Future
    model: Any = None  # ... and of the same model (identity); None: the score function's own
    waiter: Any = None  # (loop, asyncio future) of a ``submit`` caller: answered in one callback per batch


_STOP = object()


def check_columns(columns: Columns) -> tuple[dict[str, np.ndarray], int]:
    """The request's columns as 1-D arrays of one length, and that length.

    Run on the caller's side, before queueing, so a malformed request fails alone instead
    of failing the batch it would have joined.

    Raises:
        ValueError: no column, a column that is not 1-D, or columns of different lengths.
    """
    if not columns:
        raise ValueError("a request needs at least one column")
    arrays = {name: np.asarray(values) for name, values in columns.items()}
    lengths = {name: (a.shape[0] if a.ndim == 1 else None) for name, a in arrays.items()}
    for name, n in lengths.items():
        if n is None:
            raise ValueError(f"column {name!r} must be one-dimensional, got shape {arrays[name].shape}")
    if len(set(lengths.values())) > 1:
        raise ValueError(f"columns have different lengths: {lengths}")
    rows = next(iter(lengths.values()))
    if rows == 0:
        raise ValueError("a request needs at least one row")
    return arrays, rows


def _kind(a: np.ndarray) -> str:
    return "n" if a.dtype.kind in "biuf" else "s"  # numbers concatenate with numbers, strings with strings


class Batcher:
    """One model worker scoring queued requests in batches (see the module docstring).

    Args:
        score: ``score(columns) -> (outputs, model)``, called on the worker thread only.
        max_batch_size: rows per model call; a larger request runs alone, unsplit.
        max_latency_ms: the longest a batch that has company keeps taking requests,
            counted from its first request's arrival.
        on_batch: called with the rows of each model call (a metrics histogram's ``observe``).
    """

    def __init__(self, score: ScoreFn, *, max_batch_size: int = 256, max_latency_ms: float = 5.0,
                 on_batch: Callable[[int], None] | None = None):
        if max_batch_size < 1:
            raise ValueError(f"batching.max_batch_size must be >= 1, got {max_batch_size}")
        if max_latency_ms < 0:
            raise ValueError(f"batching.max_latency_ms must be >= 0, got {max_latency_ms}")
        self.score = score
        self.max_batch_size = max_batch_size
        self.max_latency_s = max_latency_ms / 1000
        self.on_batch = on_batch
        self.batches = 0  # model calls made (read by tests and metrics)
        self.rows = 0
        self._queue: queue.Queue = queue.Queue()
        self.idle_s = self.max_latency_s / 5  # a batch stops waiting when no request came for this long
        self._carry: _Request | None = None  # taken from the queue but kept for the next batch
        self._lock = threading.Lock()  # submit vs close: nothing is queued behind the stop marker
        self._closed = False
        self._worker = threading.Thread(target=self._run, name="factory-batcher", daemon=True)
        self._worker.start()

    def submit_nowait(self, columns: Columns, model: Any = None, _waiter: Any = None) -> concurrent.futures.Future:
        """Queue a request; the future resolves to its ``Scored`` (or the model call's error).

        ``model``: score it with ``score(columns, model)``, batched only with requests of that model.

        Raises:
            ValueError: malformed columns (see ``check_columns``), before anything is queued.
            BatcherClosed: after ``close()``.
        """
        arrays, rows = check_columns(columns)
        signature = tuple(sorted((name, _kind(a)) for name, a in arrays.items()))
        request = _Request(arrays, rows, signature, time.monotonic(), concurrent.futures.Future(), model, _waiter)
        with self._lock:
            if self._closed:
                raise BatcherClosed("the server is shutting down")
            self._queue.put(request)
        return request.future

    async def submit(self, columns: Columns, model: Any = None) -> Scored:
        """``submit_nowait`` awaited from the event loop (a cancelled caller's rows are skipped if not yet run)."""
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()  # set by the worker: one loop wake-up per batch, not one per request
        future = self.submit_nowait(columns, model, (loop, waiter))
        try:
            return await waiter
        except asyncio.CancelledError:
            future.cancel()  # skipped if it has not started
            raise

    @property
    def closed(self) -> bool:
        """``close`` was called: new requests are refused."""
        return self._closed

    def close(self, timeout: float | None = None) -> None:
        """Refuse new requests, score every queued one, then stop the worker."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._queue.put(_STOP)
        self._worker.join(timeout)

    # -- the worker ------------------------------------------------------------------------
    def _next(self, timeout: float | None) -> Any:
        if self._carry is not None:
            request, self._carry = self._carry, None
            return request
        if timeout is None:
            return self._queue.get()
        return self._queue.get(timeout=timeout) if timeout > 0 else self._queue.get_nowait()

    def _run(self) -> None:
        stopping = False
        while not (stopping and self._carry is None):
            first = self._next(None) if not stopping else self._next(0)
            if first is _STOP:
                stopping = True
                continue
            if not first.future.set_running_or_notify_cancel():
                continue  # its caller went away before it ran
            batch, rows = [first], first.rows
            deadline = first.arrived + self.max_latency_s
            while rows < self.max_batch_size:
                # Alone, take only what is already queued: a lone request never waits for company.
                # With company, keep taking requests while they come, until the first one's deadline.
                try:
                    request = self._next(0 if len(batch) == 1 else min(deadline - time.monotonic(), self.idle_s))
                except queue.Empty:
                    break
                if request is _STOP:
                    stopping = True  # nothing is queued behind the marker: run what we have
                    break
                if (rows + request.rows > self.max_batch_size or request.signature != first.signature
                        or request.model is not first.model):
                    self._carry = request  # it opens the next batch
                    break
                if request.future.set_running_or_notify_cancel():
                    batch.append(request)
                    rows += request.rows
            self._score(batch, rows)

    def _score(self, batch: list[_Request], rows: int) -> None:
        try:
            if len(batch) == 1:
                columns = batch[0].columns
            else:
                columns = {name: np.concatenate([r.columns[name] for r in batch]) for name in batch[0].columns}
            given = batch[0].model
            outputs, model = self.score(columns) if given is None else self.score(columns, given)
            outputs = np.asarray(outputs)
            if outputs.shape[:1] != (rows,):
                raise RuntimeError(f"the model returned {outputs.shape[:1]} rows for {rows}")
        except BaseException as error:  # the worker keeps serving
            if len(batch) > 1:  # one request's bad value must not fail the others: each alone
                for request in batch:
                    self._score([request], request.rows)
                return
            batch[0].future.set_exception(error)
            _answer([(batch[0], error, True)])
            return
        self.batches += 1
        self.rows += rows
        start, answers = 0, []
        for request in batch:
            scored = Scored(outputs[start:start + request.rows], model, rows)
            request.future.set_result(scored)
            answers.append((request, scored, False))
            start += request.rows
        _answer(answers)
        if self.on_batch is not None:
            try:
                self.on_batch(rows)
            except Exception:  # a metrics hook must not stop scoring
                pass


def _answer(answers: list) -> None:
    """Resolve the ``submit`` callers' futures: one callback per event loop for the whole batch."""
    loops: dict = {}
    for request, value, failed in answers:
        if request.waiter is not None:
            loops.setdefault(request.waiter[0], []).append((request.waiter[1], value, failed))
    for loop, settled in loops.items():
        try:
            loop.call_soon_threadsafe(_settle, settled)
        except RuntimeError:  # the loop has closed: nobody is waiting
            pass


def _settle(settled: list) -> None:
    for waiter, value, failed in settled:
        if not waiter.done():  # a cancelled caller
            if failed:
                waiter.set_exception(value)
            else:
                waiter.set_result(value)


class BatchingScorer:
    """The server's ``app.state.scorer`` with dynamic batching.

    Each request is scored by the model it was decoded against (the server passes it), batched
    only with requests of that model, and answered as scored by that version. A request
    submitted without one is scored by ``holder.current`` as its batch starts.
    """

    def __init__(self, holder: Any, batching: Mapping[str, Any], on_batch: Callable[[int], None] | None = None):
        self.holder = holder
        self.batcher = Batcher(self._score, max_batch_size=int(batching["max_batch_size"]),
                               max_latency_ms=float(batching["max_latency_ms"]), on_batch=on_batch)

    def _score(self, columns: dict[str, np.ndarray], served: Any = None) -> tuple[np.ndarray, Any]:
        if served is None:
            served = self.holder.current  # taken once: the whole batch is scored and named by this version
        return served.score(columns), served

    @property
    def max_batch_size(self) -> int:
        """Rows per model call: a request this large is a batch alone (the server scores it directly)."""
        return self.batcher.max_batch_size

    @property
    def closed(self) -> bool:
        """Shut down: new requests are refused (503), not scored another way."""
        return self.batcher.closed

    async def __call__(self, columns: dict[str, np.ndarray], rows: int, served: Any = None) -> tuple[np.ndarray, Any]:
        scored = await self.batcher.submit(columns, served)
        return scored.outputs, scored.model

    def close(self) -> None:
        self.batcher.close()


def install(app: Any, cfg: Any) -> None:
    """Score ``app``'s requests through a ``BatchingScorer`` when ``cfg.batching.enabled``.

    Off, the app keeps its own one-call-per-request scorer. ``close`` joins
    ``app.state.closers``: at shutdown the queue is scored before the request log closes.
    """
    if not cfg.batching.enabled:
        return
    scorer = BatchingScorer(app.state.holder, cfg.batching, on_batch=app.state.metrics.observe_batch)
    app.state.scorer = scorer
    app.state.closers.append(scorer.close)
