"""Attention-map pictures: how much the CLS token attends to each patch, per head, over the image the model saw."""

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
from PIL import Image, ImageDraw, ImageFont

from ..atomic_io import atomic_save_image

_CAPTION = 14  # pixel height of the caption band under each tile
_SCALE_WIDTH = 48  # width of the colour-scale panel


@dataclass
class AttentionMaps:
    """CLS-to-patch attention of one layer.

    Attributes:
        maps: ``(num_heads, grid_height, grid_width)`` attention probabilities of the CLS query over the patch keys
            (each head's full row, CLS key included, sums to 1).
        image: the image as the model saw it (resized and cropped by the processor, reconstructed from the pixel
            values), so patch ``(i, j)`` of a map covers patch ``(i, j)`` of this image.
        layer: 0-based index of the transformer block.
    """

    maps: torch.Tensor
    image: Image.Image
    layer: int

    def overlays(self, alpha: float = 0.6) -> list[Image.Image]:
        """One image per head: the map, min-max scaled and enlarged patch by patch (nearest), as heat over it."""
        tiles = []
        for head_map in self.maps:
            heat = Image.fromarray(_heat_colours(_unit(head_map))).resize(self.image.size, Image.Resampling.NEAREST)
            tiles.append(Image.blend(self.image, heat, alpha))
        return tiles

    def save(self, path: str | os.PathLike, alpha: float = 0.6, columns: int | None = None) -> Path:
        """Write a PNG: the model's view, then one captioned overlay per head, and a colour scale. Returns the path."""
        captions = ["model input", *(f"layer {self.layer} · head {h}" for h in range(len(self.maps)))]
        tiles = [self.image, *self.overlays(alpha)]
        columns = columns or math.ceil(math.sqrt(len(tiles)))
        rows = math.ceil(len(tiles) / columns)
        width, height = self.image.size
        sheet = Image.new("RGB", (columns * width + _SCALE_WIDTH, rows * (height + _CAPTION)), "white")
        draw, font = ImageDraw.Draw(sheet), ImageFont.load_default()
        for index, (tile, caption) in enumerate(zip(tiles, captions)):
            left, top = (index % columns) * width, (index // columns) * (height + _CAPTION)
            sheet.paste(tile, (left, top))
            draw.text((left + 2, top + height + 1), caption, fill="black", font=font)
        _draw_scale(sheet, draw, font, left=columns * width, height=sheet.height)
        return atomic_save_image(sheet, path)


def _unit(values: torch.Tensor) -> np.ndarray:
    """``values`` scaled to [0, 1] (each head's lowest weight -> 0, highest -> 1)."""
    shifted = values - values.min()
    return (shifted / shifted.max().clamp_min(1e-12)).numpy().astype(np.float32)


def _heat_colours(values: np.ndarray) -> np.ndarray:
    """Black -> red -> yellow -> white colour scale for values in [0, 1], as uint8 RGB."""
    scaled = np.clip(values, 0.0, 1.0)[..., None] * 3.0
    rgb = np.clip(scaled - np.array([0.0, 1.0, 2.0]), 0.0, 1.0)
    return (rgb * 255).round().astype(np.uint8)


def _draw_scale(sheet: Image.Image, draw: ImageDraw.ImageDraw, font: Any, left: int, height: int) -> None:
    """A vertical colour bar (top: each head's highest attention, bottom: its lowest) with its labels."""
    top, bottom = 14, height - 14
    ramp = np.linspace(1.0, 0.0, max(bottom - top, 2), dtype=np.float32)[:, None].repeat(12, axis=1)
    sheet.paste(Image.fromarray(_heat_colours(ramp)), (left + 4, top))
    draw.text((left + 2, 1), "max", fill="black", font=font)
    draw.text((left + 2, bottom + 1), "min", fill="black", font=font)


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
def attention_maps(model: Any, image_processor: Any, image: Any, layer: int = -1) -> AttentionMaps:
    """CLS attention over the patch grid of block ``layer`` (negative counts from the end) for one image.

    ``image`` is whatever the processor takes (a PIL image, an array, a file path).
    """
    num_layers = model.config.num_hidden_layers
    if not -num_layers <= layer < num_layers:
        raise ValueError(f"layer must be in [{-num_layers}, {num_layers - 1}] for this {num_layers}-layer model; "
                         f"got {layer}.")
    encoder = model.base_model
    parameter = next(encoder.parameters())
    pixel_values = image_processor(images=image, return_tensors="pt")["pixel_values"]
    attentions = encoder(pixel_values=pixel_values.to(parameter.device, parameter.dtype), output_attentions=True)
    attentions = attentions.attentions
    if not attentions:  # SDPA kernels give no weights (stock transformers): rerun eagerly
        with eager_attention(model):
            attentions = encoder(pixel_values=pixel_values.to(parameter.device, parameter.dtype),
                                 output_attentions=True).attentions
    if not attentions:
        raise RuntimeError("The model returned no attention weights even with eager attention.")
    patch = model.config.patch_size
    patch_h, patch_w = (patch, patch) if isinstance(patch, int) else patch
    grid = (pixel_values.shape[-2] // patch_h, pixel_values.shape[-1] // patch_w)
    cls_row = attentions[layer][0, :, 0, 1:].float().cpu()
    view = model_view(pixel_values[0], image_processor)
    return AttentionMaps(cls_row.reshape(cls_row.shape[0], *grid), view, layer % num_layers)


def model_view(pixel_values: torch.Tensor, image_processor: Any) -> Image.Image:
    """The RGB image a ``(3, H, W)`` processed input shows: normalisation and rescaling undone."""
    values = pixel_values.float()
    if getattr(image_processor, "do_normalize", False):
        mean = torch.tensor(image_processor.image_mean, dtype=torch.float32)[:, None, None]
        std = torch.tensor(image_processor.image_std, dtype=torch.float32)[:, None, None]
        values = values * std + mean
    if getattr(image_processor, "do_rescale", False):
        values = values / image_processor.rescale_factor
    array = values.clamp(0, 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    return Image.fromarray(array, "RGB")
