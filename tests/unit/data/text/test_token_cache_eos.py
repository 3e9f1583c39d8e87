"""The token files' cache key includes the end-of-text id: another eos_token never reads stale files."""
from __future__ import annotations

import numpy as np


def test_another_eos_token_builds_its_own_token_files(module, tmp_path):
    trained = module()
    trained.setup()
    path = tmp_path / "tokenizer.json"
    path.write_text(trained.tokenizer_json)
    cache = str(tmp_path / "shared-cache")
    first = module(tokenizer={"path": str(path)}, cache_dir=cache)
    first.setup()
    other = module(tokenizer={"path": str(path), "eos_token": "a"}, cache_dir=cache)
    other.setup()
    assert other.cache["tokens"] == "built"
    assert first.input_spec.eos_id != other.input_spec.eos_id
    # each document ends with this module's own eos id: as many of them as documents in the split
    for dm in (first, other):
        ends = int(np.count_nonzero(np.asarray(dm.tokens("train")) == dm.input_spec.eos_id))
        assert ends >= dm.documents["train"]
