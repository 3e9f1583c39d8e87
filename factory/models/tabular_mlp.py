"""A multilayer perceptron over standardized numerics and embedded categoricals."""
from __future__ import annotations

import torch
from torch import nn

from factory.config.ranges import check_argument
from factory.config.schemas import TabularMLPConf
from factory.data.spec import InputSpec

NORMS = {"batch": nn.BatchNorm1d, "layer": nn.LayerNorm, "none": None}


class TabularMLP(nn.Module):
    """``[x_num | embed(x_cat)] -> (Linear -> norm -> ReLU -> dropout) x depth -> Linear``.

    Args:
        spec: input widths and output count, from the DataModule.
        hidden_dims: width of each hidden layer.
        dropout: dropout after each hidden layer.
        norm: ``batch``, ``layer`` or ``none``.
        embed_dim: width of each embedded categorical.
    """

    def __init__(self, spec: InputSpec, hidden_dims: list[int] = (128, 64), dropout: float = 0.1,
                 norm: str = "batch", embed_dim: int = 8) -> None:
        super().__init__()
        # The schema's choices (NORMS has a layer for each): a config was checked already, a network built
        # in Python was not.
        check_argument(TabularMLPConf, "norm", norm, "model.net.norm")
        self.embeddings = nn.ModuleList(nn.Embedding(n, embed_dim) for n in spec.embed_cardinalities)
        width = spec.n_numeric + embed_dim * len(spec.embed_cardinalities)
        layers: list[nn.Module] = []
        for hidden in hidden_dims:
            layers.append(nn.Linear(width, hidden))
            if NORMS[norm] is not None:
                layers.append(NORMS[norm](hidden))
            layers += [nn.ReLU(), nn.Dropout(dropout)]
            width = hidden
        layers.append(nn.Linear(width, spec.n_outputs))
        self.layers = nn.Sequential(*layers)

    def forward(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor:
        """(B, n_numeric) floats and (B, n_embedded) codes -> (B, n_outputs) logits."""
        parts = [x_num] + [emb(x_cat[:, i]) for i, emb in enumerate(self.embeddings)]
        return self.layers(torch.cat(parts, dim=1) if len(parts) > 1 else x_num)
