"""Per-example preprocessing attached to ``datasets`` splits with ``with_transform`` (runs lazily, in workers)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from .augment import as_mask
from .datasets import DataError, LabelSchema


class ClassificationTransform:
    """Turn a batch of ``{image, label}`` rows into ``pixel_values`` tensors and encoded ``labels``."""

    def __init__(
        self, transform: Callable, schema: LabelSchema, image_column: str = "image", label_column: str = "label"
    ):
        self.transform, self.schema = transform, schema
        self.image_column, self.label_column = image_column, label_column

    def __call__(self, batch: dict) -> dict:
        for column in (self.image_column, self.label_column):
            if column not in batch:
                raise DataError(f"Column {column!r} not found; columns are {list(batch)}.")
        return {
            "pixel_values": [self.transform(image.convert("RGB")) for image in batch[self.image_column]],
            "labels": [self.schema.encode(label) for label in batch[self.label_column]],
        }


def reduce_labels_(mask: torch.Tensor, ignore_index: int = 255) -> torch.Tensor:
    """In place: 0 (background) -> ignore_index, k -> k - 1, ignore_index unchanged (ADE20k convention)."""
    ignored = (mask == 0) | (mask == ignore_index)
    mask -= 1
    mask[ignored] = ignore_index
    return mask


class SegmentationTransform:
    """Turn ``{image, annotation}`` rows into ``pixel_values`` and (H, W) int64 ``labels`` (joint geometry)."""

    def __init__(
        self,
        transform: Callable,
        num_labels: int,
        image_column: str = "image",
        mask_column: str = "annotation",
        reduce_labels: bool = False,
        ignore_index: int = 255,
    ):
        self.transform, self.num_labels = transform, num_labels
        self.image_column, self.mask_column = image_column, mask_column
        self.reduce_labels, self.ignore_index = reduce_labels, ignore_index

    def _mask(self, annotation):
        mask = as_mask(annotation)
        if self.reduce_labels:
            reduce_labels_(mask, self.ignore_index)
        valid = mask[mask != self.ignore_index]
        if valid.numel() and (int(valid.min()) < 0 or int(valid.max()) >= self.num_labels):
            raise DataError(
                f"Mask holds class id {int(valid.max())} but there are {self.num_labels} classes "
                f"(ids 0..{self.num_labels - 1}, {self.ignore_index} = ignore); check num_labels / reduce_labels."
            )
        return mask

    def __call__(self, batch: dict) -> dict:
        pixel_values, labels = [], []
        for image, annotation in zip(batch[self.image_column], batch[self.mask_column], strict=True):
            mask = self._mask(annotation)
            if tuple(mask.shape) != (image.height, image.width):
                raise DataError(f"Mask size {tuple(mask.shape)} differs from image size {(image.height, image.width)}.")
            pixels, mask = self.transform(image.convert("RGB"), mask)
            pixel_values.append(pixels)
            labels.append(torch.as_tensor(np.asarray(mask), dtype=torch.long))
        return {"pixel_values": pixel_values, "labels": labels}
