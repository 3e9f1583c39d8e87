"""What a language model is told about its data: vocabulary, context length, tokenizer identity."""
from __future__ import annotations

from dataclasses import asdict, dataclass

#: ``TextSpec.task``: what ``factory.models.load_model`` and the planner dispatch on.
LANGUAGE_MODELING = "language_modeling"


@dataclass(frozen=True)
class TextSpec:
    """The language-modeling counterpart of ``factory.data.spec.InputSpec``; saved in checkpoints.

    Attributes:
        vocab_size: token ids are ``0 .. vocab_size - 1`` (the tokenizer's full vocabulary).
        block_size: tokens of context per window (``x`` and ``y`` are ``(B, block_size)``).
        tokenizer_hash: sha256 hex of the tokenizer JSON the tokens were made with.
        eos_id: the id of the token that ends each document (``<|endoftext|>``).
        task: always ``"language_modeling"``.
    """

    vocab_size: int
    block_size: int
    tokenizer_hash: str
    eos_id: int
    task: str = LANGUAGE_MODELING

    def to_dict(self) -> dict:
        """Plain JSON-able fields; ``TextSpec(**spec.to_dict()) == spec``."""
        return asdict(self)
