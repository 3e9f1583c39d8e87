"""The server's Prometheus metrics (``GET /metrics``), named by Prometheus' conventions.

- ``factory_requests_total{endpoint,status}``: requests answered, by route and HTTP status
- ``factory_request_duration_seconds{endpoint}``: latency histogram, request in to response out
- ``factory_batch_size_rows``: rows per model call (with dynamic batching, per coalesced call)
- ``factory_rows_scored_total``: rows scored
- ``factory_score``: histogram of the scores returned (P(positive) for binary, the top
  class's probability for multiclass, the value for regression)
- ``factory_model_info{name,version,stage,backend}``: 1 for the loaded model (an info metric)
- a language model's (``/generate``, ``/generate_stream``; registered once one is served):
  ``factory_generated_tokens_total`` and ``factory_prompt_tokens_total``: tokens sampled and
  read; ``factory_time_to_first_token_seconds``: a stream's first piece, request in to event out;
  ``factory_generations_total{finish}``: generations by how they ended (``completed``,
  ``cancelled``: the client went away mid-stream, ``error``). Their latency is
  ``factory_request_duration_seconds``.
- ``factory_monitor_*``: the latest monitoring figures of the served model (drift per feature,
  score drift, quality, fairness, alerts), read from the file ``scripts/monitor.py`` writes
  (``request_log_files.monitoring_file``: ``<serving_dir>/<model>/monitoring/drift.prom``),
  re-read when it changes (``MonitoringFile``)

With ``workers > 1`` the server runs prometheus_client's multiprocess mode: each worker
writes its values to files in ``PROMETHEUS_MULTIPROC_DIR`` (``<serving_dir>/<model>/metrics``,
emptied at start-up) and ``/metrics`` on any worker sums them over all workers, so a
scrape sees the whole server. ``factory_model_info`` then shows the newest value any live
worker holds for each version (a version still served by one worker reads 1).
"""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from factory.serving.model_holder import Served

log = logging.getLogger(__name__)
#: The only metric names the monitoring file may add: it cannot shadow the server's own.
MONITOR_PREFIX = "factory_monitor_"

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192)
FIRST_TOKEN_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
PROBABILITY_BUCKETS = tuple(round(0.05 * i, 2) for i in range(1, 21))
BULK_SCORES = 16  # from this many scores a request's go to the histogram in bulk (``observe_many``)


