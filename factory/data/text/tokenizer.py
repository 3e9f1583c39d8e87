"""A byte-level BPE tokenizer (Hugging Face ``tokenizers``): trained here, or a file the user gives.

Byte-level, as GPT-2's: any text encodes (every byte is a token of the base alphabet), and
decoding gives the text back exactly. ``<|endoftext|>`` is a special token that closes each
document. A trained tokenizer is cached by what it was trained on and its size, so a second
run loads it instead of training again; the JSON text is what runs, checkpoints and registry
versions keep, and ``tokenizer_hash`` (its sha256) names it.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from factory.errors import ConfigError

if TYPE_CHECKING:
    from tokenizers import Tokenizer

EOS = "<|endoftext|>"
#: ``data.tokenizer`` keys and their defaults (``factory.config.schemas.TextTokenizerConf``'s).
TOKENIZER_DEFAULTS = {"vocab_size": 4096, "path": None, "eos_token": EOS}
#: The 256 bytes of the base alphabet and ``<|endoftext|>``: a smaller vocabulary has no merges.
MIN_VOCAB_SIZE = 257


def train_bpe(texts: Iterable[str], vocab_size: int, eos: str = EOS) -> "Tokenizer":
    """Train a byte-level BPE tokenizer of ``vocab_size`` tokens (fewer if the text has fewer merges).

    Deterministic: the same texts and size give the same JSON, so its hash identifies it.

    Raises:
        ConfigError: ``vocab_size`` below ``MIN_VOCAB_SIZE``.

    Example:
        >>> tok = train_bpe(["def f(x):\\n    return x\\n"] * 10, 300)
        >>> tok.decode(tok.encode("return x").ids)
        'return x'
    """
    if vocab_size < MIN_VOCAB_SIZE:
        raise ConfigError(f"data.tokenizer.vocab_size: {vocab_size} is too small; a byte-level BPE needs at least "
                          f"{MIN_VOCAB_SIZE} (256 bytes and {eos}), and a few thousand to shorten text")
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[eos], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(texts, trainer)
    return tokenizer


def from_json(text: str) -> "Tokenizer":
    """The tokenizer a ``tokenizer.json`` text describes (``Tokenizer.to_str()``'s output)."""
    from tokenizers import Tokenizer

    return Tokenizer.from_str(text)


def tokenizer_hash(json_text: str) -> str:
    """sha256 hex of a tokenizer's JSON text: the name runs and checkpoints record it by."""
    return hashlib.sha256(json_text.encode("utf-8")).hexdigest()


def eos_id(tokenizer: "Tokenizer", eos: str = EOS, where: str = "the tokenizer") -> int:
    """The id of ``eos`` in ``tokenizer``.

    Raises:
        ConfigError: the vocabulary lacks it (a tokenizer file made for another model).
    """
    found = tokenizer.token_to_id(eos)
    if found is None:
        raise ConfigError(f"data.tokenizer.eos_token: {eos!r} is not in the vocabulary of {where}; set "
                          "data.tokenizer.eos_token to its end-of-text token (e.g. '</s>')")
    return int(found)


def read_file(path: str) -> str:
    """The JSON text of the tokenizer file ``path``, checked to load.

    Raises:
        ConfigError: the file is missing, or is not a Hugging Face ``tokenizer.json``.
    """
    file = Path(path).expanduser()
    if not file.is_file():
        raise ConfigError(f"data.tokenizer.path: {path} does not exist (a Hugging Face tokenizer.json)")
    try:
        text = file.read_text(encoding="utf-8")
        json.loads(text)
        from_json(text)
    except Exception as e:  # noqa: BLE001: not UTF-8, not JSON, or tokenizers' own Exception
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"data.tokenizer.path: {path} is not a Hugging Face tokenizer.json ({reason})") from None
    return text


def cached_bpe(cache: Path, key: str, texts: Callable[[], Iterable[str]], vocab_size: int,
               eos: str = EOS) -> tuple[str, bool]:
    """The JSON text of the BPE tokenizer cached under ``cache/<key>.json``, trained and stored if absent.

    ``texts`` is called only to train. Concurrent processes (DDP ranks, two runs) train it once:
    the first holds a lock while it trains; the others wait and read the file (written atomically).

    Returns:
        ``(json_text, trained)``: ``trained`` is False when the cache had it.
    """
    from factory import files

    target = cache / f"{key}.json"
    if target.is_file():
        return target.read_text(encoding="utf-8"), False
    with files.locked(cache / f".{key}.lock"):
        if target.is_file():  # another process trained it while this one waited
            return target.read_text(encoding="utf-8"), False
        text = train_bpe(texts(), vocab_size, eos).to_str()
        files.write_text(target, text)
    return text, True

