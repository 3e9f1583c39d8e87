"""Start the server: check everything that can fail, then hand the app to uvicorn.

Before the port is bound, ``serve`` validates the config, reads the auth tokens, checks
that the port is free and loads the model (unknown name or stage, checksum mismatch,
a backend the version lacks): each failure is one ``FactoryError`` line and exit 2.

``workers=1`` runs the app built here in this process. ``workers=N`` hands uvicorn the
import string of ``worker_app`` (uvicorn starts each worker process itself); the resolved
config travels in ``$FACTORY_SERVE_CONFIG`` and each worker loads its own copy of the
model, follows the stage on its own and writes its own request-log files. Metrics are
then pooled through prometheus_client's multiprocess mode (``factory.serving.metrics``).

SIGTERM and Ctrl-C: uvicorn stops accepting connections, waits for the requests in
flight, then runs the app's shutdown (``app.state.closers``: batching drains, the
request log flushes), and exits 0.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import socket
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from factory.errors import ConfigError, FactoryError

log = logging.getLogger(__name__)

CONFIG_ENV = "FACTORY_SERVE_CONFIG"


def serve(cfg: Any) -> None:
    """Check ``cfg`` (``conf/serve.yaml``), load the model and serve it until SIGTERM/Ctrl-C.

    Args:
        cfg: the composed config (``scripts/serve.py`` sets ``cfg.model`` from ``model=``:
            ``factory.cli.take_model_argument``).

    Raises:
        FactoryError: a bad config, tokens file, busy port, or a model that cannot load.
    """
    from omegaconf import OmegaConf

    from factory.config.validate import validate
    from factory.serving.auth import load_tokens
    from factory.serving.metrics import MULTIPROC_ENV
    from factory.serving.model_holder import load_served

    validate(cfg, "serve")
    tokens = load_tokens(cfg.auth.tokens_file)
    check_port(cfg.host, cfg.port)
    workers = int(cfg.workers)
    if workers > 1 and cfg.backend == "torch":
        served = check_checkpoint(cfg.model, cfg.registry)  # each worker loads torch itself: not a third time here
    else:
        served = load_served(cfg.model, cfg.registry, cfg.backend)  # fails here, before the port is bound
        log_check(cfg)(served, starting=True)
    if workers > 1:  # metrics pooled over workers: the variable must be set before prometheus_client loads
        metrics_dir = Path(cfg.serving_dir) / served.name / "metrics"
        shutil.rmtree(metrics_dir, ignore_errors=True)  # values of an earlier server are not this one's
        metrics_dir.mkdir(parents=True)
        os.environ[MULTIPROC_ENV] = str(metrics_dir)
    log.info("serving %s v%d (%s, %s backend) on http://%s:%d with %d worker(s)%s; docs at /docs",
             served.name, served.version, served.stage, served.backend, cfg.host, cfg.port, workers,
             "" if tokens is None else ", bearer-token auth on")

    import signal

    import uvicorn

    # uvicorn re-raises the SIGTERM it caught once its graceful shutdown is done, which would end
    # the process as killed (-15). A drained, flushed stop is a success: this handler exits 0.
    signal.signal(signal.SIGTERM, _stopped)
    options = dict(host=cfg.host, port=int(cfg.port), access_log=False, log_level="info",
                   timeout_graceful_shutdown=None)
    if workers == 1:
        uvicorn.run(build_app(cfg, tokens, served), **options)
        return
    del served  # each worker loads its own copy
    os.environ[CONFIG_ENV] = json.dumps(OmegaConf.to_container(cfg, resolve=True))
    uvicorn.run(f"{__name__}:worker_app", factory=True, workers=workers, **options)


def _stopped(signum, frame) -> None:
    raise SystemExit(0)


def check_checkpoint(ref: str, registry: str | None):
    """The version ``ref`` names, its checkpoint's sha256 checked (what a torch load checks first)."""
    from factory.data.curation import pii
    from factory.registry import Registry
    from factory.registry.exports import checked_checkpoint

    version = Registry(registry).get(ref)
    checked_checkpoint(version)
    if "hash" in pii.tagged((version.metadata().get("config") or {}).get("data")).values():
        pii.load_key()  # each worker needs it: say so once, before the port is bound
    return SimpleNamespace(name=version.name, version=version.version, stage=version.stage, backend="torch")


def build_app(cfg: Any, tokens: list[bytes] | None, served=None):
    """The app for ``cfg`` around a ``ModelHolder`` (``served``: a model already loaded)."""
    from factory.serving.app import create_app
    from factory.serving.model_holder import ModelHolder

    check = log_check(cfg)
    holder = ModelHolder(cfg.model, cfg.registry, cfg.backend, interval_s=float(cfg.reload.interval_s),
                         follow=bool(cfg.reload.enabled), served=served, check=check)
    check(holder.current, starting=True)
    return create_app(cfg, holder, tokens)


def log_check(cfg: Any):
    """``check(served, starting=False)``: what the request log needs of a model, before it serves.

    A feature named like one of the log's own columns (``time``, ``score``, ``prob_*``) raises
    FactoryError: at start-up the server exits 2, on a reload the version is refused (the
    holder keeps the old one) instead of failing every request after scoring. A
    ``log.exclude`` name that is not a feature (a typo would log the column it meant to
    keep out) is a ConfigError at start-up and a warning on a reload.
    """
    def check(served, starting: bool = False) -> None:
        if not cfg.log.enabled or served.is_language_model:  # its log rows hold counts, never text or features
            return
        from factory.serving.request_log import check_features

        exclude = list(cfg.log.exclude or ())
        unknown = [name for name in exclude if name not in served.features]
        if unknown:
            message = (f"log.exclude: {unknown[0]!r} is not a feature of {served.name} v{served.version} "
                       f"(its features: {', '.join(served.features)})")
            if starting:
                raise ConfigError(message)
            log.warning("reload: %s; logging every other column", message)
        check_features([name for name in served.features if name not in exclude])
    return check


def worker_app():
    """One worker's app (``workers > 1``): the config from ``$FACTORY_SERVE_CONFIG``, its own model."""
    from omegaconf import OmegaConf

    from factory.serving.auth import load_tokens
    from factory.serving.metrics import mark_worker_dead

    cfg = OmegaConf.create(json.loads(os.environ[CONFIG_ENV]))
    app = build_app(cfg, load_tokens(cfg.auth.tokens_file))
    pid = os.getpid()
    app.state.closers.append(lambda: mark_worker_dead(pid))  # after the others: closers run in order
    return app


def check_port(host: str, port: int) -> None:
    """Raise FactoryError if ``host:port`` cannot be bound (in use, or not this machine's address)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            s.bind((host, int(port)))
        except OSError as e:
            raise FactoryError(f"port={port}: cannot listen on {host}:{port} ({e.strerror or e})") from None
