"""factory.data.curation.pii on three-row tables: keyed hashes, drops, the key, the text scan."""
from __future__ import annotations

import hashlib
import hmac

import pyarrow as pa
import pytest

from factory.data.curation import pii
from factory.errors import ConfigError, DataError

KEY = b"k" * 32
OTHER = b"o" * 32


def people() -> pa.Table:
    return pa.table({"email": ["ann@example.org", None, "ann@example.org"],
                     "name": ["Ann", "Bob", "Ann"],
                     "amount": [1.0, 2.0, 3.0]})


def test_hash_is_the_hex_hmac_sha256_of_the_value():
    assert pii.hash_value("ann@example.org", KEY) == hmac.new(KEY, b"ann@example.org", hashlib.sha256).hexdigest()
    assert pii.hash_value(None, KEY) is None
    assert pii.hash_value(5551234.0, KEY) == pii.hash_value(5551234, KEY) == pii.hash_value("5551234", KEY)


def test_hash_is_deterministic_per_key_nulls_stay_null():
    out = pii.apply(people(), {"email": "hash"}, KEY).column("email").to_pylist()
    assert out[0] == out[2] == pii.hash_value("ann@example.org", KEY)
    assert len(out[0]) == 64 and "ann" not in out[0]
    assert out[1] is None
    assert pii.apply(people(), {"email": "hash"}, KEY).equals(pii.apply(people(), {"email": "hash"}, KEY))


def test_another_key_gives_other_hashes():
    one = pii.apply(people(), {"email": "hash"}, KEY).column("email").to_pylist()
    two = pii.apply(people(), {"email": "hash"}, OTHER).column("email").to_pylist()
    assert one[0] != two[0] and one[1] is two[1] is None


def test_drop_removes_the_column_and_keeps_the_rest():
    out = pii.apply(people(), {"name": "drop", "email": "hash"}, KEY)
    assert out.column_names == ["email", "amount"]
    assert out.column("amount").to_pylist() == [1.0, 2.0, 3.0]


def test_drop_needs_no_key():
    assert pii.apply(people(), {"name": "drop"}, None).column_names == ["email", "amount"]


def test_joins_still_match_on_hashed_keys():
    orders = pa.table({"email": ["ann@example.org", "cy@example.org", "ann@example.org"], "order": [1, 2, 3]})
    left = pii.apply(people().slice(0, 1), {"email": "hash"}, KEY)
    right = pii.apply(orders, {"email": "hash"}, KEY)
    joined = left.join(right, "email")
    assert sorted(joined.column("order").to_pylist()) == [1, 3]


def test_a_record_batch_and_chunks_hash_alike():
    table = pa.concat_tables([people(), people()])
    chunked = pii.apply(table, {"email": "hash"}, KEY).column("email").to_pylist()
    batch = pii.apply(people().to_batches()[0], {"email": "hash"}, KEY).column("email").to_pylist()
    assert chunked == batch * 2


def test_a_tagged_column_the_table_lacks_is_named():
    with pytest.raises(DataError, match="'emial'.*not in the table"):
        pii.apply(people(), {"emial": "hash"}, KEY)
    assert pii.apply(people(), {"emial": "drop"}, KEY, strict=False).equals(people())


def test_an_unknown_mode_is_a_config_error():
    with pytest.raises(ConfigError, match=r"data\.curation\.columns\.email\.pii: 'mask'"):
        pii.apply(people(), {"email": "mask"}, KEY)


def test_hash_without_a_key_is_one_line():
    with pytest.raises(DataError, match="FACTORY_PII_KEY"):
        pii.apply(people(), {"email": "hash"}, None)


def test_tagged_reads_a_data_config():
    data = {"curation": {"columns": {"email": {"pii": "hash"}, "name": {"pii": "drop"}, "amount": {"min": 0}}}}
    assert pii.tagged(data) == {"email": "hash", "name": "drop"}
    assert pii.tagged({"source": {}}) == {} and pii.tagged(None) == {}


def test_key_from_env_and_from_a_file(monkeypatch, tmp_path):
    monkeypatch.setenv("FACTORY_PII_KEY", "s3cret-s3cret-s3cret-s3cret\n")
    assert pii.load_key() == b"s3cret-s3cret-s3cret-s3cret"
    path = tmp_path / "pii.key"
    path.write_text("from-a-file-from-a-file\n")
    assert pii.load_key(file=path) == b"from-a-file-from-a-file"
    monkeypatch.delenv("FACTORY_PII_KEY")
    monkeypatch.setenv("FACTORY_PII_KEY_FILE", str(path))  # a mounted secret
    assert pii.load_key() == b"from-a-file-from-a-file"


def test_a_missing_key_is_one_line_without_key_material(monkeypatch, tmp_path):
    monkeypatch.delenv("FACTORY_PII_KEY", raising=False)
    monkeypatch.delenv("FACTORY_PII_KEY_FILE", raising=False)
    with pytest.raises(DataError) as missing:
        pii.load_key()
    assert "FACTORY_PII_KEY" in str(missing.value) and "\n" not in str(missing.value)
    monkeypatch.setenv("FACTORY_PII_KEY", "short-key")
    with pytest.raises(DataError) as short:
        pii.load_key()
    assert "short-key" not in str(short.value) and "\n" not in str(short.value)
    assert "9 byte(s)" in str(short.value)
    with pytest.raises(DataError, match="nokey.txt.*cannot be read"):
        pii.load_key(file=tmp_path / "nokey.txt")


def test_scan_finds_each_kind():
    table = pa.table({"note": ["write to ann.b@example.org please", "call +1 415 555 2671 after 5",
                               "paid with 4111 1111 1111 1111"],
                      "memo": ["iban DE89 3704 0044 0532 0130 00 PAID", "IBAN GB82WEST12345698765432", None],
                      "plain": ["a", "b", "c"]})
    assert pii.scan(table, ["note", "memo", "plain"]) == {"note": {"email": 1, "phone": 1, "card": 1},
                                                          "memo": {"iban": 2}}


def test_scan_skips_look_alikes():
    table = pa.table({"note": ["card 4111 1111 1111 1112",      # fails Luhn
                               "order 1234567890123456",         # a random id: no card brand, not a phone
                               "iban DE89 3704 0044 0532 0130 01"],  # fails mod 97
                      "n": [1, 2, 3]})
    assert pii.scan(table, ["note", "n"]) == {}


def test_scan_counts_rows_not_distinct_values():
    table = pa.table({"note": ["mail ann@example.org", "mail ann@example.org", "4111111111111111"]})
    assert pii.scan(table, ["note"]) == {"note": {"email": 2, "card": 1}}
