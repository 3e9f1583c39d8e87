"""A tamper-evident log: hash-chained JSON lines, and an anchor that holds the chain's head.

Each line is one strict-JSON object: the entry's fields plus ``prev`` (the previous line's
``hash``; 64 zeros on the first line) and ``hash`` (sha256 of the canonical JSON of the line
without ``hash``: sorted keys, no spaces, UTF-8). Editing a line breaks its hash; deleting,
inserting or reordering lines breaks the next line's ``prev``; ``verify`` names the first bad
line.

A chain alone cannot tell that lines were cut from its END: what is left is a valid chain. So
every ``append`` also rewrites ``<log without suffix>.head`` (``audit.jsonl`` -> ``audit.head``)
with the line count, byte size and last hash; ``verify`` and the next ``append`` check the log
against it. Someone who can rewrite the log can rewrite the anchor too: for evidence that
survives that, keep the head hash ``scripts/audit.py verify`` prints somewhere else (a ticket,
a commit, write-once storage) and compare it later.

Logs written before the chain (the registry's ``audit.jsonl`` of older versions) start with
unchained lines: a legacy prefix is accepted, and the first chained line's ``prev`` is the
sha256 of the prefix's bytes, so editing the prefix is detected too. The old writer could leave
a torn line (not JSON) inside that prefix: it counts as legacy (a note, not an error). An
unchained or non-JSON line after the chain has started is an error.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from factory import files
from factory.errors import DataError

GENESIS = "0" * 64
CHAIN_KEYS = ("prev", "hash")
LOCK_TIMEOUT_S = 120.0
VERIFY_LOCK_S = 10.0  # check waits this long for a writer, then reads without the lock (anchor first)


def head_path(path: str | os.PathLike) -> Path:
    """The anchor beside the log: ``audit.jsonl`` -> ``audit.head``."""
    return Path(path).with_suffix(".head")


def _lock_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.lock")


def _recover(path: Path) -> str:
    """How to get past a log that no longer matches its anchor (every refusal says it)."""
    return (f"run scripts/audit.py verify {path}, look at the log's end, then delete {head_path(path).name} "
            "to accept the log as it stands")


def canonical(obj: dict) -> bytes:
    """The bytes a line's hash covers: sorted keys, no whitespace, UTF-8."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def line_hash(line: dict) -> str:
    """sha256 (hex) of ``canonical`` of ``line`` without its ``hash``."""
    return hashlib.sha256(canonical({k: v for k, v in line.items() if k != "hash"})).hexdigest()


def append(path: str | os.PathLike, entry: dict) -> dict:
    """Append ``entry`` to the log at ``path`` as one chained line; returns it with ``prev`` and ``hash``.

    Under an inter-process lock (``.<name>.lock`` beside it); the line is fsynced before the
    anchor (``head_path``) moves to it. A last line without its newline (a writer killed
    mid-line) was never acknowledged and is cut before appending.

    Raises:
        DataError: ``entry`` uses ``prev``/``hash``, or the log no longer matches its anchor
            (its end was cut or its last line replaced): the message says how to recover
            (``scripts/audit.py verify``, then deleting the anchor accepts the log as it is).
    """
    path = Path(path)
    if clash := [k for k in CHAIN_KEYS if k in entry]:
        raise DataError(f"audit entry for {path}: {clash[0]!r} is the chain's own key")
    entry = json.loads(files.json_text(entry))  # strict JSON types: the hash covers exactly what is stored
    try:
        held = files.lock(_lock_path(path), LOCK_TIMEOUT_S, mode=0o666)
    except TimeoutError:
        raise DataError(f"audit log {path}: another writer has held its lock for over {LOCK_TIMEOUT_S:g} s") from None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a+b") as f:
            prev, lines = _tail(f, path)
            line = {**entry, "prev": prev}
            line["hash"] = line_hash(line)
            f.write(json.dumps(line, ensure_ascii=False, allow_nan=False).encode() + b"\n")
            f.flush()
            os.fsync(f.fileno())
            size = f.tell()
        files.write_json(head_path(path), {"lines": lines + 1, "bytes": size, "hash": line["hash"],
                                           "log": path.name})
    finally:
        held.release()
    return line


