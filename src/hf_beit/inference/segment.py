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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from ..atomic_io import atomic_output_dir
from ..image_loading import InvalidImageError, as_rgb, load_image
from ..pixel_budget import Geometry, PixelBudget
from ._images import CLI_BUDGET, output_stems
from ._loading import label_names
from .class_map import upsampled_class_ids
from .segment_legend import with_legend
from .sliding_window import sliding_window_logits, to_pair

ResizeScale = tuple[int, int] | None | str


def default_crop_and_stride(config: Any) -> tuple[tuple[int, int], tuple[int, int]]:
    """The model's training size as crop and two thirds of it as stride (mmseg: 640/426, 512/341)."""
    size = config.image_size
    crop = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    return crop, (crop[0] * 2 // 3, crop[1] * 2 // 3)


def keep_ratio_size(width: int, height: int, scale: tuple[int, int]) -> tuple[int, int]:
    """mmcv's keep-ratio rescale: the largest size with long side <= ``max(scale)`` and short side <= ``min(scale)``."""
    long_edge, short_edge = max(scale), min(scale)
    factor = min(long_edge / max(width, height), short_edge / min(width, height))
    return max(1, int(width * factor + 0.5)), max(1, int(height * factor + 0.5))  # mmcv would give 0 for thin images


def _windows(config: Any, crop_size: Any, stride: Any, resize_scale: ResizeScale):
    """Crop, stride and resize scale with the defaults filled in (``"auto"`` = ``(4 * crop, crop)``)."""
    default_crop, default_stride = default_crop_and_stride(config)
    crop_size = to_pair(default_crop if crop_size is None else crop_size, "crop_size")
    stride = to_pair(default_stride if stride is None else stride, "stride")
    if resize_scale == "auto":
        resize_scale = (4 * min(crop_size), min(crop_size))
    return crop_size, stride, resize_scale


def resize_geometry(resize_scale: tuple[int, int] | None) -> Geometry:
    """The geometry (:mod:`hf_beit.pixel_budget`) of the keep-ratio resize: the image is slid over at that size."""

    def geometry(height: int, width: int) -> tuple[tuple[int, int], tuple[int, int]]:
        size = (height, width) if resize_scale is None else keep_ratio_size(width, height, resize_scale)[::-1]
        return size, size

    return geometry


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
    resize_scale: ResizeScale = "auto",
    window_batch_size: int = 4,
    tta_scales: Sequence[float] | None = None,
) -> torch.Tensor:
    """Class-id map ``(height, width)`` (int64) of a PIL image at its original size.

    ``crop_size``/``stride`` default to :func:`default_crop_and_stride`. ``resize_scale``: ``"auto"`` =
    ``(4 * crop, crop)`` keep-ratio resize first, ``None`` = keep the image size, or an explicit ``(long, short)``.
    ``tta_scales``: multi-scale + flip test-time augmentation over these ratios of ``resize_scale`` (empty:
    mmseg's 0.5-1.75), see :mod:`hf_beit.inference.tta`. An image that is narrower than one patch after the resize
    raises ``ValueError``.
    """
    if tta_scales is not None:
        from .tta import tta_class_ids

        return tta_class_ids(model, image_processor, image, tta_scales, crop_size=crop_size, stride=stride,
                             resize_scale=resize_scale, window_batch_size=window_batch_size)
    crop_size, stride, resize_scale = _windows(model.config, crop_size, stride, resize_scale)
    image = as_rgb(image)
    parameter = next(model.parameters())
    pixel_values = _pixel_values(image, image_processor, resize_scale)
    patch = min(model.config.patch_size_2d)
    if min(pixel_values.shape[-2:]) < patch:
        height, width = pixel_values.shape[-2:]
        raise ValueError(f"The image is {image.width}x{image.height} pixels, {width}x{height} after resizing: "
                         f"narrower than one {patch}-pixel patch, so it cannot be segmented.")
    pixel_values = pixel_values.to(parameter.device, parameter.dtype)
    logits = sliding_window_logits(model, pixel_values, crop_size, stride, window_batch_size)
    return upsampled_class_ids(logits, image.height, image.width).cpu()


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


