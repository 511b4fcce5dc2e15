"""Multi-scale + flip test-time augmentation for semantic segmentation, as mmseg's ``aug_test``.

The BEiT papers' best ADE20k numbers ("ms+flip") come from mmseg's ``MultiScaleFlipAug``: for every ratio ``r`` the
image is resized keeping its aspect ratio to fit ``(int(L * r), int(S * r))`` (``L x S`` = the single-scale test
scale, 4 x crop by crop: 2560 x 640 for ADE20k 640 models, 2048 x 512 for 512), normalised, and run (and, with
flip, its horizontal mirror) through the sliding-window inference; the logits are resized bilinearly to the
original image size, turned into softmax probabilities, flipped back, and averaged over all views. The arg-max of
the average is the prediction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image

from ..image_loading import as_rgb
from .segment import _pixel_values, _windows
from .sliding_window import sliding_window_logits

#: mmseg's ``img_ratios`` for BEiT's ms+flip ADE20k results
MMSEG_RATIOS: tuple[float, ...] = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)


def ratio_scale(base_scale: tuple[int, int], ratio: float) -> tuple[int, int]:
    """The resize scale of one ratio (``MultiScaleFlipAug``: each side of the base scale times ``ratio``, floored)."""
    return int(base_scale[0] * ratio), int(base_scale[1] * ratio)


@torch.no_grad()
def tta_probabilities(
    model: torch.nn.Module,
    image_processor: Any,
    image: Image.Image,
    scales: Sequence[float] = MMSEG_RATIOS,
    flip: bool = True,
    crop_size: int | tuple[int, int] | None = None,
    stride: int | tuple[int, int] | None = None,
    resize_scale: tuple[int, int] | str | None = "auto",
    window_batch_size: int = 4,
) -> torch.Tensor:
    """Class probabilities ``(num_labels, height, width)`` at the image's size, averaged over scales and flips.

    ``resize_scale`` is the single-scale test scale the ratios multiply: ``"auto"`` = ``(4 * crop, crop)``, an
    explicit ``(long, short)``, or ``None`` = the image's own size. ``crop_size``/``stride`` as in
    :func:`hf_beit.inference.segment_image`.
    """
    scales = tuple(scales) or MMSEG_RATIOS
    if any(ratio <= 0 for ratio in scales):
        raise ValueError(f"Test-time scales must be positive ratios, got {scales}.")
    crop_size, stride, resize_scale = _windows(model.config, crop_size, stride, resize_scale)
    image = as_rgb(image)
    base = (image.height, image.width) if resize_scale is None else tuple(resize_scale)
    parameter = next(model.parameters())
    total, views = None, 0
    for ratio in scales:
        pixel_values = _pixel_values(image, image_processor, ratio_scale(base, ratio))
        pixel_values = pixel_values.to(parameter.device, parameter.dtype)
        for flipped in (False, True) if flip else (False,):
            view = pixel_values.flip(-1) if flipped else pixel_values
            logits = sliding_window_logits(model, view, crop_size, stride, window_batch_size)
            logits = F.interpolate(logits, size=(image.height, image.width), mode="bilinear", align_corners=False)
            probabilities = logits.softmax(dim=1)
            probabilities = probabilities.flip(-1) if flipped else probabilities
            total = probabilities if total is None else total + probabilities
            views += 1
    return (total / views)[0].cpu()


def tta_class_ids(model: torch.nn.Module, image_processor: Any, image: Image.Image, scales: Sequence[float] = (),
                  **kwargs: Any) -> torch.Tensor:
    """Class-id map ``(height, width)`` (int64) from :func:`tta_probabilities` (``scales`` empty: mmseg's ratios)."""
    return tta_probabilities(model, image_processor, image, scales, **kwargs).argmax(dim=0)