def _tail(f, path: Path) -> tuple[str, int]:
    """``(prev for the next line, complete lines)``, checking the anchor and cutting a torn last line."""
    size = f.seek(0, os.SEEK_END)
    head = _read_head(path)
    start, lines, last = 0, 0, None
    if head is not None:
        if size < head["bytes"]:
            raise DataError(f"audit log {path}: {size} bytes, but {head_path(path).name} recorded "
                            f"{head['bytes']}: lines were cut from its end; {_recover(path)}")
        last = _line_before(f, head["bytes"])
        if _parse(last).get("hash") != head["hash"]:
            raise DataError(f"audit log {path}: line {head['lines']} is not the line {head_path(path).name} "
                            f"recorded (replaced?); {_recover(path)}")
        start, lines = head["bytes"], head["lines"]
    f.seek(start)
    rest = f.read()
    fragment = rest.rpartition(b"\n")[2]
    if fragment:  # never acknowledged: its writer died before the newline
        f.truncate(size - len(fragment))
        rest = rest[:len(rest) - len(fragment)]
    if rest:
        lines += rest.count(b"\n")
        last = rest[:-1].rpartition(b"\n")[2]
    if last is None:
        return GENESIS, 0
    parsed = _parse(last)
    if "hash" in parsed:
        return parsed["hash"], lines
    if head is not None or any("hash" in _parse(raw) for raw in rest.splitlines()):
        raise DataError(f"audit log {path}: line {lines} has no hash: an unchained line after the chain "
                        "started (see scripts/audit.py verify)")
    return hashlib.sha256(rest).hexdigest(), lines  # a legacy prefix: the chain starts on its hash


def _line_before(f, end: int) -> bytes:
    """The line that ends (with its newline) at byte ``end``."""
    window = 4096
    while True:
        start = max(0, end - window)
        f.seek(start)
        chunk = f.read(end - start)
        cut = chunk[:-1].rfind(b"\n")
        if cut >= 0 or start == 0:
            return chunk[cut + 1:-1]
        window *= 4


def _parse(raw: bytes) -> dict:
    try:
        value = json.loads(raw, parse_constant=_reject)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _reject(name: str):
    raise ValueError(f"{name} is not JSON")


def _read_head(path: Path) -> dict | None:
    anchor = head_path(path)
    if not anchor.is_file():
        return None
    try:
        head = json.loads(anchor.read_text())
        if not (isinstance(head.get("lines"), int) and isinstance(head.get("bytes"), int)
                and isinstance(head.get("hash"), str)):
            raise ValueError("expected lines, bytes and hash")
    except (ValueError, AttributeError) as e:
        raise DataError(f"audit anchor {anchor}: not valid ({e})") from None
    return head


@dataclass(frozen=True)
class Check:
    """What ``check`` found: the first problem (None: intact), line counts and the head hash."""

    path: Path
    problem: str | None
    lines: int
    legacy: int
    head: str | None
    anchored: bool
    torn: int = 0  # legacy lines that are not JSON objects (an old writer appended after a torn line)