class Metrics:
    """The server's metrics, registered in a registry of their own (one per app).

    Args:
        task: the model's task: probability buckets for the score histogram, or
            Prometheus' default buckets for regression values.
    """

    def __init__(self, task: str):
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

        disable_created_metrics()  # no *_created series: a scrape is half as long, and nothing reads them
        self.multiprocess = bool(os.environ.get(MULTIPROC_ENV))
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("factory_requests", "Requests answered, by endpoint and HTTP status.",
                                ["endpoint", "status"], registry=r)
        self.duration = Histogram("factory_request_duration_seconds", "Request latency in seconds, by endpoint.",
                                  ["endpoint"], buckets=LATENCY_BUCKETS, registry=r)
        self.batch_rows = Histogram("factory_batch_size_rows", "Rows per model call.", buckets=BATCH_BUCKETS,
                                    registry=r)
        self.rows = Counter("factory_rows_scored", "Rows scored.", registry=r)
        score_buckets = PROBABILITY_BUCKETS if task != "regression" else Histogram.DEFAULT_BUCKETS
        self.scores = Histogram("factory_score", "Scores returned (P(positive), top-class probability, or value).",
                                buckets=score_buckets, registry=r)
        self.info = Gauge("factory_model_info", "The loaded model: 1 for the version being served.",
                          ["name", "version", "stage", "backend"], multiprocess_mode="livemax", registry=r)
        self._children: dict = {}
        self._text = None  # a language model's metrics: made when one is first served (tabular /metrics unchanged)
        if task == "language_modeling":
            self.text_metrics()
        self.monitoring: MonitoringFile | None = None  # the monitor job's latest figures (``watch_monitoring``)
        self.in_flight = 0  # HTTP requests inside the app now (RequestMetrics counts them): 1 = a lone one

    def model_loaded(self, served: Served, old: Served | None = None) -> None:
        """Mark ``served`` as the loaded model (and ``old``, if any, as no longer)."""
        if old is not None:
            labels = _info_labels(old)
            if self.multiprocess:  # a value in another worker's file cannot be removed: 0 says "not here"
                self.info.labels(*labels).set(0)
            else:
                self.info.remove(*labels)
        self.info.labels(*_info_labels(served)).set(1)

    def observe_request(self, endpoint: str, status: int, seconds: float) -> None:
        key = (endpoint, status)
        child = self._children.get(key)
        if child is None:  # labels() costs more than the increment: keep the children
            child = self._children[key] = (self.requests.labels(endpoint, str(status)),
                                           self.duration.labels(endpoint))
        child[0].inc()
        child[1].observe(seconds)

    def text_metrics(self):
        """The language-model metrics (see the module docstring), registered on first use."""
        if self._text is None:
            from types import SimpleNamespace

            from prometheus_client import Counter, Histogram

            r = self.registry
            self._text = SimpleNamespace(
                generated=Counter("factory_generated_tokens", "Tokens generated by a language model.", registry=r),
                prompt=Counter("factory_prompt_tokens", "Prompt tokens read by a language model.", registry=r),
                first=Histogram("factory_time_to_first_token_seconds", "Seconds from a stream's request to its "
                                "first piece of text.", buckets=FIRST_TOKEN_BUCKETS, registry=r),
                finished=Counter("factory_generations", "Generations by how they ended (completed, cancelled, "
                                 "error).", ["finish"], registry=r))
        return self._text

    def observe_generation(self, prompt_tokens: int, generated_tokens: int, finish: str) -> None:
        """One generation: its prompt and generated tokens, and how it ended."""
        text = self.text_metrics()
        text.prompt.inc(prompt_tokens)
        text.generated.inc(generated_tokens)
        text.finished.labels(finish).inc()

    def observe_first_token(self, seconds: float) -> None:
        self.text_metrics().first.observe(seconds)

    def observe_batch(self, rows: int) -> None:
        """One model call of ``rows`` rows."""
        self.batch_rows.observe(rows)

    def observe_scores(self, scores) -> None:
        """Scores returned to a caller, a 1-D array or a list (``rows_scored`` counts them too)."""
        import numpy as np

        if len(scores) < BULK_SCORES:  # a few: an observe each costs less than numpy's calls (1 row: 1.7 vs 12 us)
            values = scores.tolist() if hasattr(scores, "tolist") else scores
            self.rows.inc(len(values))
            for value in values:
                if value == value:  # NaN is no bucket's
                    self.scores.observe(value)
            return
        scores = np.asarray(scores, dtype=np.float64).ravel()
        self.rows.inc(len(scores))
        observe_many(self.scores, scores[~np.isnan(scores)])

    def watch_monitoring(self, path: str | os.PathLike) -> None:
        """Append the monitoring figures in ``path`` (Prometheus text) to ``/metrics`` from now on."""
        self.monitoring = MonitoringFile(path)

    def exposition(self) -> tuple[bytes, str]:
        """The text ``/metrics`` answers, and its content type."""
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

        if not self.multiprocess:
            body = generate_latest(self.registry)
        else:
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            body = generate_latest(registry)
        if self.monitoring is not None:
            body += self.monitoring.exposition()
        return body, CONTENT_TYPE_LATEST


