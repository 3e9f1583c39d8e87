"""Language models in the registry (factory.registry.language) without training one: the tokenizer
described and checked, the refusals (ONNX backends, export, scoring rows), what ``show`` prints.

A real run registered, loaded and generating is tested with the server (tests/integration/test_serve_lm.py).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch

from factory import registry
from factory.errors import FactoryError
from factory.registry import language
from factory.registry.display import language_fields
from factory.registry.store import Registry

TOKENIZER = json.dumps({"version": "1.0", "model": {"type": "BPE", "vocab": {"a": 0, "b": 1}}})
SPEC = {"task": "language_modeling", "vocab_size": 300, "block_size": 32, "eos_id": 299,
        "tokenizer_hash": hashlib.sha256(TOKENIZER.encode()).hexdigest()}


def checkpoint(path: Path, spec: dict = SPEC, tokenizer: str | None = TOKENIZER) -> Path:
    emb = torch.zeros(300, 8)
    torch.save({"hyper_parameters": {"spec": spec}, "tokenizer": tokenizer,
                "state_dict": {"net.wte.weight": emb, "net.lm_head.weight": emb, "net.h.0.w": torch.zeros(8, 8)}},
               path)
    return path


def test_a_language_model_config_is_told_from_a_tabular_one():
    assert language.is_language_model({"model": {"_target_": "factory.models.LanguageModel"}})
    assert not language.is_language_model({"model": {"_target_": "factory.models.SupervisedModel"}})
    assert not language.is_language_model({}) and not language.is_language_model(None)
    assert language.kind({}) == "tabular" and language.kind({"kind": "language_model"}) == "language_model"


def test_describe_writes_the_checkpoints_tokenizer_and_its_figures(tmp_path):
    staged = tmp_path / "staged"
    staged.mkdir()
    meta = language.describe("run1", tmp_path, checkpoint(tmp_path / "m.ckpt"), staged,
                             {"val/perplexity": 12.5, "test/perplexity": 13.0})
    assert (staged / "tokenizer.json").read_text() == TOKENIZER
    assert meta["kind"] == "language_model"
    assert meta["tokenizer"] == {"file": "tokenizer.json", "sha256": SPEC["tokenizer_hash"],
                                 "bytes": len(TOKENIZER.encode())}
    lm = meta["language_model"]
    assert (lm["vocab_size"], lm["block_size"], lm["eos_id"], lm["val_perplexity"]) == (300, 32, 299, 12.5)
    assert lm["parameters"] == 300 * 8 + 64  # the head tied to the embedding is counted once
    assert "profile" not in meta and "exports" not in meta


def test_describe_refuses_a_checkpoint_it_cannot_generate_with(tmp_path):
    staged = tmp_path / "staged"
    staged.mkdir()
    with pytest.raises(FactoryError, match="run r: its checkpoint holds no tokenizer"):
        language.describe("r", tmp_path, checkpoint(tmp_path / "a.ckpt", tokenizer=None), staged, {})
    with pytest.raises(FactoryError, match="not the one it was trained with"):
        language.describe("r", tmp_path, checkpoint(tmp_path / "b.ckpt", tokenizer=TOKENIZER + " "), staged, {})
    with pytest.raises(FactoryError, match="the checkpoint's spec has task 'binary'"):
        language.describe("r", tmp_path, checkpoint(tmp_path / "c.ckpt", spec={"task": "binary"}), staged, {})
    # a checkpoint without the tokenizer: the run directory's tokenizer.json is taken (and checked)
    (tmp_path / "tokenizer.json").write_text(TOKENIZER)
    assert language.describe("r", tmp_path, checkpoint(tmp_path / "d.ckpt", tokenizer=None), staged, {})["kind"]


@pytest.fixture
def reg(tmp_path) -> Path:
    """A registry holding ``lm`` v1, a language model as registration describes it (no real network)."""
    root = tmp_path / "reg"
    staged = root / ".staging" / "x"
    staged.mkdir(parents=True)
    ckpt = checkpoint(staged / "model.ckpt")
    meta = language.describe("run1", tmp_path, ckpt, staged, {"val/perplexity": 9.0})
    meta.update(run_id="run1",
                checkpoint={"file": "model.ckpt", "sha256": hashlib.sha256(ckpt.read_bytes()).hexdigest()})
    Registry(root).add("lm", staged, meta, {"name": "val/loss", "mode": "min", "val": 2.2, "test": None})
    return root


def test_onnx_backends_export_and_scoring_are_refused_in_one_line(reg):
    for backend in ("onnx", "onnx-int8"):
        with pytest.raises(FactoryError) as caught:
            registry.load("lm@1", reg, backend=backend)
        assert str(caught.value) == (f"lm@1 is a language model: backend={backend!r} applies to tabular models (an "
                                     "ONNX graph of feature columns); load it with backend='torch'")
    with pytest.raises(FactoryError, match=r"^lm@1 is a language model: ONNX export applies to tabular models"):
        registry.export("lm@1", reg)
    with pytest.raises(FactoryError, match="lm@1 is a language model: it scores no rows"):
        language.RegisteredLanguageModel(registry.get("lm@1", reg), registry.show("lm@1", reg), None, "").predict([])


def test_an_altered_tokenizer_is_refused_on_load(reg):
    version = registry.get("lm@1", reg)
    assert language.checked_tokenizer(version, version.metadata()) == TOKENIZER
    (version.path / "tokenizer.json").write_text(TOKENIZER.replace("a", "c"))
    with pytest.raises(FactoryError, match=r"lm@1: tokenizer .* changed since it was registered \(sha256 mismatch\)"):
        registry.load("lm@1", reg)
    (version.path / "tokenizer.json").unlink()
    with pytest.raises(FactoryError, match="lm@1: tokenizer .* is missing"):
        registry.load("lm@1", reg)


def test_show_says_what_it_is_and_why_it_has_no_export(reg):
    fields = language_fields(registry.show("lm@1", reg))
    assert fields["kind"] == "language model"
    assert fields["language model"] == "2,464 parameters, vocabulary 300, block 32 tokens, val perplexity 9.00"
    assert fields["tokenizer"] == f"tokenizer.json ({len(TOKENIZER)} bytes, sha256 {SPEC['tokenizer_hash'][:12]})"
    assert "ONNX export and the reference profile are for tabular models" in fields["exports"]
