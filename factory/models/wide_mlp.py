"""A plain, wide MLP whose size is set by two knobs: big enough to need sharding."""
from __future__ import annotations

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from factory.config.ranges import check_argument
from factory.config.schemas import WideMLPConf
from factory.data.spec import InputSpec


def wide_mlp_parameters(n_inputs: int, n_outputs: int, width: int, depth: int) -> int:
    """Parameters of ``WideMLP`` with ``n_inputs`` input features, categorical embeddings excluded."""
    hidden = (depth - 1) * (width * width + width) + depth * 2 * width  # blocks + LayerNorms
    return n_inputs * width + width + hidden + width * n_outputs + n_outputs


class WideMLP(nn.Module):
    """``Linear(in, width)`` then ``depth - 1`` residual blocks ``LayerNorm -> Linear -> GELU``.

    width=4096, depth=10 is about 151M parameters (605 MB in fp32; with gradients and Adam
    states, 2.4 GB of model state before activations).

    Args:
        spec: input widths and output count; categoricals are embedded (``embed_dim``).
        width: hidden width; parameters grow with ``width**2``.
        depth: number of Linear layers before the head.
        embed_dim: width of each embedded categorical.
        activation_checkpointing: recompute each block's activations in backward instead
            of storing them: less memory for about one more forward pass of compute.
    """

    def __init__(self, spec: InputSpec, width: int = 1024, depth: int = 4, embed_dim: int = 8,
                 activation_checkpointing: bool = False) -> None:
        super().__init__()
        check_argument(WideMLPConf, "depth", depth, "model.net.depth")  # a network built in Python: no config check
        self.embeddings = nn.ModuleList(nn.Embedding(n, embed_dim) for n in spec.embed_cardinalities)
        n_inputs = spec.n_numeric + embed_dim * len(spec.embed_cardinalities)
        self.stem = nn.Sequential(nn.Linear(n_inputs, width), nn.LayerNorm(width), nn.GELU())
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(width), nn.Linear(width, width), nn.GELU()) for _ in range(depth - 1))
        self.head = nn.Linear(width, spec.n_outputs)
        self.activation_checkpointing = activation_checkpointing

    def forward(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor:
        """(B, n_numeric), (B, n_embedded) -> (B, n_outputs)."""
        parts = [x_num.flatten(1)] + [emb(x_cat[:, i]) for i, emb in enumerate(self.embeddings)]
        h = self.stem(torch.cat(parts, dim=1))  # (B, width)
        for block in self.blocks:
            if self.activation_checkpointing and self.training:
                h = h + checkpoint(block, h, use_reentrant=False)
            else:
                h = h + block(h)
        return self.head(h)
