"""Local data sources for fine-tuning: image folders, multi-label metadata, image/mask folders, saved datasets, digits.

Everything here is offline. Every loader returns a ``datasets.DatasetDict`` with ``train`` and ``validation``
splits; label handling is described by a :class:`LabelSchema`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np
from PIL import Image

from ..hub import is_hub_id, resolve_dataset_dir
from ..image_loading import IMAGE_EXTENSIONS

logger = logging.getLogger(__name__)

_VALIDATION_NAMES = ("validation", "valid", "val", "test")
_TEST_NAME = "test"


class DataError(ValueError):
    """The training data is missing, malformed or inconsistent."""


@dataclass
class LabelSchema:
    """Class names and whether an image carries one label or a set of labels."""

    id2label: dict[int, str]
    multi_label: bool = False

    @property
    def label2id(self) -> dict[str, int]:
        return {name: index for index, name in self.id2label.items()}

    @property
    def num_labels(self) -> int:
        return len(self.id2label)

    def encode(self, value) -> int | list[float]:
        """A class id (single-label) or a multi-hot list (multi-label) for one raw label value."""
        if not self.multi_label:
            return self._index(value)
        if isinstance(value, (str, int, np.integer)):
            raise DataError(f"Multi-label data needs a list of labels per image, got {value!r}.")
        hot = [0.0] * self.num_labels
        for item in value:
            hot[self._index(item)] = 1.0
        return hot

    def _index(self, value) -> int:
        if isinstance(value, str):
            if value not in self.label2id:
                raise DataError(f"Unknown label {value!r}; known labels: {sorted(self.label2id)}.")
            return self.label2id[value]
        index = int(value)
        if not 0 <= index < self.num_labels:
            raise DataError(f"Label id {index} is outside [0, {self.num_labels}).")
        return index


def infer_label_schema(dataset: datasets.Dataset, label_column: str) -> LabelSchema:
    """Derive class names from the ``label_column`` feature (ClassLabel, strings, ints, or lists of them)."""
    if label_column not in dataset.column_names:
        raise DataError(f"Label column {label_column!r} not found; columns are {dataset.column_names}.")
    feature = dataset.features[label_column]
    multi_label = isinstance(feature, (datasets.Sequence, datasets.List))
    inner = feature.feature if multi_label else feature
    if isinstance(inner, datasets.ClassLabel):
        return LabelSchema(dict(enumerate(inner.names)), multi_label)
    values = dataset[label_column]
    flat = [item for row in values for item in row] if multi_label else list(values)
    if not flat:
        raise DataError(f"Label column {label_column!r} is empty.")
    if all(isinstance(item, str) for item in flat):
        return LabelSchema(dict(enumerate(sorted(set(flat)))), multi_label)
    ids = np.asarray(flat, dtype=np.int64)
    if ids.min() < 0:
        raise DataError(f"Integer labels must be >= 0, found {ids.min()}.")
    return LabelSchema({i: str(i) for i in range(int(ids.max()) + 1)}, multi_label)


def with_validation_split(data: datasets.DatasetDict, validation_fraction: float, seed: int) -> datasets.DatasetDict:
    """``train`` + ``validation`` (+ ``test`` when it is a separate split).

    An existing validation split (or ``test`` when there is no other) is used for model selection; otherwise
    ``validation_fraction`` of ``train`` is held out. A ``test`` split next to a validation split is kept for a
    final, selection-free evaluation.
    """
    if "train" not in data:
        raise DataError(f"The dataset needs a 'train' split; found {list(data)}.")
    validation = next((name for name in _VALIDATION_NAMES if name in data), None)
    if validation is None:
        if not 0 < validation_fraction < 1:
            raise DataError(
                f"No validation split found and validation_fraction={validation_fraction}; pass a value in (0, 1)."
            )
        split = data["train"].train_test_split(test_size=validation_fraction, seed=seed)
        return datasets.DatasetDict({"train": split["train"], "validation": split["test"]})
    result = {"train": data["train"], "validation": data[validation]}
    if validation != _TEST_NAME and _TEST_NAME in data:
        result[_TEST_NAME] = data[_TEST_NAME]
    return datasets.DatasetDict(result)


def load_digits_dataset(
    image_size: int = 32, validation_fraction: float = 0.1, test_fraction: float = 0.1, seed: int = 0
) -> datasets.DatasetDict:
    """scikit-learn's 1797 handwritten 8x8 digits, upsampled (bilinear) to ``image_size`` RGB.

    Stratified ``train`` / ``validation`` (model selection) / ``test`` (final report) splits.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    pixels = (digits.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)
    images = [
        Image.fromarray(p).resize((image_size, image_size), Image.Resampling.BILINEAR).convert("RGB") for p in pixels
    ]
    indices, targets = np.arange(len(images)), digits.target
    held_out = validation_fraction + test_fraction
    train_idx, rest_idx = train_test_split(indices, test_size=held_out, random_state=seed, stratify=targets)
    val_idx, test_idx = train_test_split(
        rest_idx, test_size=test_fraction / held_out, random_state=seed, stratify=targets[rest_idx]
    )
    features = datasets.Features(
        {"image": datasets.Image(), "label": datasets.ClassLabel(names=[str(i) for i in range(10)])}
    )

    def subset(idx: np.ndarray) -> datasets.Dataset:
        return datasets.Dataset.from_dict(
            {"image": [images[i] for i in idx], "label": targets[idx].tolist()}, features=features
        )

    return datasets.DatasetDict({"train": subset(train_idx), "validation": subset(val_idx), "test": subset(test_idx)})


