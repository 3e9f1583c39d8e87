"""Credentials out of every file factory writes: configs, command lines, overrides, messages.

A credential is the password of a URL (``postgresql://user:PASSWORD@host/db``) or the value
of a key named like a secret (``password``, ``token``, ``api_key``, ``secret``...); both are
written as ``***``. A value taken from the environment is written as its reference, not
resolved: ``data.source.url='postgresql://u:${oc.env:DB_PASSWORD}@h/db'`` lands in
``config.yaml`` as typed, and resolves again wherever the file is read back. Writers:
``run.json`` (``factory.rundir.manifest``), ``config.yaml`` and the trackers' hyperparameters
(``resolved``), Hydra's ``.hydra/`` files (``yaml_file``, from ``factory.rundir.hydra_files``), sweep and report records,
and the log records a run writes to its ``train.log`` and console (``LogFilter``).

Only the credential is masked: a one-letter password masks the URL's password field, not
every such letter of a message.
"""
from __future__ import annotations

import contextlib
import logging
import re
import sys
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlsplit

from omegaconf import DictConfig, ListConfig, OmegaConf

MASK = "***"
#: Keys whose value is a credential (the last part of a dotted key, any case).
_SECRET_WORD = r"(?:password|passwd|secret|token|api_?key|access_?key|private_?key|credentials?)"
_SECRET_KEY = re.compile(rf"(?:^|.*[_.\-]){_SECRET_WORD}", re.IGNORECASE)
#: Keys named like a secret that hold none: a tokenizer's special tokens (``data.tokenizer.eos_token``),
#: which evaluate and the registry must read back as written.
_NOT_SECRET_KEY = re.compile(r"(?:eos|bos|pad|unk|sep|cls|mask)_?token", re.IGNORECASE)
#: ``key=value`` with a secret key, inside free text (a command line, an override list).
_SECRET_PAIR = re.compile(rf"(?P<key>\b[\w.\-]*{_SECRET_WORD})(?P<sep>=)(?P<value>[^\s,;'\"&)]+)",
                          re.IGNORECASE)
#: Environment variables whose value is a credential: ``${oc.env:DB_PASSWORD}`` stays unresolved.
_SECRET_ENV = re.compile(r"\$\{oc\.env:\s*[\w]*(?:PASS|SECRET|TOKEN|KEY|CREDENTIAL)", re.IGNORECASE)
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>]+")
#: A URL's ``user:password@`` as Hydra writes overrides in a sweep (``postgresql\://u\:pw@h``).
_ESCAPED_USERINFO = re.compile(r"(?P<head>\\?:(?://|\\/\\/)[^\s'\"<>/@:\\]*\\:)(?P<password>[^\s'\"<>@]+)@")


def url(value: str) -> str:
    """``value`` with the password of its ``scheme://user:password@host`` part as ``***``.

    A password that is an interpolation (``${oc.env:DB_PASSWORD}``) is a reference, kept.
    """
    try:
        netloc = urlsplit(value).netloc
    except ValueError:  # e.g. a malformed IPv6 host: mask what looks like user:password@
        return re.sub(r"(//[^:/@\s]*):[^@\s]+@", rf"\1:{MASK}@", value)
    userinfo, at, host = netloc.rpartition("@")
    user, colon, password = userinfo.partition(":")
    if not at or not colon or not password or "${" in password or password == MASK:
        return value
    return value.replace(netloc, f"{user}:{MASK}@{host}", 1)


def text(value: str) -> str:
    """Free text (a message, an override, a command line) with its credentials masked."""
    value = _URL.sub(lambda m: url(m.group(0)), value)
    value = _ESCAPED_USERINFO.sub(lambda m: m.group(0) if _is_reference(m.group("password"))
                                  else f"{m.group('head')}{MASK}@", value)
    return _SECRET_PAIR.sub(lambda m: m.group(0) if _is_reference(m.group("value")) or _not_secret(m.group("key"))
                            else f"{m.group('key')}{m.group('sep')}{MASK}", value)


def is_secret_key(key: str) -> bool:
    """Whether a config key (its last dotted part) names a credential: ``data.source.password``."""
    return bool(_SECRET_KEY.fullmatch(str(key).rsplit(".", 1)[-1])) and not _not_secret(key)


def _not_secret(key: str) -> bool:
    return bool(_NOT_SECRET_KEY.fullmatch(str(key).rsplit(".", 1)[-1]))


def container(value: Any, key: str = "") -> Any:
    """A plain dict/list/scalar tree with credentials masked; keys name secrets by themselves."""
    if isinstance(value, dict):
        return {k: container(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [container(v, key) for v in value]
    if is_secret_key(key) and value not in (None, "", MASK) and not isinstance(value, bool):
        return value if isinstance(value, str) and _is_reference(value) else MASK
    return text(value) if isinstance(value, str) else value


def resolved(cfg: DictConfig | ListConfig) -> Any:
    """``cfg`` resolved into plain containers, ready to write, with its credentials masked.

    A value that interpolates a credential (``${oc.env:DB_PASSWORD}``, ``${oc.env:DB_URL}``
    holding a password, a secret key's ``${...}``) is written unresolved instead.
    """
    raw = OmegaConf.to_container(cfg, resolve=False, throw_on_missing=False)
    done = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    return container(_keep_references(raw, done, ""))


def config_yaml(cfg: DictConfig) -> str:
    """``resolved(cfg)`` as YAML: the text of a run's ``config.yaml``."""
    return OmegaConf.to_yaml(OmegaConf.create(resolved(cfg)))


@contextlib.contextmanager
def argv() -> Iterator[None]:
    """``sys.argv`` masked for the duration: for trackers that record the command line when
    they open (wandb's metadata). Restored after: a launcher re-runs the real one."""
    real = sys.argv
    sys.argv = [text(arg) for arg in real]
    try:
        yield
    finally:
        sys.argv = real


def _keep_references(raw: Any, done: Any, key: str) -> Any:
    if isinstance(raw, dict) and isinstance(done, dict):
        return {k: _keep_references(raw.get(k), v, str(k)) for k, v in done.items()}
    if isinstance(raw, list) and isinstance(done, list) and len(raw) == len(done):
        return [_keep_references(r, d, key) for r, d in zip(raw, done)]
    if isinstance(raw, str) and "${" in raw and (_SECRET_ENV.search(raw) or container(done, key) != done):
        return raw
    return done


def _is_reference(value: str) -> bool:
    """An interpolation, the mask itself, or a placeholder (``password=...`` in a hint)."""
    return value.startswith("${") or value == MASK or set(value) == {"."}


def yaml_file(path: Path) -> None:
    """Rewrite the YAML file ``path`` with its credentials masked (interpolations stay as typed); no file, nothing."""
    if path.is_file():
        from factory import files

        plain = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
        files.write_text(path, OmegaConf.to_yaml(OmegaConf.create(container(plain))))


class LogFilter(logging.Filter):
    """Masks credentials in a log record's message and traceback before any handler writes it.

    On the handlers of a run (its log file, the console): what libraries log or print there
    (an MLflow "View run at http://user:password@host" line, an exception quoting a URL) is
    written with the password as ``***``.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = text(message)
        if masked != message:
            record.msg, record.args = masked, ()
        if record.exc_info and not record.exc_text:  # formatted once here, masked; formatters reuse exc_text
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = text(record.exc_text)
        return True
