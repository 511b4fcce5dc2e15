"""The legend of a segmentation overlay: the classes present in the image, largest first, each as a swatch in its
palette colour with its name and share of the pixels, in a white panel to the right of the overlay."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

LEGEND_TITLE = "classes in this image"
_PADDING, _SWATCH, _ROW, _TOP = 8, 12, 16, 24


def present_classes(class_ids: torch.Tensor | np.ndarray) -> list[tuple[int, float]]:
    """``(class_id, share of the pixels)`` of every class in the map, largest share first (ties: smaller id first)."""
    ids, counts = np.unique(np.asarray(class_ids), return_counts=True)
    order = np.argsort(-counts, kind="stable")
    return [(int(ids[i]), float(counts[i] / counts.sum())) for i in order]


def with_legend(overlay: Image.Image, class_ids: torch.Tensor | np.ndarray, labels: Sequence[str],
                colours: np.ndarray) -> Image.Image:
    """``overlay`` at the top left of a figure whose right panel lists the classes of ``class_ids``.

    ``labels`` are the class names in class-id order (``config.id2label``) and ``colours`` the ``(num_classes, 3)``
    uint8 colours the overlay was blended with. The figure is as tall as the overlay or the list, whichever is taller.
    """
    entries = present_classes(class_ids)
    texts = [f"{labels[class_id]}  {share:.1%}" for class_id, share in entries]
    font = ImageFont.load_default()
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    text_width = math.ceil(max(measure.textlength(text, font=font) for text in [LEGEND_TITLE, *texts]))
    panel_width = _PADDING + _SWATCH + 6 + text_width + _PADDING
    height = max(overlay.height, _TOP + _ROW * len(entries) + _PADDING)
    figure = Image.new("RGB", (overlay.width + panel_width, height), "white")
    figure.paste(overlay.convert("RGB"), (0, 0))
    draw = ImageDraw.Draw(figure)
    left = overlay.width + _PADDING
    draw.text((left, 6), LEGEND_TITLE, fill="black", font=font)
    for row, ((class_id, _), text) in enumerate(zip(entries, texts)):
        top = _TOP + row * _ROW
        draw.rectangle(
            (left, top, left + _SWATCH - 1, top + _SWATCH - 1), fill=tuple(int(v) for v in colours[class_id])
        )
        draw.text((left + _SWATCH + 6, top), text, fill="black", font=font)
    return figure
