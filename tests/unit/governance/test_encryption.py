"""Encryption at rest: round trips, and every way of failing to read is one line, never garbage."""
from __future__ import annotations

import base64
import os

import pyarrow as pa
import pytest

from factory.errors import DataError
from factory.governance import encryption

KEY = bytes(range(32))
TABLE = pa.table({"id": [1, 2, 3], "name": ["a", "b", "c"]})


@pytest.fixture(autouse=True)
def _no_key(monkeypatch):
    monkeypatch.delenv(encryption.KEY_ENV, raising=False)
    monkeypatch.delenv(f"{encryption.KEY_ENV}_FILE", raising=False)


def test_parquet_round_trip_and_the_file_is_not_plain(tmp_path):
    path = encryption.write_parquet(TABLE, tmp_path / "s" / "data.parquet", KEY)
    data = path.read_bytes()
    assert data.startswith(encryption.MAGIC) and b"PAR1" not in data and b"name" not in data
    assert encryption.read_parquet(path, KEY).equals(TABLE)
    assert encryption.read_parquet(path, KEY, columns=["id"]).column_names == ["id"]
    assert [p.name for p in path.parent.iterdir()] == ["data.parquet"]  # no temp file left


def test_plain_parquet_when_no_key(tmp_path):
    path = encryption.write_parquet(TABLE, tmp_path / "plain.parquet", None)
    assert path.read_bytes().startswith(b"PAR1")
    assert encryption.read_parquet(path, None).equals(TABLE)


@pytest.mark.parametrize("size", [0, 5, encryption.SEGMENT, encryption.SEGMENT + 1])
def test_bytes_round_trip_across_segments(size):
    data = os.urandom(size)
    assert encryption.decrypt(encryption.encrypt(data, KEY), KEY, "x") == data


def test_wrong_key(tmp_path):
    path = encryption.write_parquet(TABLE, tmp_path / "data.parquet", KEY)
    with pytest.raises(DataError, match=f"^{path}: encrypted with another key"):
        encryption.read_parquet(path, os.urandom(32))


def test_no_key(tmp_path):
    path = encryption.write_parquet(TABLE, tmp_path / "data.parquet", KEY)
    with pytest.raises(DataError, match=f"^{path} is encrypted: set FACTORY_DATA_KEY"):
        encryption.read_parquet(path, None)


def test_a_plain_file_read_with_a_key_is_refused(tmp_path):
    path = encryption.write_parquet(TABLE, tmp_path / "data.parquet", None)
    with pytest.raises(DataError, match=f"^{path}: not an encrypted file, but a data key was given"):
        encryption.read_parquet(path, KEY)
    with pytest.raises(DataError, match="^x: not an encrypted file"):
        encryption.decrypt(b"PAR1 plain", KEY, "x")


@pytest.mark.parametrize("cut", [1, 16, 100])
def test_truncated_or_altered(tmp_path, cut):
    path = encryption.write_parquet(TABLE, tmp_path / "data.parquet", KEY)
    data = path.read_bytes()
    path.write_bytes(data[:-cut])
    with pytest.raises(DataError, match=f"^{path}: damaged or truncated"):
        encryption.read_parquet(path, KEY)
    path.write_bytes(data[:40] + bytes([data[40] ^ 1]) + data[41:])
    with pytest.raises(DataError, match="damaged or truncated"):
        encryption.read_parquet(path, KEY)
    path.write_bytes(data[:10])
    with pytest.raises(DataError, match=f"^{path}: truncated"):
        encryption.read_parquet(path, KEY)


def test_a_file_cut_at_a_segment_boundary_fails(monkeypatch):
    monkeypatch.setattr(encryption, "SEGMENT", 8)  # three segments of 8 bytes
    data = encryption.encrypt(b"x" * 24, KEY)
    cut = data[:encryption.HEADER + 2 * (8 + encryption.TAG)]  # the last segment removed whole
    with pytest.raises(DataError, match="damaged or truncated"):
        encryption.decrypt(cut, KEY, "x")


def test_a_missing_file_and_a_file_that_is_not_parquet(tmp_path):
    with pytest.raises(DataError, match="cannot read it"):
        encryption.read_parquet(tmp_path / "nope.parquet", None)
    (tmp_path / "t.parquet").write_text("id,name\n1,a\n")
    with pytest.raises(DataError, match="not a readable Parquet file"):
        encryption.read_parquet(tmp_path / "t.parquet", None)


def test_load_key_from_base64_hex_and_files(tmp_path, monkeypatch):
    monkeypatch.setenv(encryption.KEY_ENV, base64.b64encode(KEY).decode())
    assert encryption.load_key() == KEY
    monkeypatch.setenv(encryption.KEY_ENV, KEY.hex())
    assert encryption.load_key() == KEY
    monkeypatch.setenv("OTHER_KEY", base64.urlsafe_b64encode(KEY).decode() + "\n")
    assert encryption.load_key("OTHER_KEY") == KEY
    (tmp_path / "key").write_text(KEY.hex() + "\n")
    (tmp_path / "raw").write_bytes(KEY)
    assert encryption.load_key(file=tmp_path / "key") == encryption.load_key(file=tmp_path / "raw") == KEY
    monkeypatch.delenv(encryption.KEY_ENV)
    monkeypatch.setenv(f"{encryption.KEY_ENV}_FILE", str(tmp_path / "key"))  # a mounted secret
    assert encryption.load_key() == KEY


@pytest.mark.parametrize("value", ["c2hvcnQ=", "zz" * 32, "not a key at all", base64.b64encode(b"k" * 31).decode()])
def test_a_bad_key_is_one_line_without_the_key(monkeypatch, value):
    monkeypatch.setenv(encryption.KEY_ENV, value)
    with pytest.raises(DataError) as bad:
        encryption.load_key()
    assert str(bad.value).startswith("$FACTORY_DATA_KEY: not a 32-byte key in base64 or hex")
    assert value not in str(bad.value) and "\n" not in str(bad.value)


def test_no_key_names_the_variable(tmp_path):
    with pytest.raises(DataError, match="^no data key: set FACTORY_DATA_KEY"):
        encryption.load_key()
    with pytest.raises(DataError, match="data key file .*nope: cannot read it"):
        encryption.load_key(file=tmp_path / "nope")
