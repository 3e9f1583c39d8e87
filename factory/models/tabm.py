"""TabM: an ensemble of k MLPs that share most of their weights, trained in one pass.

Gorishniy et al., "TabM: Advancing Tabular Deep Learning with Parameter-Efficient
Ensembling", ICLR 2025 (reference: github.com/yandex-research/tabm). The network returns
one prediction per member, ``(B, k, n_outputs)``; ``SupervisedModel`` trains on the mean of
the members' losses and predicts with the mean of their predictions (probabilities for
classification), so each member learns on its own and the ensemble is what is scored.
"""
from __future__ import annotations

import torch
from torch import nn

from factory.config.ranges import check_argument
from factory.config.schemas import TabMConf
from factory.data.spec import InputSpec
from factory.models.num_embeddings import NumericEmbedding


def _uniform_(tensor: torch.Tensor, fan_in: int) -> torch.Tensor:
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)): nn.Linear's default range, for hand-made weights."""
    bound = fan_in ** -0.5
    return nn.init.uniform_(tensor, -bound, bound)


def _random_scaling_(tensor: torch.Tensor, chunks: list[int], signs: bool) -> torch.Tensor:
    """One random value per member and input chunk (a feature's columns): +-1, or N(0, 1).

    ``tensor`` is (k, sum(chunks)). A feature spread over several columns (an embedding) is
    scaled as one, so members differ per feature rather than per column.
    """
    with torch.no_grad():
        values = torch.randn(tensor.shape[0], len(chunks), device=tensor.device)
        if signs:
            values = values.sign()
        repeats = torch.tensor(chunks, device=tensor.device)
        # output_size: no data-dependent size, so this also runs on the planner's meta device
        tensor.copy_(values.repeat_interleave(repeats, dim=1, output_size=sum(chunks)))
    return tensor


