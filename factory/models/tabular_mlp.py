"""A multilayer perceptron over standardized (or embedded) numerics and embedded categoricals."""
from __future__ import annotations

import torch
from torch import nn

from factory.config.ranges import check_argument
from factory.config.schemas import TabularMLPConf
from factory.data.spec import InputSpec
from factory.models.num_embeddings import NumericEmbedding

NORMS = {"batch": nn.BatchNorm1d, "layer": nn.LayerNorm, "none": None}


class TabularMLP(nn.Module):
    """``[num_embed(x_num) | embed(x_cat)] -> (Linear -> norm -> ReLU -> dropout) x depth -> Linear``.

    Args:
        spec: input widths and output count, from the DataModule.
        hidden_dims: width of each hidden layer.
        dropout: dropout after each hidden layer.
        norm: ``batch``, ``layer`` or ``none``.
        embed_dim: width of each embedded categorical.
        num_embedding: ``none``, ``periodic`` or ``piecewise_linear``: how each continuous
            numeric column enters (``factory.models.num_embeddings``). The default is ``none``,
            so checkpoints saved before the option existed rebuild the same network.
        num_embedding_dim: values per embedded numeric column.
    """

    def __init__(self, spec: InputSpec, hidden_dims: list[int] = (128, 64), dropout: float = 0.1,
                 norm: str = "batch", embed_dim: int = 8, num_embedding: str = "none",
                 num_embedding_dim: int = 16) -> None:
        super().__init__()
        # The schema's choices (NORMS has a layer for each): a config was checked already, a network built
        # in Python was not.
        check_argument(TabularMLPConf, "norm", norm, "model.net.norm")
        check_argument(TabularMLPConf, "num_embedding", num_embedding, "model.net.num_embedding")
        self.numeric = NumericEmbedding(spec, num_embedding, num_embedding_dim)
        self.embeddings = nn.ModuleList(nn.Embedding(n, embed_dim) for n in spec.embed_cardinalities)
        width = self.numeric.width + embed_dim * len(spec.embed_cardinalities)
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
        x_num = self.numeric(x_num)  # (B, width of the numeric part)
        parts = [x_num] + [emb(x_cat[:, i]) for i, emb in enumerate(self.embeddings)]
        return self.layers(torch.cat(parts, dim=1) if len(parts) > 1 else x_num)
