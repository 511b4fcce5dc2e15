"""A PNG line chart of per-block probe accuracy, drawn with PIL (no plotting library needed)."""

from __future__ import annotations

import os
from collections.abc import Sequence

from PIL import Image, ImageDraw

_SERIES_COLOURS = ((31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189))


def plot_accuracies(
    series: dict[str, Sequence[float]], path: str | os.PathLike, title: str = "Linear probe accuracy per block",
    size: tuple[int, int] = (640, 400),
) -> None:
    """Draw one line per entry of ``series`` (accuracy in [0, 1] per block 0..L-1) and save a PNG to ``path``."""
    width, height = size
    left, right, top, bottom = 60, 20, 40, 50
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    draw.text((left, 12), title, fill="black")
    plot_w, plot_h = width - left - right, height - top - bottom
    blocks = max(len(values) for values in series.values())

    def point(block: int, accuracy: float) -> tuple[float, float]:
        x = left + (plot_w * block / max(blocks - 1, 1))
        return x, top + plot_h * (1 - accuracy)

    for tick in range(6):  # horizontal grid at 0, 0.2, ... 1.0
        y = top + plot_h * (1 - tick / 5)
        draw.line([(left, y), (left + plot_w, y)], fill=(225, 225, 225))
        draw.text((left - 36, y - 6), f"{tick / 5:.1f}", fill="black")
    for block in range(blocks):
        x, _ = point(block, 0)
        draw.text((x - 4, top + plot_h + 6), str(block), fill="black")
    draw.text((left + plot_w // 2 - 30, height - 22), "block (0-based)", fill="black")
    draw.rectangle([left, top, left + plot_w, top + plot_h], outline="black")
    for index, (name, values) in enumerate(series.items()):
        colour = _SERIES_COLOURS[index % len(_SERIES_COLOURS)]
        points = [point(block, value) for block, value in enumerate(values)]
        if len(points) > 1:
            draw.line(points, fill=colour, width=2)
        for x, y in points:
            draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=colour)
        draw.text((left + 8, top + 6 + 14 * index), f"-- {name}", fill=colour)
    image.save(path, format="PNG")
