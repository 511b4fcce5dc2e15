"""Parameter count and multiply-accumulate count of a BEiT model, computed from its config without weights."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from ..tasks import get_task


@dataclass(frozen=True)
class ModelStats:
    """Exact parameter count and forward-pass MACs (batch 1, ``image_size`` input)."""

    num_parameters: int
    gmacs: float
    image_size: int

    @property
    def params_millions(self) -> float:
        return self.num_parameters / 1e6


def compute_model_stats(config, task: str) -> ModelStats:
    """Build the model on the ``meta`` device (no memory, no weights) and count parameters and MACs.

    MACs are half the FLOPs reported by ``torch.utils.flop_counter`` (matmuls, convolutions, attention) for one
    image at ``config.image_size``.
    """
    size = config.image_size if isinstance(config.image_size, int) else config.image_size[0]
    with torch.device("meta"):
        model = get_task(task).model_class(config).eval()
    num_parameters = sum(parameter.numel() for parameter in model.parameters())
    pixel_values = torch.empty(1, config.num_channels, size, size, device="meta")
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(pixel_values=pixel_values)
    return ModelStats(num_parameters=num_parameters, gmacs=counter.get_total_flops() / 2e9, image_size=size)
