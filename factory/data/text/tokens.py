"""Token files: each split's documents tokenized once into a flat binary file, memory-mapped after.

As nanoGPT's ``train.bin``: token ids back to back, each document followed by ``<|endoftext|>``,
as ``uint16`` when every id fits (vocabularies up to 65,536) else ``uint32``. A run maps the
file instead of reading it, so ranks and DataLoader workers share one copy in the page cache.

The files of one corpus, tokenizer and split sit in ``<cache_dir>/tokens/<key>/`` with a
``meta.json`` (sizes, dtype, what made them) written last: a folder without it is unfinished.
One process builds a folder under a lock while the others wait; each file is written to a
temporary name and renamed, so no reader ever maps half a file.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from factory import files
from factory.data.text.split import SPLITS

META = "meta.json"
#: Documents per ``encode_batch`` call: large enough to use every core, small enough to keep memory flat.
ENCODE_BATCH = 256


def token_dtype(vocab_size: int) -> np.dtype:
    """``uint16`` when ids ``0 .. vocab_size - 1`` fit in it, else ``uint32``."""
    return np.dtype(np.uint16) if vocab_size <= 1 << 16 else np.dtype(np.uint32)


def cache_key(fingerprint: str, tokenizer_hash: str, split: dict) -> str:
    """The folder name of one corpus x tokenizer x split settings."""
    settings = hashlib.sha256(json.dumps(split, sort_keys=True).encode()).hexdigest()
    return f"{fingerprint[:16]}-{tokenizer_hash[:16]}-{settings[:8]}"


def cached_tokens(directory: Path, documents: Callable[[], dict[str, list[str]]], tokenizer_json: str,
                  eos_id: int, vocab_size: int, record: dict) -> tuple[dict, bool]:
    """``meta.json`` of the token files in ``directory``; tokenized and written first if absent.

    Args:
        directory: ``<cache_dir>/tokens/<cache_key>``.
        documents: called only when tokenizing: each split's documents.
        tokenizer_json: the tokenizer to encode with.
        eos_id: appended after each document.
        vocab_size: picks the dtype.
        record: what made the files (fingerprint, tokenizer hash, split settings), kept in ``meta.json``.

    Returns:
        ``(meta, built)``: ``built`` is False when the cache had them.
    """
    meta_file = directory / META
    if meta_file.is_file():
        return json.loads(meta_file.read_text()), False
    with files.locked(directory.parent / f".{directory.name}.lock"):
        if meta_file.is_file():  # another rank or run built it while this one waited
            return json.loads(meta_file.read_text()), False
        from factory.data.text.tokenizer import from_json

        tokenizer = from_json(tokenizer_json)
        dtype = token_dtype(vocab_size)
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob(".*.tmp"):  # a killed builder's; none is being written while the lock is held
            stale.unlink(missing_ok=True)
        by_split = documents()
        sizes = {split: write_tokens(directory / f"{split}.bin", tokenizer, by_split[split], eos_id, dtype)
                 for split in SPLITS}
        meta = {**record, "dtype": dtype.name, "vocab_size": vocab_size, "eos_id": eos_id, "tokens": sizes,
                "documents": {split: len(by_split[split]) for split in SPLITS}}
        files.write_json(meta_file, meta)  # last: the folder is complete from here on
    return meta, True


def write_tokens(path: Path, tokenizer, documents: Iterable[str], eos_id: int, dtype: np.dtype) -> int:
    """Tokenize ``documents`` into ``path`` (atomically), each followed by ``eos_id``. Returns the token count."""
    documents = list(documents)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    count = 0
    try:
        os.fchmod(fd, 0o666 & ~files.current_umask())
        with os.fdopen(fd, "wb") as f:
            for start in range(0, len(documents), ENCODE_BATCH):
                ids: list[int] = []
                for encoding in tokenizer.encode_batch(documents[start:start + ENCODE_BATCH], add_special_tokens=False):
                    ids += encoding.ids
                    ids.append(eos_id)
                np.asarray(ids, dtype=dtype).tofile(f)
                count += len(ids)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return count


def open_tokens(path: Path, dtype: str) -> np.ndarray:
    """The token file ``path`` as a read-only ``np.memmap`` (an empty array for an empty split)."""
    if path.stat().st_size == 0:
        return np.zeros(0, dtype=dtype)  # mmap cannot map an empty file
    return np.memmap(path, dtype=dtype, mode="r")
