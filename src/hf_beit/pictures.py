"""Small, dependency-free charts written as PNG (Pillow only): training curves, confusion matrices, bar charts.

Each function draws one picture a person would rather look at than read a JSON file for, and writes it atomically.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .atomic_io import atomic_save_image

PALETTE = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75))
_MARGIN = 48
BAR_TOP, BAR_ROW, BAR_LENGTH = 26, 18, 260


def _font():
    return ImageFont.load_default()


def line_chart(
    series: Mapping[str, Sequence[tuple[float, float]]],
    path: str | os.PathLike,
    title: str,
    x_label: str = "step",
    size: tuple[int, int] = (720, 420),
) -> Path:
    """One line per named series of ``(x, y)`` points on shared axes, with a legend and the value range."""
    points = [point for values in series.values() for point in values]
    if not points:
        raise ValueError("line_chart needs at least one point.")
    width, height = size
    image = Image.new("RGB", size, "white")
    draw, font = ImageDraw.Draw(image), _font()
    xs, ys = np.array([p[0] for p in points], float), np.array([p[1] for p in points], float)
    x_min, x_max = xs.min(), max(xs.max(), xs.min() + 1e-9)
    y_min, y_max = ys.min(), max(ys.max(), ys.min() + 1e-9)
    left, right, top, bottom = _MARGIN + 16, width - 16, 28, height - _MARGIN

    def to_pixel(x: float, y: float) -> tuple[float, float]:
        return (
            left + (x - x_min) / (x_max - x_min) * (right - left),
            bottom - (y - y_min) / (y_max - y_min) * (bottom - top),
        )

    draw.rectangle((left, top, right, bottom), outline="black")
    draw.text((left, 6), title, fill="black", font=font)
    draw.text(((left + right) // 2 - 12, bottom + 22), x_label, fill="black", font=font)
    for value, y in ((y_max, top), (y_min, bottom - 10)):
        draw.text((4, y), f"{value:.4g}", fill="black", font=font)
    for value, x in ((x_min, left), (x_max, right - 30)):
        draw.text((x, bottom + 6), f"{value:.4g}", fill="black", font=font)
    for index, (name, values) in enumerate(series.items()):
        colour = PALETTE[index % len(PALETTE)]
        pixels = [to_pixel(x, y) for x, y in values]
        if len(pixels) > 1:
            draw.line(pixels, fill=colour, width=2)
        for x, y in pixels:
            draw.ellipse((x - 2, y - 2, x + 2, y + 2), fill=colour)
        draw.rectangle((right - 150, top + 8 + 14 * index, right - 140, top + 18 + 14 * index), fill=colour)
        draw.text((right - 134, top + 7 + 14 * index), name, fill="black", font=font)
    return atomic_save_image(image, path)


def matrix_chart(
    matrix: np.ndarray, labels: Sequence[str], path: str | os.PathLike, title: str, cell: int = 28
) -> Path:
    """A square count matrix (rows: true class, columns: predicted) as shaded cells with their counts and labels."""
    matrix = np.asarray(matrix)
    count = len(labels)
    if matrix.shape != (count, count):
        raise ValueError(f"matrix must be {count}x{count} for {count} labels, got {matrix.shape}.")
    label_width = 8 + 6 * max((len(str(name)) for name in labels), default=1)
    side = label_width + count * cell + 8
    image = Image.new("RGB", (side, side + 24), "white")
    draw, font = ImageDraw.Draw(image), _font()
    draw.text((4, 4), f"{title} (rows: true, columns: predicted)", fill="black", font=font)
    peak = max(int(matrix.max()), 1)
    for row in range(count):
        draw.text((4, 24 + label_width + row * cell + cell // 3), str(labels[row]), fill="black", font=font)
        for column in range(count):
            shade = int(255 - 215 * matrix[row, column] / peak)
            x, y = label_width + column * cell, 24 + label_width + row * cell
            draw.rectangle((x, y, x + cell - 1, y + cell - 1), fill=(shade, shade, 255), outline=(200, 200, 200))
            if cell >= 20:
                draw.text((x + 3, y + cell // 3), str(int(matrix[row, column])), fill="black", font=font)
    for column in range(count):
        draw.text((label_width + column * cell + 3, 24 + label_width - 14), str(labels[column])[:4], fill="black",
                  font=font)  # fmt: skip
    return atomic_save_image(image, path)


def bar_chart_image(
    names: Sequence[str], values: Sequence[float], title: str, maximum: float = 1.0
) -> Image.Image:
    """Horizontal bars, one per name (top to bottom), with the value printed at its end (values in ``[0, maximum]``).

    Row ``i`` spans pixel rows ``BAR_TOP + i * BAR_ROW`` to ``BAR_TOP + (i + 1) * BAR_ROW``; a full bar is
    ``BAR_LENGTH`` pixels long, drawn in ``PALETTE[0]``.
    """
    if len(names) != len(values):
        raise ValueError("bar_chart needs one value per name.")
    font = _font()
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    label_width = 12 + math.ceil(max((measure.textlength(str(name), font=font) for name in names), default=6))
    width = max(label_width + BAR_LENGTH + 60, 12 + math.ceil(measure.textlength(title, font=font)))
    image = Image.new("RGB", (width, BAR_TOP + 2 + BAR_ROW * len(names)), "white")
    draw = ImageDraw.Draw(image)
    draw.text((4, 6), title, fill="black", font=font)
    for index, (name, value) in enumerate(zip(names, values)):
        y = BAR_TOP + index * BAR_ROW
        length = 0 if not np.isfinite(value) else int(BAR_LENGTH * max(0.0, min(value / maximum, 1.0)))
        draw.text((4, y + 2), str(name), fill="black", font=font)
        draw.rectangle((label_width, y + 2, label_width + length, y + BAR_ROW - 4), fill=PALETTE[0])
        draw.text((label_width + length + 4, y + 2), f"{value:.3f}", fill="black", font=font)
    return image


def bar_chart(
    names: Sequence[str], values: Sequence[float], path: str | os.PathLike, title: str, maximum: float = 1.0
) -> Path:
    """:func:`bar_chart_image` written atomically to ``path``."""
    return atomic_save_image(bar_chart_image(names, values, title, maximum), path)