def load_image_folder(data_dir: str | Path) -> datasets.DatasetDict:
    """``datasets`` "imagefolder": class sub-folders, or images plus a ``metadata.jsonl`` (e.g. a list of labels)."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError(f"Image folder {data_dir} does not exist.")
    if not any(path.suffix.lower() in IMAGE_EXTENSIONS for path in data_dir.rglob("*")):  # stops at the first image
        raise DataError(
            f"No images ({', '.join(sorted(IMAGE_EXTENSIONS))}) found in {data_dir}: give one sub-folder of images "
            "per class, or images plus a metadata.jsonl."
        )
    return datasets.load_dataset("imagefolder", data_dir=str(data_dir))


def _pairs_in(folder: Path) -> tuple[list[str], list[str]]:
    images_dir, masks_dir = folder / "images", folder / "masks"
    if not images_dir.is_dir() or not masks_dir.is_dir():
        raise DataError(f"Segmentation data in {folder} needs the sub-folders images/ and masks/.")
    masks = {p.stem: p for p in masks_dir.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS}
    images = sorted(p for p in images_dir.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    missing = [p.name for p in images if p.stem not in masks]
    if missing:
        raise DataError(f"{len(missing)} image(s) in {images_dir} have no mask with the same stem, e.g. {missing[:3]}.")
    if not images:
        raise DataError(f"No images found in {images_dir}.")
    return [str(p) for p in images], [str(masks[p.stem]) for p in images]


def load_segmentation_folder(root: str | Path) -> datasets.DatasetDict:
    """Image/mask pairs from ``root/images`` + ``root/masks`` (same file stems), or per split ``root/<split>/...``.

    Masks are single-channel PNGs whose pixel values are class ids (255 = ignore).
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"Segmentation folder {root} does not exist.")
    features = datasets.Features({"image": datasets.Image(), "annotation": datasets.Image()})
    split_dirs = {p.name: p for p in root.iterdir() if p.is_dir() and (p / "images").is_dir()}
    if (root / "images").is_dir():
        split_dirs = {"train": root}
    if "train" not in split_dirs:
        raise DataError(f"{root} needs images/ and masks/ (or train/images and train/masks).")
    result = {}
    for split, folder in split_dirs.items():
        image_paths, mask_paths = _pairs_in(folder)
        result[split] = datasets.Dataset.from_dict({"image": image_paths, "annotation": mask_paths}, features=features)
    return datasets.DatasetDict(result)


def segmentation_schema(
    data: datasets.Dataset, root: str | Path | None = None, num_labels: int | None = None, ignore_index: int = 255
) -> LabelSchema:
    """Class names from ``root/id2label.json``, else ``num_labels``, else the largest class id found in the masks."""
    if root is not None and (Path(root) / "id2label.json").is_file():
        mapping = json.loads((Path(root) / "id2label.json").read_text())
        return LabelSchema({int(k): str(v) for k, v in mapping.items()})
    if num_labels is None:
        largest = -1
        for mask in data.select_columns(["annotation"]):
            values = np.unique(np.asarray(mask["annotation"]))
            values = values[values != ignore_index]
            largest = max(largest, int(values.max()) if values.size else -1)
        if largest < 1:
            raise DataError("Could not infer classes from the masks: they hold fewer than two class ids.")
        num_labels = largest + 1
        logger.info("Inferred %d segmentation classes from the masks (ids 0..%d).", num_labels, largest)
    return LabelSchema({i: str(i) for i in range(num_labels)})


def load_source(source: str | Path, task: str) -> datasets.DatasetDict:
    """Resolve ``--dataset``/``--data-dir``: "digits", a ``save_to_disk`` directory, an image folder or mask folder,
    or a Hub dataset id (``org/name``; its snapshot from the HF cache, so ``HF_HUB_OFFLINE=1`` works)."""
    if str(source) == "digits":
        if task != "classification":
            raise DataError("The built-in digits dataset is for classification only.")
        return load_digits_dataset()
    if is_hub_id(source):
        return datasets.load_dataset(str(resolve_dataset_dir(str(source))))
    path = Path(source)
    if (path / "dataset_dict.json").is_file() or (path / "dataset_info.json").is_file():
        loaded = datasets.load_from_disk(str(path))
        return loaded if isinstance(loaded, datasets.DatasetDict) else datasets.DatasetDict({"train": loaded})
    if task == "segmentation":
        return load_segmentation_folder(path)
    return load_image_folder(path)
