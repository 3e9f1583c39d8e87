"""Optional bearer-token auth: ``Authorization: Bearer <token>`` against a list of tokens.

Tokens come from ``auth.tokens_file`` (one per line; blank lines and ``#`` comments
skipped), else ``$FACTORY_SERVE_TOKENS`` (comma-separated); with neither, the server is
open. The check is an ASGI middleware in front of every route, so a request without a
valid token is answered 401 before any handler (or the scoring path and its request log)
sees it. The given token is compared with every known token by ``hmac.compare_digest``
(constant time, and no early exit on the first match), and no token is ever logged.

Open without a token: the health probes (``/v2/health/live``, ``/v2/health/ready``: a
Kubernetes probe carries no credentials) and the API docs (``/docs``, ``/openapi.json``:
they describe the API, not the model). ``/metrics`` needs a token like the rest (its
labels name the model); Prometheus sends one with ``authorization: {credentials: ...}``.
"""
from __future__ import annotations

import hmac
import os
from pathlib import Path

from factory.errors import ConfigError

TOKENS_ENV = "FACTORY_SERVE_TOKENS"
OPEN_PATHS = frozenset({"/v2/health/live", "/v2/health/ready", "/docs", "/docs/oauth2-redirect",
                        "/openapi.json"})


def load_tokens(tokens_file: str | None) -> list[bytes] | None:
    """The accepted tokens, or None when auth is off.

    Raises:
        ConfigError: a tokens file that is missing, unreadable or holds no token; an
            environment variable that is set but holds none.
    """
    if tokens_file:
        path = Path(tokens_file)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as e:
            raise ConfigError(f"auth.tokens_file: cannot read {path} ({e.strerror or e})") from None
        tokens = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
        if not tokens:
            raise ConfigError(f"auth.tokens_file: {path} holds no token (one per line)")
    elif TOKENS_ENV in os.environ:
        tokens = [t.strip() for t in os.environ[TOKENS_ENV].split(",") if t.strip()]
        if not tokens:
            raise ConfigError(f"${TOKENS_ENV} is set but holds no token (comma-separated); unset it to serve "
                              "without auth")
    else:
        return None
    bad = [i for i, t in enumerate(tokens) if any(c.isspace() for c in t) or not t.isascii()]
    if bad:
        raise ConfigError(f"auth: token {bad[0] + 1} holds a space or a non-ASCII character "
                          "(a bearer token cannot)")
    return [t.encode() for t in tokens]


def token_ok(header: bytes | None, tokens: list[bytes]) -> bool:
    """Whether an ``Authorization`` header value carries one of ``tokens``."""
    if not header or header[:7].lower() != b"bearer ":
        return False
    given = header[7:].strip()
    if not given:
        return False
    ok = False
    for token in tokens:  # every token compared, match or not: the time says nothing about which
        ok |= hmac.compare_digest(given, token)
    return ok


class BearerAuth:
    """ASGI middleware: 401 with ``WWW-Authenticate: Bearer`` unless the request carries a token."""

    def __init__(self, app, tokens: list[bytes]):
        self.app, self.tokens = app, tokens

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            return await self.app(scope, receive, send)
        header = next((v for k, v in scope["headers"] if k == b"authorization"), None)
        if token_ok(header, self.tokens):
            return await self.app(scope, receive, send)
        error = b"missing bearer token" if header is None else b"invalid bearer token"
        body = b'{"error":"unauthorized: ' + error + b'"}'
        await send({"type": "http.response.start", "status": 401,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"www-authenticate", b'Bearer realm="factory"')]})
        await send({"type": "http.response.body", "body": body})