def _check_palette_size(num_labels: int) -> None:
    if num_labels > 256:
        raise ValueError(f"A palette mask holds at most 256 classes; this model has {num_labels}. "
                         "Use the greyscale class-id mask (16-bit) instead.")


def palette_mask_image(class_ids: torch.Tensor | np.ndarray, num_labels: int) -> Image.Image:
    """Class-id mask as a palette ("P") image: each pixel's index is its class id (``np.asarray`` gives the ids, as
    from :func:`mask_image`) and the palette holds :func:`palette` colours, so viewers show it in colour.

    A PNG palette has at most 256 entries: more classes raise ``ValueError``.
    """
    _check_palette_size(num_labels)
    image = Image.fromarray(np.asarray(class_ids).astype(np.uint8))
    image.putpalette(palette(num_labels).tobytes(), "RGB")
    return image


def overlay_image(image: Image.Image, class_ids: torch.Tensor | np.ndarray, num_labels: int,
                  alpha: float = 0.5) -> Image.Image:
    """Blend the class colours over the image (``alpha`` = weight of the colours)."""
    coloured = Image.fromarray(palette(num_labels)[np.asarray(class_ids)])
    rgb = as_rgb(image)
    return Image.blend(rgb, coloured, alpha)


@dataclass
class SegmentationReport:
    """What :func:`segment_files` wrote (mask paths at their final location) and which inputs failed, and why."""

    written: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)


def segment_files(
    model: torch.nn.Module,
    image_processor: Any,
    paths: Sequence[str | os.PathLike],
    output_dir: str | os.PathLike,
    overwrite: bool = False,
    progress: bool = True,
    budget: PixelBudget = CLI_BUDGET,
    legend: bool = True,
    palette_mask: bool = False,
    **segment_kwargs: Any,
) -> SegmentationReport:
    """Write ``<stem>_mask.png`` and ``<stem>_overlay.png`` per image into ``output_dir`` (atomically).

    The mask holds the class ids (:func:`mask_image`; with ``palette_mask``, :func:`palette_mask_image`: the same ids
    with the overlay's colours as palette). The overlay blends the class colours over the image; with ``legend`` it
    has a panel on its right naming the classes present, in their colours (:mod:`hf_beit.inference.segment_legend`).

    Repeated stems get ``-2``, ``-3``... suffixes. ``segment_kwargs`` go to :func:`segment_image`. Each image is
    checked against ``budget`` from its header (stored size, and size after the keep-ratio resize) before it is
    decoded. An image that cannot be read or segmented is listed in the report's ``failed`` with its path and the
    reason, and the others are still written; if none can be, ``ValueError`` is raised and nothing is written.
    """
    paths = [Path(p) for p in paths]
    num_labels = model.config.num_labels
    labels, colours = label_names(model.config), palette(num_labels)
    if palette_mask:
        _check_palette_size(num_labels)  # before any work
    _, _, resize_scale = _windows(model.config, segment_kwargs.get("crop_size"), segment_kwargs.get("stride"),
                                  segment_kwargs.get("resize_scale", "auto"))
    check = budget.size_check(resize_geometry(resize_scale), "the image")
    report = SegmentationReport()
    with atomic_output_dir(output_dir, overwrite=overwrite) as tmp:
        for path, stem in tqdm(list(zip(paths, output_stems(paths))), desc="segment", unit="img",
                               disable=not progress):
            try:
                image = load_image(path, max_pixels=budget.max_pixels, convert_to_rgb=True, check_size=check)
                class_ids = segment_image(model, image_processor, image, **segment_kwargs)
            except (InvalidImageError, OSError, ValueError) as error:
                report.failed.append((path, f"Cannot segment image {str(path)!r}: {error}"))
                continue
            mask = palette_mask_image if palette_mask else mask_image
            mask(class_ids, num_labels).save(tmp / f"{stem}_mask.png")
            overlay = overlay_image(image, class_ids, num_labels)
            if legend:
                overlay = with_legend(overlay, class_ids, labels, colours)
            overlay.save(tmp / f"{stem}_overlay.png")
            report.written.append(Path(output_dir) / f"{stem}_mask.png")
        if not report.written:
            raise ValueError(f"None of the {len(paths)} images could be segmented; nothing was written. First: "
                             f"{report.failed[0][1]}")
    return report
