"""Parameters and activations of a decoder-only transformer (``factory.models.GPT``), from its config alone.

The planner measures other models on meta tensors. A language model is planned by arithmetic
instead, for two reasons: a 7B preset must plan on a laptop without its corpus or tokenizer
(``scripts/plan.py experiment=gpt_7b``), and meta tensors run ``scaled_dot_product_attention``
on its math path, which keeps the (T, T) attention matrix that the fused kernels training
uses do not. Counts follow ``factory.models.GPT``: pre-norm blocks, a 4x MLP, tied
embeddings; ``tests/unit/distributed/test_transformer_plan.py`` holds them to the real module.

Activations are the tensors autograd saves for backward, per token, as elements of 4 bytes
(``ModelSize.activations`` is fp32 bytes; the precision scales it). With ``h = n_embd``,
``a = n_head``, ``T = block_size``, one block saves, counted by storage on torch's CPU kernels:

    fused attention (CUDA's kernels; on CPU, the flash kernel, used when dropout is 0):
      ln_1 input h, its output h (c_attn's input), q/k/v 3h, the attention output h (already
      in c_proj's layout), ln_2 input h, its output h, c_fc's output 4h, GELU's output 4h = 16h
      + the LayerNorms' means and inverse deviations 4 + the log-sum-exp a
      + rotary: the rotated q and k and c_proj's contiguous input 3h
      + dropout: a mask after each residual branch 2h
    math path (CPU with dropout): 18h + 4 + 3aT
      (copies of q, k and v replace c_attn's output; the probabilities, their dropout mask and
      the dropped probabilities are (T, T) per head)

Above the blocks: the embedding's indices (int64: 2), its dropout mask (h), the final
LayerNorm's input and output and statistics (2h + 2) and the log-probabilities of the
vocabulary (V), plus, as the planner adds for every model, the two largest tensors backward
holds at once (the gradients of the logits and the log-probabilities, 2V). With activation
checkpointing a block keeps only its input (h) and one block is recomputed at a time in
backward. In 16-bit training the loss still runs in fp32: the vocabulary-sized tensors keep 4 bytes. Measured against ``GPT`` on CPU: exact to the element per block and for the head.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Mapping

LANGUAGE_MODELING = "language_modeling"


@dataclass(frozen=True)
class GPTShape:
    """The sizes that fix a GPT's parameter count and activations."""

    n_layer: int
    n_head: int
    n_embd: int
    block_size: int
    vocab_size: int
    bias: bool = False           # factory.models.GPT's default
    positions: str = "learned"   # or "rotary": no position table
    dropout: float = 0.0
    activation_checkpointing: bool = False

    def parameters(self) -> int:
        """Every parameter once (the head shares the token embedding).

        >>> GPTShape(12, 12, 768, 1024, 50257).parameters()  # GPT-2 small, as nanoGPT counts it
        124439808
        """
        h = self.n_embd
        # c_attn 3h^2, attention c_proj h^2, c_fc 4h^2, MLP c_proj 4h^2; biases 3h + h + 4h + h;
        # two LayerNorms: weight and bias each (no bias: weight only).
        block = 12 * h * h + (9 * h + 4 * h if self.bias else 2 * h)
        final_norm = 2 * h if self.bias else h
        positions = self.block_size * h if self.positions == "learned" else 0
        return self.vocab_size * h + positions + self.n_layer * block + final_norm

    def largest_layer(self) -> int:
        """Most parameters one module holds: the token embedding, unless the vocabulary is small."""
        h = self.n_embd
        return max(self.vocab_size * h, 4 * h * h + (4 * h if self.bias else 0))

    def block_elements_per_token(self, fused_attention: bool) -> float:
        """Elements (of 4 bytes) one block saves for backward, per token."""
        h, a = self.n_embd, self.n_head
        if not fused_attention:  # the math path: only with dropout (CPU)
            return 18 * h + 4 + 3 * a * self.block_size
        saved = 16 * h + 4 + a
        if self.positions == "rotary":
            saved += 3 * h
        if self.dropout > 0:
            saved += 2 * h
        return saved

    def activation_bytes(self, batch_size: int, fused_attention: bool, half: bool = False) -> float:
        """fp32 bytes one training step keeps for backward, for ``batch_size`` windows of ``block_size``.

        ``half``: training in 16 bits, where the planner halves every activation; the loss still
        runs in fp32 (``LanguageModel`` upcasts the logits), so the vocabulary-sized tensors are
        counted twice here to come out at 4 bytes.
        """
        h, v = self.n_embd, self.vocab_size * (2 if half else 1)
        block = self.block_elements_per_token(fused_attention)
        if self.activation_checkpointing:
            layers = self.n_layer * h + block  # inputs kept, one block recomputed at a time
        else:
            layers = self.n_layer * block
        # the embedding's indices (int64) and dropout mask; the final norm; log-probs and 2 gradients
        head = 2 + (h if self.dropout > 0 else 0) + 2 * h + 2 + 3 * v
        return 4.0 * batch_size * self.block_size * (layers + head)


def is_language_model(spec: Any) -> bool:
    """Whether a data spec (an object or its ``to_dict()``) is a language model's."""
    task = spec.get("task") if isinstance(spec, Mapping) else getattr(spec, "task", None)
    return task == LANGUAGE_MODELING


def gpt_shape(net: Any, spec: Any) -> GPTShape:
    """The shape a ``model.net`` config (``factory.models.GPT``) builds for a language-model spec.

    Args:
        net: the ``model.net`` node: ``n_layer``, ``n_head``, ``n_embd``, and optionally
            ``dropout``, ``bias``, ``positions``, ``activation_checkpointing``.
        spec: a ``TextSpec``, its ``to_dict()``, or ``config_spec``'s mapping:
            ``vocab_size`` and ``block_size``.
    """
    spec = spec if isinstance(spec, Mapping) else spec.to_dict()
    return GPTShape(n_layer=int(net["n_layer"]), n_head=int(net["n_head"]), n_embd=int(net["n_embd"]),
                    block_size=int(spec["block_size"]), vocab_size=int(spec["vocab_size"]),
                    bias=bool(net.get("bias", False)), positions=str(net.get("positions", "learned")),
                    dropout=float(net.get("dropout", 0.0) or 0.0),
                    activation_checkpointing=bool(net.get("activation_checkpointing", False)))


def config_spec(data: Any) -> dict | None:
    """A language model's spec from its ``data`` config, without reading the corpus; ``None`` otherwise.

    ``data.block_size``, and the vocabulary of ``data.tokenizer.path`` when it names a file,
    else ``data.tokenizer.vocab_size`` (a tokenizer trained on any corpus worth planning for
    reaches it).
    """
    if not data or "block_size" not in data or "tokenizer" not in data:
        return None
    tokenizer = data["tokenizer"]
    vocab_size = tokenizer.get("vocab_size")
    path = tokenizer.get("path")
    if path and os.path.isfile(path):
        from tokenizers import Tokenizer

        vocab_size = Tokenizer.from_file(path).get_vocab_size(with_added_tokens=True)
    return {"task": LANGUAGE_MODELING, "block_size": int(data["block_size"]), "vocab_size": int(vocab_size)}
