"""Frozen per-block features for linear probing, as unilm's ``run_linear_eval.py`` takes them.

unilm probes ``get_intermediate_layers``: the raw output of every block (no final norm), reduced per image to the
CLS token concatenated with the mean of the patch tokens (``--avgpool_patchtokens``, its default for BEiT).
"""

from __future__ import annotations

import torch
from torch import nn
from tqdm.auto import tqdm


def encoder_of(model: nn.Module) -> nn.Module:
    """The ``BeitModel`` inside any hf_beit model (or the model itself)."""
    return getattr(model, "beit", model)


@torch.no_grad()
def block_features(
    model: nn.Module, pixel_values: torch.Tensor, batch_size: int = 64, progress: bool = False
) -> torch.Tensor:
    """``(num_blocks, N, 2 * hidden)`` float32: ``[CLS; mean of patch tokens]`` after each block, for ``N`` images.

    ``pixel_values`` are preprocessed ``(N, C, H, W)``; the model runs in eval mode, ``batch_size`` images at a time.
    """
    encoder = encoder_of(model)
    was_training = encoder.training
    encoder.eval()
    device = next(encoder.parameters()).device
    chunks = []
    try:
        for start in tqdm(range(0, len(pixel_values), batch_size), desc="features", disable=not progress):
            batch = pixel_values[start : start + batch_size].to(device)
            _, states, _, _ = encoder.encode(batch, output_hidden_states=True)
            chunks.append(torch.stack([torch.cat([s[:, 0], s[:, 1:].mean(1)], -1) for s in states[1:]]).float().cpu())
    finally:
        encoder.train(was_training)
    return torch.cat(chunks, dim=1)
