"""conf/data/text.yaml composes, validates and builds a TextDataModule; its defaults are the code's."""
from __future__ import annotations

import dataclasses

import yaml

from factory.config import CONFIG_DIR, compose
from factory.config.instantiate import build
from factory.config.schemas import TextSourceConf, TextTokenizerConf
from factory.data.text.corpus import SOURCE_DEFAULTS
from factory.data.text.tokenizer import TOKENIZER_DEFAULTS


def test_nested_defaults_are_one_copy():
    assert {f.name: f.default for f in dataclasses.fields(TextSourceConf)} == SOURCE_DEFAULTS
    assert {f.name: f.default for f in dataclasses.fields(TextTokenizerConf)} == TOKENIZER_DEFAULTS
    node = yaml.safe_load((CONFIG_DIR / "data" / "text.yaml").read_text())
    assert node["source"] == SOURCE_DEFAULTS and node["tokenizer"] == TOKENIZER_DEFAULTS


def test_composed_config_builds_and_caches_under_the_data_dir(corpus_dir, isolated_env):
    cfg = compose("train", ["data=text", f"data.source.path={corpus_dir}", "data.tokenizer.vocab_size=300",
                            "data.block_size=16", "data.val_fraction=0.2", "data.test_fraction=0.2"])
    dm = build(cfg.data, "data")
    dm.setup("fit")
    assert dm.input_spec.vocab_size == 300 and dm.batch_size == 32
    assert (isolated_env / "data" / "text-cache" / "tokens").is_dir()
