"""Per-example preprocessing and the dataset wrapper that makes random augmentation reproducible.

Random augmentations run under a seed derived from ``(seed, epoch, example index)`` instead of the global RNG, so
a run resumed from a checkpoint (the Trainer restores its RNG state only after fetching the first batch) and a run
with another number of data-loader workers see exactly the same augmented images.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from transformers import TrainerCallback

from ..image_loading import as_rgb
from ..segmentation_labels import reduce_labels
from .augment import as_mask
from .datasets import DataError, LabelSchema


class ClassificationExample:
    """Turn an ``{image, label}`` row into ``pixel_values`` and an encoded ``labels`` entry."""

    def __init__(
        self, transform: Callable, schema: LabelSchema, image_column: str = "image", label_column: str = "label"
    ):
        self.transform, self.schema = transform, schema
        self.image_column, self.label_column = image_column, label_column

    def __call__(self, row: dict) -> dict:
        for column in (self.image_column, self.label_column):
            if column not in row:
                raise DataError(f"Column {column!r} not found; columns are {list(row)}.")
        return {
            "pixel_values": self.transform(as_rgb(row[self.image_column])),
            "labels": self.schema.encode(row[self.label_column]),
        }


class SegmentationExample:
    """Turn an ``{image, annotation}`` row into ``pixel_values`` and an (H, W) int64 ``labels`` map (joint geometry)."""

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

    def _mask(self, annotation) -> torch.Tensor:
        mask = as_mask(annotation)
        if self.reduce_labels:
            mask.copy_(reduce_labels(mask, self.ignore_index))  # in place: keeps the tv_tensors.Mask type
        valid = mask[mask != self.ignore_index]
        if valid.numel() and (int(valid.min()) < 0 or int(valid.max()) >= self.num_labels):
            raise DataError(
                f"Mask holds class id {int(valid.max())} but there are {self.num_labels} classes "
                f"(ids 0..{self.num_labels - 1}, {self.ignore_index} = ignore); check num_labels / reduce_labels."
            )
        return mask

    def __call__(self, row: dict) -> dict:
        image, mask = row[self.image_column], self._mask(row[self.mask_column])
        if tuple(mask.shape) != (image.height, image.width):
            raise DataError(f"Mask size {tuple(mask.shape)} differs from image size {(image.height, image.width)}.")
        pixels, mask = self.transform(as_rgb(image), mask)
        return {"pixel_values": pixels, "labels": torch.as_tensor(np.asarray(mask), dtype=torch.long)}


class TransformedDataset(torch.utils.data.Dataset):
    """A ``datasets.Dataset`` (or any indexable) mapped through ``example_fn`` on access.

    With ``seed`` set, each example is transformed under ``torch.manual_seed`` of a value derived from
    ``(seed, epoch, index)``; the global RNG is left untouched. Call :meth:`set_epoch` at every epoch start
    (:class:`EpochCallback` does it for the Trainer).
    """

    def __init__(self, dataset, example_fn: Callable[[dict], dict], seed: int | None = None):
        self.dataset, self.example_fn, self.seed, self.epoch = dataset, example_fn, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        row = self.dataset[int(index)]
        if self.seed is None:
            return self.example_fn(row)
        example_seed = int(np.random.SeedSequence([self.seed, self.epoch, int(index)]).generate_state(1)[0])
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(example_seed)
            return self.example_fn(row)


class EpochCallback(TrainerCallback):
    """Tell :class:`TransformedDataset` objects which epoch starts (also right after resuming mid-epoch)."""

    def __init__(self, *datasets: TransformedDataset):
        self.datasets = datasets

    def on_epoch_begin(self, args, state, control, **kwargs):
        epoch = int(np.floor((state.epoch or 0.0) + 1e-9))
        for dataset in self.datasets:
            dataset.set_epoch(epoch)
