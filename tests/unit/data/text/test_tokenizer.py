"""The byte-level BPE tokenizer: trained deterministically, round trips, hashed; a user's file checked."""
from __future__ import annotations

import json

import pytest

from factory.data.text.tokenizer import EOS, eos_id, from_json, read_file, tokenizer_hash, train_bpe
from factory.errors import ConfigError
from tests.unit.data.text.conftest import documents


def test_trained_tokenizer_round_trips_and_has_eos():
    tok = train_bpe(documents(), 300)
    assert tok.get_vocab_size() == 300
    text = "the cat sat — ünïcode and bytes \x00 too"  # bytes never seen in training still encode
    assert tok.decode(tok.encode(text).ids) == text
    assert eos_id(tok) == tok.token_to_id(EOS) is not None
    assert len(tok.encode("the cat sat on a mat").ids) < len("the cat sat on a mat")  # merges learned


def test_training_is_deterministic_so_the_hash_names_it():
    first, second = train_bpe(documents(), 300).to_str(), train_bpe(documents(), 300).to_str()
    assert tokenizer_hash(first) == tokenizer_hash(second)
    assert tokenizer_hash(first) != tokenizer_hash(train_bpe(documents(seed=1), 300).to_str())
    assert len(tokenizer_hash(first)) == 64
    assert from_json(first).to_str() == first


def test_vocab_size_too_small_is_one_line():
    with pytest.raises(ConfigError, match=r"data.tokenizer.vocab_size: 100 is too small.*at least 257"):
        train_bpe(documents(), 100)


def test_tokenizer_file_missing_or_not_a_tokenizer(tmp_path):
    with pytest.raises(ConfigError, match=r"data.tokenizer.path: .*nope.json does not exist"):
        read_file(str(tmp_path / "nope.json"))
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ConfigError, match=r"data.tokenizer.path: .*bad.json is not a Hugging Face tokenizer.json"):
        read_file(str(tmp_path / "bad.json"))
    (tmp_path / "other.json").write_text(json.dumps({"a": 1}))
    with pytest.raises(ConfigError, match=r"other.json is not a Hugging Face tokenizer.json"):
        read_file(str(tmp_path / "other.json"))
    good = tmp_path / "tokenizer.json"
    good.write_text(train_bpe(documents(), 300).to_str())
    assert read_file(str(good)) == good.read_text()


def test_missing_eos_names_the_key():
    tok = train_bpe(documents(), 300, eos="</s>")
    with pytest.raises(ConfigError, match=r"data.tokenizer.eos_token: '<\|endoftext\|>' is not in the vocabulary"):
        eos_id(tok)
