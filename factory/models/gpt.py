"""A decoder-only transformer (GPT-2 shape): the network of ``factory.models.LanguageModel``.

nanoGPT's model, with rotary positions as an option: pre-norm blocks (LayerNorm), causal
attention through ``F.scaled_dot_product_attention`` (flash/memory-efficient kernels where
the device has them), a 4x GELU MLP, and the output head tied to the token embedding.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.checkpoint import checkpoint

from factory.config.ranges import check_argument
from factory.config.schemas import GPTConf

INIT_STD = 0.02  # GPT-2's
ROTARY_BASE = 10000.0


def gpt_parameters(vocab_size: int, block_size: int, n_layer: int, n_embd: int, bias: bool = False,
                   positions: str = "learned") -> int:
    """Parameters of ``GPT`` (the head is tied to the token embedding: counted once).

    Per block: attention ``4 C^2`` (q, k, v, out) and MLP ``8 C^2``, two LayerNorms ``2C``, and
    with ``bias`` ``11 C`` of biases; learned positions add ``block_size * C``.
    """
    c = n_embd
    block = 12 * c * c + 2 * c + (11 * c if bias else 0)
    final_norm = c + (c if bias else 0)
    positional = block_size * c if positions == "learned" else 0
    return vocab_size * c + positional + n_layer * block + final_norm


def check_sizes(n_layer: int = 4, n_head: int = 4, n_embd: int = 128, dropout: float = 0.0,
                positions: str = "learned") -> None:
    """Refuse sizes ``GPT`` cannot build, naming the ``model.net`` key (before any training starts).

    Raises:
        ConfigError: a value out of range, ``n_embd`` not a multiple of ``n_head``, or an odd
            head width with rotary positions.
    """
    from factory.errors import ConfigError

    for key, value in (("n_layer", n_layer), ("n_head", n_head), ("n_embd", n_embd), ("dropout", dropout),
                       ("positions", positions)):
        check_argument(GPTConf, key, value, f"model.net.{key}", ConfigError)
    if n_embd % n_head:
        raise ConfigError(f"model.net.n_embd: {n_embd} is not a multiple of model.net.n_head={n_head}")
    if positions == "rotary" and (n_embd // n_head) % 2:
        raise ConfigError(f"model.net.positions: rotary needs an even head width; n_embd/n_head is {n_embd // n_head}")


class _Linear(nn.Linear):
    """``nn.Linear`` initialized GPT-2's way inside its own ``reset_parameters``: under ZeRO-3's
    ``zero.Init`` a module's parameters are sharded as soon as its constructor returns, so an
    ``apply(init)`` afterwards would only see empty shards."""

    def __init__(self, in_features: int, out_features: int, bias: bool, std: float = INIT_STD) -> None:
        self.std = std  # read by reset_parameters, which nn.Linear.__init__ calls
        super().__init__(in_features, out_features, bias=bias)

    def reset_parameters(self) -> None:
        nn.init.normal_(self.weight, mean=0.0, std=self.std)
        if self.bias is not None:
            nn.init.zeros_(self.bias)


class _Embedding(nn.Embedding):
    def reset_parameters(self) -> None:
        nn.init.normal_(self.weight, mean=0.0, std=INIT_STD)


def _rotary(x: torch.Tensor) -> torch.Tensor:
    """Rotary position embedding (RoFormer) of ``x`` (B, H, T, D), D even: channel pairs
    (i, i + D/2) rotated by angle ``t * base^(-2i/D)``. Computed in fp32 per call: a few
    T x D/2 elements, nothing to shard or cast."""
    _, _, t, d = x.shape
    inv_freq = ROTARY_BASE ** (-torch.arange(0, d, 2, device=x.device, dtype=torch.float32) / d)
    angles = torch.outer(torch.arange(t, device=x.device, dtype=torch.float32), inv_freq)  # (T, D/2)
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    x1, x2 = x[..., : d // 2], x[..., d // 2:]
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)


class CausalSelfAttention(nn.Module):
    def __init__(self, n_embd: int, n_head: int, dropout: float, bias: bool, rotary: bool, out_std: float) -> None:
        super().__init__()
        self.c_attn = _Linear(n_embd, 3 * n_embd, bias)  # q, k, v in one matmul
        self.c_proj = _Linear(n_embd, n_embd, bias, std=out_std)
        self.resid_dropout = nn.Dropout(dropout)
        self.n_head, self.dropout, self.rotary = n_head, dropout, rotary

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = (z.view(b, t, self.n_head, c // self.n_head).transpose(1, 2)  # (B, H, T, D)
                   for z in self.c_attn(x).split(c, dim=2))
        if self.rotary:
            q, k = _rotary(q), _rotary(k)
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0,
                                           is_causal=True)
        return self.resid_dropout(self.c_proj(y.transpose(1, 2).contiguous().view(b, t, c)))


class MLP(nn.Module):
    def __init__(self, n_embd: int, dropout: float, bias: bool, out_std: float) -> None:
        super().__init__()
        self.c_fc = _Linear(n_embd, 4 * n_embd, bias)
        self.gelu = nn.GELU()
        self.c_proj = _Linear(4 * n_embd, n_embd, bias, std=out_std)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    """Pre-norm: ``x + attn(ln(x))``, then ``x + mlp(ln(x))``."""

    def __init__(self, n_embd: int, n_head: int, dropout: float, bias: bool, rotary: bool, out_std: float) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(n_embd, bias=bias)
        self.attn = CausalSelfAttention(n_embd, n_head, dropout, bias, rotary, out_std)
        self.ln_2 = nn.LayerNorm(n_embd, bias=bias)
        self.mlp = MLP(n_embd, dropout, bias, out_std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """Decoder-only transformer: token ids (B, T) -> next-token logits (B, T, vocab_size).

    GPT-2 124M is ``n_layer=12, n_head=12, n_embd=768`` with ``block_size=1024`` and a vocabulary
    of 50304 (50257 padded to a multiple of 64); ``gpt_parameters`` gives the count.

    Args:
        spec: the data's ``TextSpec`` (or its dict): ``vocab_size`` and ``block_size``.
        n_layer: transformer blocks.
        n_head: attention heads; ``n_embd`` must divide by it.
        n_embd: model width; parameters grow with ``12 * n_layer * n_embd**2``.
        dropout: on attention weights, residual branches and embeddings (0 for pretraining).
        bias: biases in the Linear layers and LayerNorms (GPT-2 has them; without: a bit
            faster, as good).
        positions: ``learned`` (GPT-2's table of ``block_size`` vectors) or ``rotary`` (RoPE on
            queries and keys; no parameters).
        activation_checkpointing: recompute each block's activations in backward instead of
            storing them: memory of one block instead of all, for about a third more compute.
    """

    def __init__(self, spec: Any, n_layer: int = 4, n_head: int = 4, n_embd: int = 128, dropout: float = 0.0,
                 bias: bool = False, positions: str = "learned", activation_checkpointing: bool = False) -> None:
        super().__init__()
        check_sizes(n_layer, n_head, n_embd, dropout, positions)
        spec = _spec_dict(spec)
        self.vocab_size, self.block_size = int(spec["vocab_size"]), int(spec["block_size"])
        self.n_layer, self.n_head, self.n_embd = n_layer, n_head, n_embd
        self.bias, self.positions = bias, positions
        self.activation_checkpointing = activation_checkpointing
        out_std = INIT_STD / math.sqrt(2 * n_layer)  # GPT-2: residual projections scaled by depth
        self.wte = _Embedding(self.vocab_size, n_embd)
        self.wpe = _Embedding(self.block_size, n_embd) if positions == "learned" else None
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(Block(n_embd, n_head, dropout, bias, positions == "rotary", out_std)
                                    for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(n_embd, bias=bias)
        self.lm_head = _Linear(n_embd, self.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight  # tied (Press & Wolf 2017): one matrix in and out

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """(B, T) token ids, T <= block_size -> (B, T, vocab_size) logits."""
        t = idx.shape[1]
        if t > self.block_size:
            raise ValueError(f"sequence of {t} tokens is longer than block_size={self.block_size}")
        x = self.wte(idx)  # (B, T, C)
        if self.wpe is not None:
            x = x + self.wpe(torch.arange(t, device=idx.device))
        x = self.drop(x)
        for block in self.blocks:
            if self.activation_checkpointing and self.training:
                x = checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        return self.lm_head(self.ln_f(x))

    def num_parameters(self, non_embedding: bool = False) -> int:
        """Parameters (tied ones once); ``non_embedding``: without the position table (nanoGPT's
        count for FLOPs: the token embedding is also the head's matmul, so it stays). Under
        ZeRO-3 the full sizes, not this process's shards."""
        total = sum(getattr(p, "ds_numel", p.numel()) for p in self.parameters())
        if non_embedding and self.wpe is not None:
            total -= getattr(self.wpe.weight, "ds_numel", self.wpe.weight.numel())
        return total

    def flops_per_token(self, seq_len: int | None = None) -> float:
        """Training FLOPs (forward and backward) per token: ``6N + 12 L H Q T`` (PaLM appendix B,
        as nanoGPT's ``estimate_mfu``): 6 per parameter of the matmuls, plus attention's scores
        over a context of ``T`` (default ``block_size``). Activation recomputation not counted:
        model FLOPs, as MFU defines them."""
        t = self.block_size if seq_len is None else seq_len
        return 6.0 * self.num_parameters(non_embedding=True) + 12.0 * self.n_layer * self.n_embd * t


def _spec_dict(spec: Any) -> Mapping:
    """A ``TextSpec`` or its dict, as a mapping."""
    if isinstance(spec, Mapping):
        return spec
    if hasattr(spec, "to_dict"):
        return spec.to_dict()
    raise TypeError(f"GPT needs the data's spec (TextSpec or dict), not {type(spec).__name__}")
