"""Adaptive average pooling written as two small averaging matrices, so it exports to ONNX at any input size.

``F.adaptive_avg_pool2d`` averages, for output cell ``i`` of ``s`` along an axis of length ``n``, the input rows
``floor(i * n / s) <= r < ceil((i + 1) * n / s)``. ONNX has no such operator: the TorchScript exporter needs ``n``
divisible by ``s`` (UPerNet's pyramid pools e.g. a 20x20 map to 1, 2, 3 and 6 cells), and torch 2.14's dynamo
exporter decomposes it into gathers laid out for the traced size, so a graph with a dynamic size fails at other
sizes (onnxruntime: out-of-bounds Gather). Here each axis gets an ``(s, n)`` matrix with ``1 / count`` inside a
cell's window and 0 elsewhere, built from the input size with tensor ops, and ``P_h @ x @ P_w.T`` gives the same
result (to float rounding) for any ``n``, symbolic too. The module has no parameters or buffers, so swapping it
for ``nn.AdaptiveAvgPool2d`` changes no state-dict key.
"""

from __future__ import annotations

import torch
from torch import nn

from .configuration_beit import _pair


def averaging_matrix(length: int | torch.SymInt, cells: int, like: torch.Tensor) -> torch.Tensor:
    """``(cells, length)`` matrix whose row ``i`` averages ``floor(i*length/cells) <= r < ceil((i+1)*length/cells)``.

    ``like`` gives the dtype and device; ``length`` may be symbolic (traced input size).
    """
    cell = torch.arange(cells, device=like.device)
    start = torch.div(cell * length, cells, rounding_mode="floor")
    end = torch.div((cell + 1) * length + cells - 1, cells, rounding_mode="floor")
    row = torch.arange(length, device=like.device)
    inside = (row >= start[:, None]) & (row < end[:, None])
    return inside.to(like.dtype) / (end - start)[:, None].to(like.dtype)


def adaptive_avg_pool2d(x: torch.Tensor, output_size: int | tuple[int, int]) -> torch.Tensor:
    """Equal to ``F.adaptive_avg_pool2d(x, output_size)`` for ``(..., H, W)`` inputs, as two matrix products."""
    cells_h, cells_w = _pair(output_size)
    rows = averaging_matrix(x.shape[-2], cells_h, x)
    cols = averaging_matrix(x.shape[-1], cells_w, x)
    return rows @ x @ cols.transpose(0, 1)


class AdaptiveAvgPool2d(nn.Module):
    """Drop-in, parameterless replacement for ``nn.AdaptiveAvgPool2d`` that exports (see the module docstring)."""

    def __init__(self, output_size: int | tuple[int, int]) -> None:
        super().__init__()
        self.output_size = _pair(output_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return adaptive_avg_pool2d(x, self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"
