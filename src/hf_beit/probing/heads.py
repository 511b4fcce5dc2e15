"""One linear classifier per block, trained together (unilm's ``LinearClassifier`` over all blocks at once)."""

from __future__ import annotations

import torch
from torch import nn


class PerBlockLinearProbes(nn.Module):
    """``num_blocks`` independent linear heads ``dim -> num_labels`` applied to stacked per-block features.

    Weights start as unilm's (normal, std 0.01; zero bias). ``batch_norm=True`` puts a BatchNorm without affine
    parameters in front of every head (MAE's linear-probing recipe), which makes the probes insensitive to the
    very different feature scales of the blocks; unilm's recipe has none.
    """

    def __init__(self, num_blocks: int, dim: int, num_labels: int, batch_norm: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(num_blocks, dim, num_labels) * 0.01)
        self.bias = nn.Parameter(torch.zeros(num_blocks, 1, num_labels))
        self.norm = nn.BatchNorm1d(num_blocks * dim, affine=False) if batch_norm else None

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """``(num_blocks, B, dim)`` features -> ``(num_blocks, B, num_labels)`` logits."""
        if self.norm is not None:
            blocks, batch, dim = features.shape
            features = self.norm(features.permute(1, 0, 2).reshape(batch, -1)).reshape(batch, blocks, dim)
            features = features.permute(1, 0, 2)
        return torch.baddbmm(self.bias, features, self.weight)
