"""Attention-map visualisation: how much the CLS token attends to each patch, per head, drawn over the image."""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..atomic_io import atomic_save_image


@dataclass
class AttentionMaps:
    """CLS-to-patch attention of one layer.

    Attributes:
        maps: ``(num_heads, grid_height, grid_width)`` attention probabilities of the CLS query over the patch keys
            (each head's full row, CLS key included, sums to 1).
        image: the input image (RGB) the maps refer to.
        layer: 0-based index of the transformer block.
    """

    maps: torch.Tensor
    image: Image.Image
    layer: int

    def overlays(self, alpha: float = 0.6) -> list[Image.Image]:
        """One image per head: the map (min-max scaled, bilinear to the image size) as a heat colour over it."""
        tiles = []
        for head_map in self.maps:
            values = head_map - head_map.min()
            values = (values / values.max().clamp_min(1e-12)).numpy().astype(np.float32)
            heat = np.asarray(Image.fromarray(values).resize(self.image.size, Image.Resampling.BILINEAR))
            tiles.append(Image.blend(self.image, Image.fromarray(_heat_colours(heat)), alpha))
        return tiles

    def save(self, path: str | os.PathLike, alpha: float = 0.6, columns: int | None = None) -> Path:
        """Write a PNG grid: the image first, then one overlay per head. Returns the path."""
        tiles = [self.image, *self.overlays(alpha)]
        columns = columns or math.ceil(math.sqrt(len(tiles)))
        rows = math.ceil(len(tiles) / columns)
        width, height = self.image.size
        sheet = Image.new("RGB", (columns * width, rows * height), "white")
        for i, tile in enumerate(tiles):
            sheet.paste(tile, ((i % columns) * width, (i // columns) * height))
        return atomic_save_image(sheet, path)


def _heat_colours(values: np.ndarray) -> np.ndarray:
    """Black -> red -> yellow -> white colour scale for values in [0, 1], as uint8 RGB."""
    scaled = np.clip(values, 0.0, 1.0)[..., None] * 3.0
    rgb = np.clip(scaled - np.array([0.0, 1.0, 2.0]), 0.0, 1.0)
    return (rgb * 255).round().astype(np.uint8)


@contextlib.contextmanager
def eager_attention(model: Any) -> Iterator[None]:
    """Temporarily switch ``model`` to eager attention, then back (for models whose SDPA path returns no weights)."""
    previous = getattr(model.config, "_attn_implementation", None)
    if previous in (None, "eager"):
        yield
        return
    model.set_attn_implementation("eager")
    try:
        yield
    finally:
        model.set_attn_implementation(previous)


@torch.no_grad()
def attention_maps(model: Any, image_processor: Any, image: Image.Image, layer: int = -1) -> AttentionMaps:
    """CLS attention over the patch grid of block ``layer`` (negative counts from the end) for one image."""
    num_layers = model.config.num_hidden_layers
    if not -num_layers <= layer < num_layers:
        raise ValueError(f"layer must be in [{-num_layers}, {num_layers - 1}] for this {num_layers}-layer model; "
                         f"got {layer}.")
    image = image.convert("RGB")
    encoder = model.base_model
    parameter = next(encoder.parameters())
    pixel_values = image_processor(images=image, return_tensors="pt")["pixel_values"]
    pixel_values = pixel_values.to(parameter.device, parameter.dtype)
    attentions = encoder(pixel_values=pixel_values, output_attentions=True).attentions
    if not attentions:  # SDPA kernels give no weights (stock transformers): rerun eagerly
        with eager_attention(model):
            attentions = encoder(pixel_values=pixel_values, output_attentions=True).attentions
    if not attentions:
        raise RuntimeError("The model returned no attention weights even with eager attention.")
    patch = model.config.patch_size
    patch_h, patch_w = (patch, patch) if isinstance(patch, int) else patch
    grid = (pixel_values.shape[-2] // patch_h, pixel_values.shape[-1] // patch_w)
    cls_row = attentions[layer][0, :, 0, 1:].float().cpu()
    return AttentionMaps(cls_row.reshape(cls_row.shape[0], *grid), image, layer % num_layers)
