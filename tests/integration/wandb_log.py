"""Read an offline wandb run (``run-<id>.wandb``) back, to check what a run really wrote.

wandb 0.31 dropped its Python reader; the file is still its LevelDB-style log: a 7-byte
header (``:W&B``, magic 0xBEE1, version), then 32 KiB blocks of chunks, each with a CRC-32,
a length and a type (full, first, middle, last), holding ``wandb_internal_pb2.Record``s.
"""
from __future__ import annotations

import json
import struct
import time
import zlib
from pathlib import Path
from typing import Any, Iterator

BLOCK = 32 * 1024
CHUNK_HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: Path) -> Iterator[Any]:
    """Every record in the file, in order; a bad header or checksum fails the test."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    ident, magic, _version = struct.unpack("<4sHB", data[:7])
    assert (ident, magic) == (b":W&B", 0xBEE1), f"{path}: not a wandb run log"
    pos, pending = 7, b""
    while pos + CHUNK_HEADER <= len(data):
        if BLOCK - pos % BLOCK < CHUNK_HEADER:  # too little left in the block: padding
            pos += BLOCK - pos % BLOCK
            continue
        crc, length, kind = struct.unpack("<IHB", data[pos:pos + CHUNK_HEADER])
        if kind == 0:
            break
        chunk = data[pos + CHUNK_HEADER:pos + CHUNK_HEADER + length]
        assert zlib.crc32(chunk, zlib.crc32(bytes([kind]))) & 0xFFFFFFFF == crc, f"{path}: bad checksum at {pos}"
        pos += CHUNK_HEADER + length
        pending = chunk if kind in (FULL, FIRST) else pending + chunk
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            yield record


class OfflineRun:
    """The config, summary, history, saved files and artifacts of one offline run directory.

    wandb-core writes the log in its own process: ``run.finish()`` can return before the
    records reach the file, so this waits (up to ``wait`` seconds) for the run's exit record.
    """

    def __init__(self, run_dir: Path, wait: float = 30.0):
        (log,) = run_dir.glob("run-*.wandb")
        deadline = time.monotonic() + wait
        self.records = list(records(log))
        while not any(r.WhichOneof("record_type") == "exit" for r in self.records) and time.monotonic() < deadline:
            time.sleep(0.2)
            self.records = list(records(log))
        self.config: dict[str, Any] = {}
        self.summary: dict[str, Any] = {}
        self.history: list[dict[str, Any]] = []
        self.files: list[str] = []
        self.artifacts = []
        self.exit_code: int | None = None
        for record in self.records:
            kind = record.WhichOneof("record_type")
            if kind == "run":
                self.config.update(_items(record.run.config.update))
            elif kind == "config":
                self.config.update(_items(record.config.update))
            elif kind == "summary":
                _merge(self.summary, record.summary.update)
            elif kind == "history":
                self.history.append(_items(record.history.item))
            elif kind == "files":
                self.files += [f.path for f in record.files.files]
            elif kind == "artifact":
                self.artifacts.append(record.artifact)
            elif kind == "exit":
                self.exit_code = record.exit.exit_code


def _key(item) -> list[str]:
    return list(item.nested_key) if item.nested_key else [item.key]


def _items(items) -> dict[str, Any]:
    return {"/".join(_key(i)): json.loads(i.value_json) for i in items}


def _merge(target: dict, items) -> None:
    for item in items:
        *parents, leaf = _key(item)
        node = target
        for name in parents:
            node = node.setdefault(name, {})
        node[leaf] = json.loads(item.value_json)
