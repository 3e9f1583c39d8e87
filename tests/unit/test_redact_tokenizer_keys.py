"""A tokenizer's special tokens (``data.tokenizer.eos_token``) are named like secrets and are none: a language
model's config.yaml must keep them, or evaluate refuses the run's data config as holding a masked credential."""
from __future__ import annotations

from factory import redact


def test_special_token_keys_are_kept_and_real_tokens_still_masked():
    data = {"tokenizer": {"eos_token": "<|endoftext|>", "pad_token": "<pad>"}, "hf_token": "hf_abc", "token": "t"}
    assert redact.container(data) == {"tokenizer": {"eos_token": "<|endoftext|>", "pad_token": "<pad>"},
                                      "hf_token": "***", "token": "***"}
    assert not redact.is_secret_key("data.tokenizer.eos_token") and redact.is_secret_key("data.source.api_token")


def test_command_lines_keep_special_tokens():
    line = "train.py data.tokenizer.eos_token=</s> data.source.api_token=abc"
    assert redact.text(line) == "train.py data.tokenizer.eos_token=</s> data.source.api_token=***"
