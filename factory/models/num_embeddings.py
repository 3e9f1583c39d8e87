"""Embeddings of continuous numeric features (Gorishniy et al., NeurIPS 2022), for any tabular network.

An MLP sees a standardized number as one coordinate; the paper shows that first mapping each
number to a small vector lets a plain MLP fit the sharp, non-monotone responses trees fit:
- ``piecewise_linear``: the value's position among quantile bins of its column, fitted on the
  train split (``factory.data.preprocessing``; ``InputSpec.bin_edges``), then a linear map;
- ``periodic``: sin/cos of trainable frequencies -> Linear -> ReLU (the paper's PLR), nothing fitted.
Both come from ``rtdl_num_embeddings``, the paper authors' implementation.
"""
from __future__ import annotations

import warnings

import torch
from torch import nn

from factory.data.spec import InputSpec
from factory.errors import ConfigError

NUM_EMBEDDINGS = ("none", "periodic", "piecewise_linear")


class NumericEmbedding(nn.Module):
    """The float block with its continuous columns embedded: ``(B, n_numeric) -> (B, width)``.

    Only the first ``spec.n_continuous`` columns (the standardized numerics) are embedded, each
    to ``dim`` values; missing indicators and one-hot columns pass through unchanged.

    Args:
        spec: input widths, and the bin edges ``piecewise_linear`` needs.
        kind: ``none`` (the block as it is), ``periodic`` or ``piecewise_linear``.
        dim: values per embedded column.

    Raises:
        ValueError: an unknown ``kind``.
        ConfigError: ``piecewise_linear`` with a spec that has no bin edges (an image table).

    Example:
        >>> embed = NumericEmbedding(spec, "piecewise_linear", dim=16)
        >>> hidden = nn.Linear(embed.width, 128)(embed(x_num))
    """

    def __init__(self, spec: InputSpec, kind: str = "none", dim: int = 16) -> None:
        super().__init__()
        if kind not in NUM_EMBEDDINGS:
            raise ValueError(f"num_embedding: {kind!r} is not one of {', '.join(NUM_EMBEDDINGS)}")
        self.n_continuous = 0 if kind == "none" else spec.n_continuous
        self.embedding = _embedding(kind, spec, dim) if self.n_continuous else None
        self.width = spec.n_numeric + self.n_continuous * (dim - 1)

    def forward(self, x_num: torch.Tensor) -> torch.Tensor:
        """(B, n_numeric) -> (B, width): embedded continuous columns, then the rest of the block."""
        if self.embedding is None:
            return x_num
        k = self.n_continuous
        return torch.cat([self.embedding(x_num[:, :k]).flatten(1), x_num[:, k:]], dim=1)  # (B, k*dim + rest)


def _embedding(kind: str, spec: InputSpec, dim: int) -> nn.Module:
    # Imported here: only a network that embeds pays for the import.
    import rtdl_num_embeddings as rtdl

    if kind == "periodic":
        # The library's defaults (48 frequencies, init scale 0.01 on standardized inputs).
        return rtdl.PeriodicEmbeddings(spec.n_continuous, dim, lite=False)
    if not spec.bin_edges:
        raise ConfigError("model.net.num_embedding: piecewise_linear needs bin edges fitted on the train split, and "
                          "this input has none (an image table); choose periodic or none")
    device = torch.empty(0).device  # meta inside the memory planner's torch.device("meta")
    # The library derives its buffers from the edges with data-dependent checks: build on the CPU, then move.
    with torch.device("cpu"), warnings.catch_warnings():
        # A 0/1 or constant column has one bin: a min-max scaling, as intended; the library warns about it.
        warnings.filterwarnings("ignore", message=r".*has just two bin edges", category=UserWarning)
        bins = [torch.tensor(edges, dtype=torch.float32) for edges in spec.bin_edges]
        # Version B (the TabM paper's): starts as a linear embedding, the piecewise part is learnt.
        embedding = rtdl.PiecewiseLinearEmbeddings(bins, dim, activation=False, version="B")
    return embedding.to(device)
