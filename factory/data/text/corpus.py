"""Where a language model's text comes from: ``.txt`` and ``.jsonl`` files, read as documents.

A document is the unit the splits are cut by and that ``<|endoftext|>`` closes: a whole
``.txt`` file (or each part of it between matches of the regular expression
``source.document_separator``, e.g. ``\n{3,}``: it passes a command line intact) or one JSONL line's
``source.text_field``. Files are read in sorted path order; a directory is searched recursively.

The corpus fingerprint hashes the files' bytes and the settings that shape the documents,
without parsing them: a cached run reads each file once, to hash it.
"""
from __future__ import annotations

import glob
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from factory.errors import DataError

#: The file types ``source.path`` may name.
TEXT_SUFFIXES = (".txt", ".jsonl")
#: ``data.source`` keys and their defaults (``factory.config.schemas.TextSourceConf``'s).
SOURCE_DEFAULTS = {"path": None, "text_field": "text", "document_separator": None, "max_bytes": None}
#: Changes when what a fingerprint covers changes: caches keyed by the old one are then unused.
FINGERPRINT_VERSION = "factory-text-1"
_CHUNK = 1 << 20


@dataclass
class Corpus:
    """A source of documents, named and fingerprinted before any is read.

    Attributes:
        name: for ``run.json``'s ``data.source``.
        fingerprint: sha256 hex of the documents' content and the settings that cut them.
        read: returns the documents, in corpus order (empty and blank ones already left out).
    """

    name: str
    fingerprint: str
    read: Callable[[], list[str]]


def file_corpus(path: str, text_field: str = "text", document_separator: str | None = None,
                max_bytes: int | None = None) -> Corpus:
    """The ``.txt``/``.jsonl`` files at ``path`` (a file, a glob or a directory) as a ``Corpus``.

    Raises:
        DataError: nothing matches ``path``, or it names a file of another type.
    """
    files = resolve(path)
    if document_separator is not None:
        try:
            re.compile(document_separator)
        except re.error as e:
            raise DataError(f"data.source.document_separator: {document_separator!r} is not a regular expression "
                            f"({e})") from None
    settings = {"text_field": text_field if any(f.suffix == ".jsonl" for f in files) else None,
                "document_separator": document_separator, "max_bytes": max_bytes}
    digest = hashlib.sha256(f"{FINGERPRINT_VERSION}\0files\0{json.dumps(settings, sort_keys=True)}".encode())
    for f in files:
        digest.update(f"\0{f.suffix}\0{f.stat().st_size}\0".encode())
        with f.open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)

    def read() -> list[str]:
        documents: list[str] = []
        for f in files:
            documents += _jsonl_documents(f, text_field) if f.suffix == ".jsonl" else \
                _txt_documents(f, document_separator)
        return _capped(documents, max_bytes)

    return Corpus(f"text:{path}", digest.hexdigest(), read)


def resolve(path: str) -> list[Path]:
    """The text files ``path`` names, in sorted order (hidden files and folders left out).

    Raises:
        DataError: no ``.txt``/``.jsonl`` file matches, or a named file has another suffix.
    """
    p = Path(path).expanduser()
    suffixes = " or ".join(TEXT_SUFFIXES)
    if p.is_file():
        if p.suffix not in TEXT_SUFFIXES:
            raise DataError(f"data.source.path: {path} is not a {suffixes} file")
        return [p]
    if p.is_dir():
        found = [f for f in p.rglob("*") if not any(part.startswith(".") for part in f.relative_to(p).parts)]
    elif glob.has_magic(path):
        found = [Path(f) for f in glob.glob(str(p), recursive=True)]
    else:
        raise DataError(f"data.source.path: {path} does not exist (a {suffixes} file, a glob or a directory)")
    files = sorted(f for f in found if f.is_file() and f.suffix in TEXT_SUFFIXES)
    if not files:
        raise DataError(f"data.source.path: no {suffixes} files match {path}")
    return files


def _decode(f: Path) -> str:
    data = f.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(f"data.source.path: {f} is not UTF-8 text (byte {e.start}); convert it, "
                        "e.g. iconv -f latin1 -t utf-8") from None


def _txt_documents(f: Path, separator: str | None) -> list[str]:
    text = _decode(f)
    parts = re.split(separator, text) if separator else [text]
    return [part for part in parts if part.strip()]


def _jsonl_documents(f: Path, field: str) -> list[str]:
    documents = []
    for number, line in enumerate(_decode(f).split("\n"), 1):  # not splitlines: U+2028 may sit in a string
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"data.source.path: {f} line {number} is not JSON ({e.msg})") from None
        if not isinstance(record, dict) or field not in record:
            found = f"fields: {', '.join(list(record)[:8])}" if isinstance(record, dict) else \
                f"a JSON {type(record).__name__}, not an object"
            raise DataError(f"data.source.text_field: {f} line {number} has no {field!r} field ({found})")
        value = record[field]
        if not isinstance(value, str):
            raise DataError(f"data.source.text_field: {f} line {number}: {field!r} is a "
                            f"{type(value).__name__}, not a string")
        if value.strip():
            documents.append(value)
    return documents


def _capped(documents: list[str], max_bytes: int | None) -> list[str]:
    """The documents in order until the next would take the corpus past ``max_bytes`` UTF-8 bytes."""
    if max_bytes is None:
        return documents
    kept, total = [], 0
    for document in documents:
        total += len(document.encode("utf-8"))
        if total > max_bytes:
            break
        kept.append(document)
    return kept


def document_bytes(documents: list[str]) -> list[int]:
    """Each document's size in UTF-8 bytes."""
    return [len(d.encode("utf-8")) for d in documents]
