"""A small convolutional network for image-shaped inputs (digits: 1x8x8)."""
from __future__ import annotations

import torch
from torch import nn

from factory.data.spec import InputSpec


class SmallCNN(nn.Module):
    """``(conv3x3 -> BN -> ReLU) x 2 -> maxpool`` per channel entry, then a linear head.

    Args:
        spec: must carry ``image_shape`` (C, H, W).
        channels: output channels of each block; each block halves H and W.
        dropout: dropout before the head.
    """

    def __init__(self, spec: InputSpec, channels: list[int] = (16, 32), dropout: float = 0.2) -> None:
        super().__init__()
        if not spec.image_shape:
            raise ValueError("SmallCNN needs image-shaped data (a source with image_shape, e.g. data=digits)")
        in_channels, height, width = spec.image_shape
        blocks: list[nn.Module] = []
        for out_channels in channels:
            blocks += [
                nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.BatchNorm2d(out_channels), nn.ReLU(),
                nn.Conv2d(out_channels, out_channels, 3, padding=1), nn.BatchNorm2d(out_channels), nn.ReLU(),
                nn.MaxPool2d(2, ceil_mode=True),
            ]
            in_channels = out_channels
            height, width = -(-height // 2), -(-width // 2)
        self.features = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(dropout),
                                  nn.Linear(in_channels * height * width, spec.n_outputs))

    def forward(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) images -> (B, n_outputs) logits; ``x_cat`` is unused."""
        return self.head(self.features(x_num))
