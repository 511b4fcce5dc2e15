"""Image embeddings from any BEiT model: pooled vectors or per-patch token features."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

POOLINGS = ("mean", "cls", "none")


@torch.no_grad()
def extract_embeddings(
    model: torch.nn.Module,
    image_processor: Any,
    images: Sequence[Any],
    pooling: str = "mean",
    batch_size: int = 16,
) -> torch.Tensor:
    """Embed ``images`` with the BEiT encoder of ``model`` (a ``BeitModel`` or any model with a ``.beit`` encoder).

    Args:
        pooling: ``"mean"`` -> ``(N, hidden)``: for models with a mean-pooling head (``use_mean_pooling``) exactly
            what their classifier sees (LayerNorm of the mean patch token), otherwise the mean of the final patch
            tokens; ``"cls"`` -> ``(N, hidden)``: the final CLS token; ``"none"`` -> ``(N, num_patches, hidden)``:
            final patch tokens without CLS, in row-major patch-grid order.
        batch_size: images per forward pass.

    Returns:
        float32 CPU tensor.
    """
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}; got {pooling!r}.")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; got {batch_size}.")
    encoder = model.base_model
    parameter = next(encoder.parameters())
    use_pooler = bool(getattr(encoder.config, "use_mean_pooling", False))
    chunks = []
    for start in range(0, len(images), batch_size):
        pixel_values = image_processor(images=list(images[start:start + batch_size]), return_tensors="pt")
        pixel_values = pixel_values["pixel_values"].to(parameter.device, parameter.dtype)
        outputs = encoder(pixel_values=pixel_values)
        tokens = outputs.last_hidden_state
        if pooling == "cls":
            chunk = tokens[:, 0]
        elif pooling == "none":
            chunk = tokens[:, 1:]
        elif use_pooler and getattr(outputs, "pooler_output", None) is not None:
            chunk = outputs.pooler_output
        else:
            chunk = tokens[:, 1:].mean(dim=1)
        chunks.append(chunk.float().cpu())
    if not chunks:
        raise ValueError("No images given.")
    return torch.cat(chunks)