class BatchEnsembleLinear(nn.Module):
    """k linear layers sharing one weight matrix (BatchEnsemble, Wen et al. 2020).

    Member i computes ``((x_i * r_i) @ W.T) * s_i + b_i``: the shared ``W`` holds nearly all
    parameters, the per-member adapters ``r`` (in), ``s`` (out) and ``b`` cost k * (in + 2 out).
    At initialization (TabM's) the members differ only by ``r`` of the first layer; ``s`` is 1,
    and every member's bias starts from the same draw.

    Shapes: (B, k, in_features) -> (B, k, out_features).
    """

    def __init__(self, in_features: int, out_features: int, k: int,
                 first_scaling: list[int] | None = None, signs: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(_uniform_(torch.empty(out_features, in_features), in_features))
        self.r = nn.Parameter(torch.ones(k, in_features))
        self.s = nn.Parameter(torch.ones(k, out_features))
        self.bias = nn.Parameter(_uniform_(torch.empty(out_features), in_features).repeat(k, 1))
        if first_scaling is not None:  # the first layer: the members' only difference at start
            _random_scaling_(self.r, first_scaling, signs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x * self.r) @ self.weight.T * self.s + self.bias


class MemberLinear(nn.Module):
    """k independent linear layers, one per member (the output heads).

    Shapes: (B, k, in_features) -> (B, k, out_features).
    """

    def __init__(self, in_features: int, out_features: int, k: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(_uniform_(torch.empty(k, in_features, out_features), in_features))
        self.bias = nn.Parameter(_uniform_(torch.empty(k, out_features), in_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (k, B, in) @ (k, in, out): one batched matmul for all members
        return (x.transpose(0, 1) @ self.weight).transpose(0, 1) + self.bias


class TabM(nn.Module):
    """``[num_embed(x_num) | embed(x_cat)]`` seen by k members -> (Linear -> ReLU -> dropout) x n_blocks -> k heads.

    Takes the same inputs as ``TabularMLP`` and returns ``(B, k, n_outputs)`` logits, one row
    per member; ``SupervisedModel`` averages them (``ensemble_mean``).

    Args:
        spec: input widths and output count, from the DataModule.
        k: ensemble members. More members average away more variance; cost grows linearly.
        d_block: width of each block.
        n_blocks: number of blocks (depth).
        dropout: dropout after each block.
        arch_type: ``tabm``: every linear layer is a ``BatchEnsembleLinear`` (per-member adapters
            everywhere); ``tabm-mini``: members differ only by a scaling of the input, the MLP
            is fully shared (fewer parameters, stronger regularization).
        embed_dim: width of each embedded categorical (shared by the members).
        num_embedding: ``none``, ``periodic`` or ``piecewise_linear``: how each continuous
            numeric column enters (``factory.models.num_embeddings``, shared by the members);
            ``piecewise_linear`` is the paper's best variant, but it makes the first layer
            ``num_embedding_dim`` times wider per numeric column (README: ``model=tabm``).
        num_embedding_dim: values per embedded numeric column.

    Example:
        >>> net = TabM(InputSpec(4, [], 2, "binary"), k=8, d_block=32)
        >>> net(torch.randn(5, 4), torch.zeros(5, 0, dtype=torch.long)).shape
        torch.Size([5, 8, 1])
    """

    def __init__(self, spec: InputSpec, k: int = 32, d_block: int = 128, n_blocks: int = 2,
                 dropout: float = 0.1, arch_type: str = "tabm", embed_dim: int = 8,
                 num_embedding: str = "none", num_embedding_dim: int = 16) -> None:
        super().__init__()
        # A network built in Python: its arguments saw no config validation.
        check_argument(TabMConf, "arch_type", arch_type, "model.net.arch_type")
        check_argument(TabMConf, "num_embedding", num_embedding, "model.net.num_embedding")
        self.k = k
        self.numeric = NumericEmbedding(spec, num_embedding, num_embedding_dim)
        self.embeddings = nn.ModuleList(nn.Embedding(n, embed_dim) for n in spec.embed_cardinalities)
        # One scaling chunk per feature: an embedded numeric's num_embedding_dim columns, each other float
        # column, an embedded categorical's embed_dim columns.
        embedded = self.numeric.n_continuous
        chunks = ([num_embedding_dim] * embedded + [1] * (spec.n_numeric - embedded)
                  + [embed_dim] * len(spec.embed_cardinalities))
        # The reference's rule: +-1 signs on raw features, N(0, 1) after numerical embeddings.
        signs = num_embedding == "none"
        d_in = sum(chunks)
        self.input_scaling: nn.Parameter | None = None
        if arch_type == "tabm-mini":
            self.input_scaling = nn.Parameter(_random_scaling_(torch.empty(k, d_in), chunks, signs))
        blocks = []
        for i in range(n_blocks):
            width = d_in if i == 0 else d_block
            linear = (BatchEnsembleLinear(width, d_block, k, chunks if i == 0 else None, signs)
                      if arch_type == "tabm" else nn.Linear(width, d_block))
            blocks.append(nn.Sequential(linear, nn.ReLU(), nn.Dropout(dropout)))
        self.blocks = nn.Sequential(*blocks)
        self.head = MemberLinear(d_block, spec.n_outputs, k)

    def forward(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor:
        """(B, n_numeric) floats and (B, n_embedded) codes -> (B, k, n_outputs) member logits."""
        x_num = self.numeric(x_num.flatten(1))  # (B, width of the numeric part); an image's pixels as columns
        parts = [x_num] + [emb(x_cat[:, i]) for i, emb in enumerate(self.embeddings)]
        x = torch.cat(parts, dim=1) if len(parts) > 1 else x_num  # (B, d_in)
        x = x.unsqueeze(1).expand(-1, self.k, -1)  # (B, k, d_in): k views, no copy
        if self.input_scaling is not None:
            x = x * self.input_scaling
        return self.head(self.blocks(x))
