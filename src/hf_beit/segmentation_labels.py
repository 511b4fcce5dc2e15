"""ADE20k-style label reduction, shared by the image processor, the training data and the metrics."""

from __future__ import annotations

from typing import TypeVar

LabelMap = TypeVar("LabelMap")  # a numpy array or a torch tensor of class ids


def reduce_labels(label: LabelMap, ignore_index: int = 255) -> LabelMap:
    """Background 0 -> ``ignore_index``, class k -> k - 1, ``ignore_index`` stays; returns a new array/tensor."""
    ignored = (label == 0) | (label == ignore_index)
    reduced = label - 1
    reduced[ignored] = ignore_index
    return reduced
