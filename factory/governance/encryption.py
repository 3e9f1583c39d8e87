"""Encryption at rest for restricted files: AES-256-GCM through ``cryptography``.

A file is ``header | segment...``::

    header   b"FCTYENC" (7) | version 1 (1) | key id (8) | nonce prefix (8)    = 24 bytes
    segment  AES-GCM(plaintext[i*SEGMENT : (i+1)*SEGMENT]) + 16-byte tag, nonce = prefix | i (4 bytes),
             associated data = header | last-segment flag (1 byte)

Segments keep any size encryptable (one AES-GCM call takes under 2 GiB) and the last-segment
flag makes a file cut at a segment boundary fail like any other cut. The key id (the first 8
bytes of HMAC-SHA256(key, "factory key id")) tells "wrong key" from "damaged file" without
revealing anything about the key. Whole-file AES-GCM rather than Parquet modular encryption:
one key from an environment variable or a file, no KMS client to write, the same format for any
file (snapshots, quarantine tables), and every failure is one line. What it costs: a restricted
file is decrypted whole into memory before Parquet reads it (no streaming or column projection).
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import struct
import uuid
from pathlib import Path

from factory import files
from factory.errors import DataError

#: Environment variable holding the data key (32 bytes as base64 or hex).
KEY_ENV = "FACTORY_DATA_KEY"
MAGIC = b"FCTYENC"
VERSION = 1
SEGMENT = 4 << 20  # plaintext bytes per AES-GCM call: 16 bytes of tag per 4 MiB
TAG = 16
HEADER = len(MAGIC) + 1 + 8 + 8
HINT = "32 random bytes as base64 or hex (`openssl rand -base64 32` makes one)"


def load_key(env: str = KEY_ENV, file: str | os.PathLike | None = None) -> bytes:
    """The 32-byte data key from ``file`` if given, else the environment variable ``env``, else
    the file named by ``<env>_FILE`` (``FACTORY_DATA_KEY_FILE``: a mounted secret).

    Either holds the key as base64 (44 characters) or hex (64 digits); a key file may also
    hold the 32 raw bytes. The key never appears in a message.

    Raises:
        DataError: no key (naming ``env``), an unreadable file, or a value that is not 32 bytes.
    """
    if file is None and not os.environ.get(env) and os.environ.get(f"{env}_FILE"):
        file = os.environ[f"{env}_FILE"]
    if file is not None:
        try:
            raw = Path(file).read_bytes()
        except OSError as e:
            raise DataError(f"data key file {file}: cannot read it ({e.strerror})") from None
        if len(raw) == 32:
            return raw
        return _decode(raw.decode("ascii", "replace"), f"data key file {file}")
    value = os.environ.get(env)
    if not value:
        raise DataError(f"no data key: set {env} to {HINT}, or {env}_FILE to a file holding it")
    return _decode(value, f"${env}")


def _decode(text: str, where: str) -> bytes:
    text = text.strip()
    key = None
    if len(text) == 64:
        try:
            key = bytes.fromhex(text)
        except ValueError:
            pass
    if key is None:
        try:
            key = base64.b64decode(text.replace("-", "+").replace("_", "/"), validate=True)
        except (binascii.Error, ValueError):
            key = None
    if key is None or len(key) != 32:
        raise DataError(f"{where}: not a 32-byte key in base64 or hex (expected {HINT})")
    return key


def key_id(key: bytes) -> bytes:
    """8 bytes that name ``key`` without revealing it (an HMAC of a constant under the key)."""
    return hmac.new(_check_key(key), b"factory key id", hashlib.sha256).digest()[:8]


def _check_key(key: bytes) -> bytes:
    if not isinstance(key, (bytes, bytearray)) or len(key) != 32:
        raise DataError("data key: expected 32 bytes (load it with factory.governance.encryption.load_key)")
    return bytes(key)


def encrypt(data: bytes, key: bytes) -> bytes:
    """``data`` encrypted under ``key`` in the format of the module docstring."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    aes = AESGCM(_check_key(key))
    header = MAGIC + bytes([VERSION]) + key_id(key) + os.urandom(8)
    out = [header]
    view = memoryview(data)
    count = max(1, -(-len(view) // SEGMENT))
    if count >= 1 << 32:
        raise DataError(f"cannot encrypt {len(view)} bytes: over {SEGMENT << 32} bytes")
    for i in range(count):
        last = i == count - 1
        chunk = bytes(view[i * SEGMENT:(i + 1) * SEGMENT])
        out.append(aes.encrypt(header[-8:] + struct.pack(">I", i), chunk, header + bytes([last])))
    return b"".join(out)


def is_encrypted(data: bytes) -> bool:
    """Whether ``data`` (a file's first bytes suffice) starts with this module's header."""
    return bytes(data[:len(MAGIC)]) == MAGIC


def decrypt(data: bytes, key: bytes | None, where: str) -> bytes:
    """The plaintext of ``encrypt(plaintext, key)``.

    Args:
        data: the encrypted bytes.
        key: the data key; ``None`` fails with a line saying how to give one.
        where: what the bytes are (a file path), named in every error.

    Raises:
        DataError: one line naming ``where``: no key, not an encrypted file, another key,
            a damaged or truncated file. Never returns garbage: AES-GCM authenticates every segment.
    """
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    if not is_encrypted(data):
        raise DataError(f"{where}: not an encrypted file (no {MAGIC.decode()} header)")
    if len(data) < HEADER + TAG:
        raise DataError(f"{where}: truncated ({len(data)} bytes, shorter than an encrypted empty file)")
    if data[len(MAGIC)] != VERSION:
        raise DataError(f"{where}: encryption format version {data[len(MAGIC)]}, this factory reads {VERSION}")
    if key is None:
        raise DataError(f"{where} is encrypted: set {KEY_ENV} to its data key to read it")
    header = bytes(data[:HEADER])
    if not hmac.compare_digest(header[len(MAGIC) + 1:len(MAGIC) + 9], key_id(key)):
        raise DataError(f"{where}: encrypted with another key (the key given is not its data key)")
    aes = AESGCM(_check_key(key))
    body = memoryview(data)[HEADER:]
    step = SEGMENT + TAG
    count = max(1, -(-len(body) // step))
    out = []
    for i in range(count):
        chunk = bytes(body[i * step:(i + 1) * step])
        try:
            out.append(aes.decrypt(header[-8:] + struct.pack(">I", i), chunk, header + bytes([i == count - 1])))
        except InvalidTag:
            raise DataError(f"{where}: damaged or truncated (segment {i + 1} of {count} fails its "
                            "authentication check); nothing was read") from None
    return b"".join(out)


def write_parquet(table, path: str | os.PathLike, key: bytes | None) -> Path:
    """Write the ``pyarrow.Table`` as Parquet to ``path`` atomically; encrypted when ``key`` is given."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    if key is None:  # straight to a temp file: a large plain table needs no copy in memory
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            pq.write_table(table, tmp)
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())  # on disk before the rename, as factory.files does
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return path
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return files.write_bytes(path, encrypt(sink.getvalue().to_pybytes(), key))


def read_parquet(path: str | os.PathLike, key: bytes | None, columns: list[str] | None = None):
    """Read a Parquet file written by ``write_parquet`` (or any plain Parquet file when ``key`` is None).

    Raises:
        DataError: one line naming ``path``: missing, encrypted but no key, given a key but
            not encrypted (a restricted file must not be read in the clear), another key,
            damaged, or not Parquet.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot read it ({e.strerror})") from None
    if key is not None and not is_encrypted(data):
        raise DataError(f"{path}: not an encrypted file, but a data key was given: a restricted "
                        "file is only read encrypted")
    if is_encrypted(data):
        data = decrypt(data, key, str(path))
    try:
        return pq.read_table(pa.BufferReader(data), columns=columns)
    except (pa.ArrowException, OSError) as e:
        raise DataError(f"{path}: not a readable Parquet file ({str(e).splitlines()[0] if str(e) else e})") from None