def check(path: str | os.PathLike) -> Check:
    """Walk the whole log; see ``verify``. ``lines`` counts every complete line, ``legacy`` the
    unchained prefix (``torn`` of them not JSON), ``head`` is the last line's hash, ``anchored``
    whether an anchor was checked. Writers may append meanwhile: see ``_read_both``."""
    path = Path(path)
    try:
        head, anchor_problem, data = _read_both(path)
    except OSError as e:
        return Check(path, f"{path}: cannot read it ({e.strerror})", 0, 0, None, False)
    parts = data.split(b"\n")
    fragment = parts.pop()
    hashes: list[str | None] = []
    legacy, torn, offset, last = 0, 0, 0, None

    def bad(number: int, why: str) -> Check:
        return Check(path, f"{path} line {number}: {why}", len(parts), legacy, last, False, torn)

    for number, raw in enumerate(parts, 1):
        try:
            line = json.loads(raw, parse_constant=_reject)
        except ValueError:
            line = None
        if not isinstance(line, dict):
            if last is not None:
                return bad(number, "not JSON" if line is None else "not a JSON object")
            torn += 1  # in the legacy prefix: the old writer appended after a torn line; the prefix hash covers it
            line = {}
        if "hash" not in line and "prev" not in line:
            if last is not None:
                return bad(number, "no prev/hash: an unchained line inside the chain (inserted?)")
            legacy += 1
            hashes.append(None)
            offset += len(raw) + 1
            continue
        if last is None:
            expected = GENESIS if legacy == 0 else hashlib.sha256(data[:offset]).hexdigest()
            after = "the start of the log" if legacy == 0 else f"the {legacy} unchained lines before it"
        else:
            expected, after = last, f"line {number - 1}'s hash"
        if line.get("hash") != line_hash(line):
            return bad(number, "hash mismatch: the line was edited")
        if line.get("prev") != expected:
            return bad(number, f"prev does not match {after}: a line was deleted, inserted or reordered here")
        last = line["hash"]
        hashes.append(last)
    if fragment:
        return bad(len(parts) + 1, "incomplete, no newline at its end (a writer died mid-line, or the line was cut)")
    if anchor_problem:
        return Check(path, anchor_problem, len(parts), legacy, last, False, torn)
    if head is not None:  # lines past the anchor's are appends made since it was read: the chain checked them
        recorded = head["lines"]
        if len(parts) < recorded:
            return Check(path, f"{path} line {len(parts) + 1}: missing: the log has {len(parts)} lines, "
                         f"{head_path(path).name} recorded {recorded} (lines were cut from its end)",
                         len(parts), legacy, last, True, torn)
        if recorded and hashes[recorded - 1] != head["hash"]:
            return Check(path, f"{path} line {recorded}: not the line {head_path(path).name} recorded as "
                         "the last (hash differs)", len(parts), legacy, last, True, torn)
    return Check(path, None, len(parts), legacy, last, head is not None, torn)


def _read_both(path: Path) -> tuple[dict | None, str | None, bytes]:
    """``(anchor, its problem, the log's bytes)`` as of one moment: under the writers' lock, so no
    append is half-written. A lock that cannot be had (a read-only folder, a writer holding it past
    ``VERIFY_LOCK_S``) is done without: the anchor is read first, so an append in between only makes
    the log longer than its anchor (accepted: the chain covers the lines past it)."""
    held = None
    if path.is_file():  # never create the folder of a log that is not there
        with contextlib.suppress(OSError, TimeoutError):
            held = files.lock(_lock_path(path), VERIFY_LOCK_S, mode=0o666)
    try:
        try:
            head, problem = _read_head(path), None
        except DataError as e:
            head, problem = None, str(e)
        return head, problem, path.read_bytes()
    finally:
        if held is not None:
            held.release()


def verify(path: str | os.PathLike) -> str | None:
    """None when the log at ``path`` is intact, else one line naming its first bad line and why.

    Detects an edited line (hash mismatch), a deleted, inserted or reordered line (prev
    mismatch), a line that is not JSON, and, with the anchor, lines cut from the end.
    """
    return check(path).problem


def read(path: str | os.PathLike) -> list[dict]:
    """The log's entries, oldest first, without ``prev``/``hash``; a torn (non-JSON) line is skipped.

    Reading does not verify: ``verify`` does.
    """
    path = Path(path)
    if not path.is_file():
        return []
    entries = []
    for raw in path.read_bytes().splitlines():
        line = _parse(raw)
        if line:
            entries.append({k: v for k, v in line.items() if k not in CHAIN_KEYS})
    return entries
