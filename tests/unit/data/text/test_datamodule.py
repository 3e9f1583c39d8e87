"""TextDataModule: tokenized once and cached, split by document, batches of windows, bad input one line."""
from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from factory.data.text.tokenizer import from_json, tokenizer_hash
from factory.data.text.tokens import META, token_dtype
from factory.errors import ConfigError, DataError


def _token_dir(dm) -> Path:
    (folder,) = [p for p in (Path(dm.cache_dir) / "tokens").iterdir() if p.is_dir()]  # beside it: its lock
    return folder


def test_setup_gives_the_contract(module):
    dm = module()
    dm.setup("fit")
    spec = dm.input_spec
    assert spec.task == "language_modeling" and spec.vocab_size == 300 and spec.block_size == 16
    assert spec.tokenizer_hash == tokenizer_hash(dm.tokenizer_json) == dm.tokenizer_hash
    assert from_json(dm.tokenizer_json).id_to_token(spec.eos_id) == "<|endoftext|>"
    assert json.loads(json.dumps(spec.to_dict())) == spec.to_dict()
    assert set(dm.split_sizes) == {"train", "val", "test"} and all(n > 17 for n in dm.split_sizes.values())
    assert len(dm.fingerprint) == 64 and dm.source_name.startswith("text:")
    assert dm.batch_size == 4
    train = dm.tokens("train")
    assert isinstance(train, np.memmap) and train.dtype == np.uint16 and len(train) == dm.split_sizes["train"]
    assert (train == spec.eos_id).sum() == dm.documents["train"]  # every document closed by <|endoftext|>
    assert train[-1] == spec.eos_id
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == y.shape == (4, 16) and x.dtype == torch.int64 and torch.equal(x[:, 1:], y[:, :-1])
    assert len(dm.train_dataloader()) == max(dm.split_sizes["train"] // 16 // 4, 1)
    val = [x for x, _ in dm.val_dataloader()]
    assert [x for x, _ in dm.val_dataloader()][0].tolist() == val[0].tolist()  # fixed windows
    assert sum(len(v) for v in val) == min(256, (dm.split_sizes["val"] - 1) // 16)


def test_documents_are_split_whole(module, corpus_dir):
    dm = module()
    dm.setup()
    tok = from_json(dm.tokenizer_json)
    texts = {f.read_text() for f in corpus_dir.iterdir()}
    found = {}
    for split in ("train", "val", "test"):
        ids = dm.tokens(split).tolist()
        cuts = [i for i, t in enumerate(ids) if t == dm.input_spec.eos_id]
        starts = [0] + [c + 1 for c in cuts[:-1]]
        found[split] = {tok.decode(ids[s:c]) for s, c in zip(starts, cuts)}
        assert found[split] <= texts  # each piece between EOS tokens is one whole document
    assert found["train"].isdisjoint(found["val"]) and found["val"].isdisjoint(found["test"])
    assert sum(len(v) for v in found.values()) == len(texts)


def test_second_setup_reuses_tokenizer_and_tokens(module):
    first = module()
    first.setup()
    assert first.cache == {"tokenizer": "trained", "tokens": "built"}
    folder = _token_dir(first)
    stamps = {f.name: f.stat().st_mtime_ns for f in folder.iterdir()}
    second = module()
    second.setup()
    assert second.cache == {"tokenizer": "cached", "tokens": "cached"}
    assert {f.name: f.stat().st_mtime_ns for f in folder.iterdir()} == stamps  # nothing rewritten
    assert second.tokenizer_json == first.tokenizer_json and second.split_sizes == first.split_sizes
    other = module(split_seed=1)  # another split: another tokenizer and token files
    other.setup()
    assert other.cache == {"tokenizer": "trained", "tokens": "built"}


def test_concurrent_setups_build_once(module):
    modules = [module() for _ in range(3)]
    threads = [threading.Thread(target=dm.setup) for dm in modules]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(dm.cache["tokens"] for dm in modules) == ["built", "cached", "cached"]
    assert len({dm.tokenizer_hash for dm in modules}) == 1
    assert not [f for f in _token_dir(modules[0]).iterdir() if f.name.endswith(".tmp")]


def test_dtype_follows_the_vocabulary(module):
    assert token_dtype(300) == np.uint16 and token_dtype(65536) == np.uint16 and token_dtype(65537) == np.uint32
    dm = module()
    dm.setup()
    assert json.loads((_token_dir(dm) / META).read_text())["dtype"] == "uint16"


def test_a_tokenizer_file_is_used_as_given(module, tmp_path):
    trained = module()
    trained.setup()
    path = tmp_path / "tokenizer.json"
    path.write_text(trained.tokenizer_json)
    dm = module(tokenizer={"path": str(path)}, cache_dir=str(tmp_path / "other-cache"))
    dm.setup()
    assert dm.cache["tokenizer"] == "file" and dm.tokenizer_hash == trained.tokenizer_hash
    assert np.array_equal(dm.tokens("val"), trained.tokens("val"))
    with pytest.raises(ConfigError, match=r"data.tokenizer.path: .*missing.json does not exist"):
        module(tokenizer={"path": str(tmp_path / "missing.json")}).setup()


def test_state_dict_carries_the_tokenizer(module, tmp_path):
    dm = module()
    dm.setup()
    state = dm.state_dict()
    assert state["tokenizer"] == dm.tokenizer_json and state["tokenizer_hash"] == dm.tokenizer_hash
    # Before setup: another data config tokenizes with the checkpoint's tokenizer instead of training one.
    elsewhere = module(tokenizer={"vocab_size": 400}, cache_dir=str(tmp_path / "c2"))
    elsewhere.load_state_dict(state)
    elsewhere.setup("test")
    assert elsewhere.cache["tokenizer"] == "restored" and elsewhere.tokenizer_hash == dm.tokenizer_hash
    # After setup (a resumed fit): a different tokenizer is refused.
    changed = module(tokenizer={"vocab_size": 400})
    changed.setup()
    with pytest.raises(DataError, match="the checkpoint's tokenizer .* is not this data's"):
        changed.load_state_dict(state)


def test_split_too_small_names_split_and_sizes(module):
    with pytest.raises(DataError, match=r"data.block_size: the (val|test) split has \d+ tokens, fewer than "
                                        r"block_size \+ 1 = 2001 \(tokens: train \d+, val \d+, test \d+"):
        module(block_size=2000).setup()


def test_empty_corpus_and_bad_settings_are_one_line(module, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "a.txt").write_text("  \n")
    with pytest.raises(DataError, match=r"data.source.path: .*empty holds no text"):
        module(source={"path": str(empty)}).setup()
    with pytest.raises(DataError, match=r"data.source.max_bytes: 5 bytes leave no document"):
        module(source={"path": str(tmp_path / "corpus"), "max_bytes": 5}).setup()
    with pytest.raises(ConfigError, match=r"data.source.pth: unknown key; expected one of path"):
        module(source={"pth": "x"})
    with pytest.raises(ConfigError, match=r"data.tokenizer.vocab_size: must be >= 257"):
        module(tokenizer={"vocab_size": 10})
    with pytest.raises(ConfigError, match=r"data.block_size: must be >= 1"):
        module(block_size=0)
    with pytest.raises(ConfigError, match=r"data.val_fraction \+ data.test_fraction: must be below 1"):
        module(val_fraction=0.5, test_fraction=0.5)


def test_embedded_corpus_when_no_path(module):
    dm = module(source={"path": None, "max_bytes": 40_000}, val_fraction=0.1, test_fraction=0.1, block_size=8)
    dm.setup()
    assert dm.source_name.startswith("python-stdlib-") and dm.split_sizes["train"] > 1000
