"""One picture per classified image: the image as the model saw it, beside a bar chart of its predicted classes."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from PIL import Image

from ..pictures import bar_chart_image
from .attention_pictures import model_view

#: Views smaller than this (e.g. 32-pixel test models) are enlarged by a whole factor, pixel by pixel.
MIN_VIEW_HEIGHT = 160
GAP = 8


def prediction_figure(pixel_values: torch.Tensor, image_processor: Any, predictions: Sequence[dict[str, Any]],
                      title: str) -> Image.Image:
    """The ``(3, H, W)`` model input shown as an image (normalisation undone) at the left, and at the right one bar per
    ``{"label", "score"}`` prediction, in the given order (scores in ``[0, 1]``), under ``title``."""
    view = model_view(pixel_values, image_processor)
    factor = max(1, math.ceil(MIN_VIEW_HEIGHT / view.height))
    view = view.resize((view.width * factor, view.height * factor), Image.Resampling.NEAREST)
    chart = bar_chart_image([p["label"] for p in predictions], [p["score"] for p in predictions], title)
    figure = Image.new("RGB", (view.width + GAP + chart.width, max(view.height, chart.height)), "white")
    figure.paste(view, (0, 0))
    figure.paste(chart, (view.width + GAP, 0))
    return figure
