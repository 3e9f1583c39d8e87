"""The corpus every Python installation ships: the standard library's sources and pydoc's topics.

``data.source.path: null`` trains on it, so a language model trains on a fresh machine with
no download. Each ``.py`` file of the standard library (``sysconfig``'s ``stdlib`` path; test
folders, ``site-packages`` and ``__pycache__`` left out) is a document, and so is each entry of
``pydoc_data.topics`` (the language reference's help topics, English prose).

Documents come in a fixed shuffle (by the sha256 of their names), so a corpus capped by
``source.max_bytes`` samples the whole library instead of its first packages alphabetically.
Its content, and so its fingerprint, is that of the running Python's version.
"""
from __future__ import annotations

import hashlib
import os
import platform
import sysconfig
from pathlib import Path

from factory.data.text.corpus import FINGERPRINT_VERSION, Corpus, _capped

#: Folders of the standard library that are not it: its tests and installed packages.
SKIPPED_DIRS = frozenset({"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__"})


def embedded_corpus(max_bytes: int | None = None) -> Corpus:
    """The standard library corpus, capped at ``max_bytes`` UTF-8 bytes (None: all of it, ~12 MB)."""
    documents = [text for _, text in _capped_named(named_documents(), max_bytes)]
    digest = hashlib.sha256(f"{FINGERPRINT_VERSION}\0embedded".encode())
    for text in documents:
        data = text.encode("utf-8")
        digest.update(f"\0{len(data)}\0".encode())
        digest.update(data)
    return Corpus(f"python-stdlib-{platform.python_version()}", digest.hexdigest(), lambda: documents)


def named_documents() -> list[tuple[str, str]]:
    """``(name, text)`` of every document, in the fixed shuffle (names: ``json/decoder.py``, ``topics/if``)."""
    root = Path(sysconfig.get_paths()["stdlib"])
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS and not d.startswith("."))
        for name in sorted(files):
            if not name.endswith(".py"):
                continue
            path = Path(folder, name)
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):  # a few legacy-encoded files; the same ones everywhere
                continue
            if text.strip():
                found.append((path.relative_to(root).as_posix(), text))
    from pydoc_data.topics import topics

    found += [(f"topics/{key}", topics[key]) for key in sorted(topics) if topics[key].strip()]
    return sorted(found, key=lambda item: hashlib.sha256(item[0].encode("utf-8")).hexdigest())


def _capped_named(named: list[tuple[str, str]], max_bytes: int | None) -> list[tuple[str, str]]:
    kept = _capped([text for _, text in named], max_bytes)
    return named[: len(kept)]
