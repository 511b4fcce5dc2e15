"""Image embeddings from any BEiT model: pooled vectors or per-patch token features."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from tqdm.auto import tqdm

POOLINGS = ("mean", "cls", "none")


@torch.no_grad()
def extract_embeddings(
    model: torch.nn.Module,
    image_processor: Any,
    images: Sequence[Any],
    pooling: str = "mean",
    batch_size: int = 16,
    progress: bool = True,
) -> torch.Tensor:
    """Embed ``images`` with the BEiT encoder of ``model`` (a ``BeitModel`` or any model with a ``.beit`` encoder).

    Args:
        pooling: ``"mean"`` -> ``(N, hidden)``: for models with a mean-pooling head (``use_mean_pooling``) exactly
            what their classifier sees (LayerNorm of the mean patch token), otherwise the mean of the final patch
            tokens; ``"cls"`` -> ``(N, hidden)``: the final CLS token; ``"none"`` -> ``(N, num_patches, hidden)``:
            final patch tokens without CLS, in row-major patch-grid order.
        batch_size: images per forward pass.
        progress: show a progress bar (tqdm, on stderr) over the images, like ``predict_images``.

    Returns:
        float32 CPU tensor.
    """
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}; got {pooling!r}.")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; got {batch_size}.")
    encoder = model.base_model
    use_pooler = bool(getattr(encoder.config, "use_mean_pooling", False))
    chunks = []
    with tqdm(total=len(images), desc="embeddings", unit="img", disable=not progress) as bar:
        for start in range(0, len(images), batch_size):
            chunks.append(_embed(encoder, image_processor, images[start:start + batch_size], pooling, use_pooler))
            bar.update(len(chunks[-1]))
    if not chunks:
        raise ValueError("No images given.")
    return torch.cat(chunks)


@torch.no_grad()
def _embed(encoder: torch.nn.Module, image_processor: Any, images: Sequence[Any], pooling: str,
           use_pooler: bool) -> torch.Tensor:
    """One batch of :func:`extract_embeddings`."""
    parameter = next(encoder.parameters())
    pixel_values = image_processor(images=list(images), return_tensors="pt")["pixel_values"]
    outputs = encoder(pixel_values=pixel_values.to(parameter.device, parameter.dtype))
    tokens = outputs.last_hidden_state
    if pooling == "cls":
        chunk = tokens[:, 0]
    elif pooling == "none":
        chunk = tokens[:, 1:]
    elif use_pooler and getattr(outputs, "pooler_output", None) is not None:
        chunk = outputs.pooler_output
    else:
        chunk = tokens[:, 1:].mean(dim=1)
    return chunk.float().cpu()