class MonitoringFile:
    """A Prometheus text file another process writes (the monitor job's figures), as a collector.

    Parsed with prometheus_client's own parser when its mtime or size changes, and kept parsed
    between changes (a scrape costs one ``stat``). A missing, unreadable or malformed file adds
    nothing and logs one warning per change, never an error answer: the server's own metrics
    must not depend on another job's file. Only ``factory_monitor_*`` families are taken.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._seen: tuple | None = None  # (mtime_ns, size) of the parsed file, or "missing"
        self._families: list = []

    def collect(self):
        from prometheus_client.parser import text_string_to_metric_families

        try:
            st = self.path.stat()
            key: tuple = (st.st_mtime_ns, st.st_size)
        except OSError:
            key = ("missing",)
        if key == self._seen:
            return self._families
        self._seen, self._families = key, []
        if key == ("missing",):
            log.warning("metrics: no monitoring figures at %s yet (scripts/monitor.py writes them)", self.path)
            return self._families
        try:
            families = list(text_string_to_metric_families(self.path.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError, ValueError, TypeError, IndexError) as e:
            log.warning("metrics: skipping the malformed monitoring file %s: %s", self.path, e)
            return self._families
        foreign = sorted(f.name for f in families if not f.name.startswith(MONITOR_PREFIX))
        if foreign:
            log.warning("metrics: %s: skipping metric(s) not named %s*: %s", self.path, MONITOR_PREFIX,
                        ", ".join(foreign))
        self._families = [f for f in families if f.name.startswith(MONITOR_PREFIX)]
        return self._families

    def exposition(self) -> bytes:
        """The file's families in the text format (empty when there are none)."""
        from prometheus_client import CollectorRegistry, generate_latest

        families = self.collect()
        if not families:
            return b""
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Fixed(families))
        try:
            return generate_latest(registry)
        except Exception as e:  # noqa: BLE001 - a family the parser took but cannot be written back
            log.warning("metrics: skipping the monitoring file %s: %s", self.path, e)
            return b""


class _Fixed:
    """A collector of families parsed already."""

    def __init__(self, families: list):
        self.families = families

    def collect(self):
        return iter(self.families)


class RequestMetrics:
    """ASGI middleware timing every HTTP request and counting it by route template and status.

    A route template (``/v2/models/{name}/infer``), not the path, is the ``endpoint`` label,
    so a caller cannot grow the label set; a request answered before routing (a 401) is
    matched against ``routes`` afterwards; a path no route matches is ``other``.
    """

    def __init__(self, app, metrics: Metrics, routes: list | None = None):
        self.app, self.metrics, self.routes = app, metrics, routes or []

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        status = 500
        observed = False

        def observe():
            nonlocal observed
            observed = True
            route = scope.get("route") or self._match(scope)
            endpoint = getattr(route, "path", None) or "other"
            self.metrics.observe_request(endpoint, status, time.perf_counter() - start)

        async def send_status(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and not message.get("more_body") and not observed:
                # counted before the last byte leaves: a client that then reads /metrics
                # (from any worker) sees its own request
                observe()
            await send(message)

        self.metrics.in_flight += 1  # the event loop's thread alone changes it: no lock
        try:
            await self.app(scope, receive, send_status)
        finally:
            self.metrics.in_flight -= 1
            if not observed:  # no complete body was sent (an error, a disconnect)
                observe()

    def _match(self, scope):
        from starlette.routing import Match

        return next((r for r in self.routes if r.matches(scope)[0] != Match.NONE), None)


def observe_many(histogram, values) -> None:
    """``histogram.observe(v)`` for each of ``values`` (a float array without NaN), in bulk.

    prometheus_client observes one value at a time: 0.17 ms of CPU for a 256-row request's scores,
    a tenth of the event loop's work on it. Here each bucket's count is added at once, to the same
    value objects ``observe`` increments (an unlabelled histogram's ``_buckets`` and ``_sum``, in
    single- and multiprocess mode), with the bucket ``observe`` picks (the first bound >= v); the
    sum is added as one float, so it may differ from one-at-a-time adds in the last bits. A
    prometheus_client without those attributes gets the one-at-a-time loop.
    """
    import numpy as np

    if not len(values):
        return
    bounds, buckets, total = (getattr(histogram, name, None) for name in ("_upper_bounds", "_buckets", "_sum"))
    if bounds is None or buckets is None or total is None or len(buckets) != len(bounds):
        for value in values.tolist():
            histogram.observe(value)
        return
    counts = np.bincount(np.searchsorted(np.asarray(bounds, dtype=np.float64), values, side="left"),
                         minlength=len(bounds))
    with np.errstate(invalid="ignore"):  # inf + -inf: NaN, as one at a time, without a warning
        total.inc(float(values.sum()))
    for i in np.flatnonzero(counts).tolist():
        buckets[i].inc(int(counts[i]))


def mark_worker_dead(pid: int) -> None:
    """Drop a worker's live gauges (uvicorn calls nothing; the server does at shutdown)."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)


def _info_labels(served: Served) -> tuple[str, str, str, str]:
    return served.name, str(served.version), served.stage, served.backend
