"""Semantic segmentation of whole images: keep-ratio resize, sliding windows, class-id masks and colour overlays.

Follows the original BEiT ADE20k evaluation (mmseg): resize keeping the aspect ratio so the image fits
``(long, short)`` = ``(4 * crop, crop)`` (2560x640 for 640 crops), slide ``crop`` windows with stride ``2/3 * crop``
(426 for 640, 341 for 512), then resize the averaged logits bilinearly to the original image size and take the
arg-max.
"""

from __future__ import annotations

import colorsys
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm.auto import tqdm

from ..atomic_io import atomic_output_dir
from ._images import open_rgb
from .sliding_window import sliding_window_logits, to_pair


def default_crop_and_stride(config: Any) -> tuple[tuple[int, int], tuple[int, int]]:
    """The model's training size as crop and two thirds of it as stride (mmseg: 640/426, 512/341)."""
    size = config.image_size
    crop = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    return crop, (crop[0] * 2 // 3, crop[1] * 2 // 3)


def keep_ratio_size(width: int, height: int, scale: tuple[int, int]) -> tuple[int, int]:
    """mmcv's keep-ratio rescale: the largest size with long side <= ``max(scale)`` and short side <= ``min(scale)``."""
    long_edge, short_edge = max(scale), min(scale)
    factor = min(long_edge / max(width, height), short_edge / min(width, height))
    return int(width * factor + 0.5), int(height * factor + 0.5)


def _pixel_values(image: Image.Image, image_processor: Any, resize_scale: tuple[int, int] | None) -> torch.Tensor:
    if resize_scale is not None:
        image = image.resize(keep_ratio_size(*image.size, resize_scale), Image.Resampling.BILINEAR)
    inputs = image_processor(images=image, do_resize=False, do_center_crop=False, return_tensors="pt")
    return inputs["pixel_values"]


@torch.no_grad()
def segment_image(
    model: torch.nn.Module,
    image_processor: Any,
    image: Image.Image,
    crop_size: int | tuple[int, int] | None = None,
    stride: int | tuple[int, int] | None = None,
    resize_scale: tuple[int, int] | None | str = "auto",
    window_batch_size: int = 4,
    tta_scales: Sequence[float] | None = None,
) -> torch.Tensor:
    """Class-id map ``(height, width)`` (int64) of a PIL image at its original size.

    ``crop_size``/``stride`` default to :func:`default_crop_and_stride`. ``resize_scale``: ``"auto"`` =
    ``(4 * crop, crop)`` keep-ratio resize first, ``None`` = keep the image size, or an explicit ``(long, short)``.
    ``tta_scales``: multi-scale + flip test-time augmentation over these ratios of ``resize_scale`` (empty:
    mmseg's 0.5-1.75), see :mod:`hf_beit.inference.tta`.
    """
    if tta_scales is not None:
        from .tta import tta_class_ids

        return tta_class_ids(model, image_processor, image, tta_scales, crop_size=crop_size, stride=stride,
                             resize_scale=resize_scale, window_batch_size=window_batch_size)
    default_crop, default_stride = default_crop_and_stride(model.config)
    crop_size = to_pair(default_crop if crop_size is None else crop_size, "crop_size")
    stride = to_pair(default_stride if stride is None else stride, "stride")
    if resize_scale == "auto":
        resize_scale = (4 * min(crop_size), min(crop_size))
    parameter = next(model.parameters())
    pixel_values = _pixel_values(image.convert("RGB"), image_processor, resize_scale)
    pixel_values = pixel_values.to(parameter.device, parameter.dtype)
    logits = sliding_window_logits(model, pixel_values, crop_size, stride, window_batch_size)
    logits = F.interpolate(logits, size=(image.height, image.width), mode="bilinear", align_corners=False)
    return logits[0].argmax(dim=0).cpu()


def palette(num_colors: int) -> np.ndarray:
    """Distinct RGB colours ``(num_colors, 3)`` uint8: hues spaced by the golden ratio, alternating brightness."""
    colors = [colorsys.hsv_to_rgb((i * 0.618033988749895) % 1.0, 0.65 + 0.35 * (i % 2), 0.7 + 0.3 * ((i // 2) % 2))
              for i in range(num_colors)]
    return (np.asarray(colors).reshape(-1, 3) * 255).round().astype(np.uint8)


def mask_image(class_ids: torch.Tensor | np.ndarray, num_labels: int) -> Image.Image:
    """Class-id mask as a greyscale PNG-ready image (8-bit for <= 256 classes, else 16-bit)."""
    ids = np.asarray(class_ids)
    if num_labels <= 256:
        return Image.fromarray(ids.astype(np.uint8))
    return Image.fromarray(ids.astype(np.uint16))


def overlay_image(image: Image.Image, class_ids: torch.Tensor | np.ndarray, num_labels: int,
                  alpha: float = 0.5) -> Image.Image:
    """Blend the class colours over the image (``alpha`` = weight of the colours)."""
    coloured = Image.fromarray(palette(num_labels)[np.asarray(class_ids)])
    return Image.blend(image.convert("RGB"), coloured, alpha)


def _output_stems(paths: Sequence[Path]) -> list[str]:
    used: dict[str, int] = {}
    stems = []
    for path in paths:
        stem = path.stem
        used[stem] = used.get(stem, 0) + 1
        stems.append(stem if used[stem] == 1 else f"{stem}-{used[stem]}")
    return stems


def segment_files(
    model: torch.nn.Module,
    image_processor: Any,
    paths: Sequence[str | os.PathLike],
    output_dir: str | os.PathLike,
    overwrite: bool = False,
    progress: bool = True,
    **segment_kwargs: Any,
) -> list[Path]:
    """Write ``<stem>_mask.png`` and ``<stem>_overlay.png`` per image into ``output_dir`` (atomically).

    Repeated stems get ``-2``, ``-3``... suffixes. ``segment_kwargs`` go to :func:`segment_image`.
    Returns the written mask paths (at their final location).
    """
    paths = [Path(p) for p in paths]
    num_labels = model.config.num_labels
    stems = _output_stems(paths)
    with atomic_output_dir(output_dir, overwrite=overwrite) as tmp:
        for path, stem in tqdm(list(zip(paths, stems)), desc="segment", unit="img", disable=not progress):
            image = open_rgb(path)
            class_ids = segment_image(model, image_processor, image, **segment_kwargs)
            mask_image(class_ids, num_labels).save(tmp / f"{stem}_mask.png")
            overlay_image(image, class_ids, num_labels).save(tmp / f"{stem}_overlay.png")
    return [Path(output_dir) / f"{stem}_mask.png" for stem in stems]
