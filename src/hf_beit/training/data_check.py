"""Up-front check of fine-tuning data: every row of every split is read once before training starts.

A corrupt image, an unknown label, a mask of the wrong size or with out-of-range class ids would otherwise end a run
hours in, at the first batch that holds it. Each row goes through the same example function as in training (the
label encoding and mask checks of :mod:`hf_beit.training.preprocess`) with the augmentation replaced by nothing, so
the check cannot disagree with training. Problems are collected and reported together, naming split, row and file.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

import datasets
from tqdm.auto import tqdm

from .datasets import DataError, LabelSchema
from .preprocess import ClassificationExample, SegmentationExample

logger = logging.getLogger(__name__)

_SHOWN = 5


def _no_augmentation(image, mask=None):
    return image if mask is None else (image, mask)


def _file_names(dataset: datasets.Dataset, column: str) -> Callable[[int], str]:
    """``row -> "file 'path'"`` where the column holds image files, else ``row -> ""``."""
    feature = dataset.features.get(column)
    if not isinstance(feature, datasets.Image):
        return lambda index: ""
    raw = dataset.cast_column(column, datasets.Image(decode=False))

    def name(index: int) -> str:
        path = (raw[index][column] or {}).get("path")
        return f" (file {path!r})" if path else ""

    return name


def check_single_label_classes(schema: LabelSchema, label_column: str) -> None:
    """A single-label classifier needs two classes at least."""
    if not schema.multi_label and schema.num_labels < 2:
        found = ", ".join(repr(name) for name in schema.id2label.values()) or "none"
        raise DataError(
            f"The training data has {schema.num_labels} class in column {label_column!r} ({found}); classification "
            "needs at least two. Add images of another class (e.g. a folder of negatives), or check --label-column."
        )


def check_class_folders(source: str | os.PathLike | None) -> None:
    """An image folder with a single class sub-folder (``datasets`` then gives it no label column) is refused."""
    if source is None or not Path(source).is_dir():
        return
    folders = sorted(p.name for p in Path(source).iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(folders) == 1 and not (Path(source) / "metadata.jsonl").is_file():
        raise DataError(
            f"The image folder {str(source)!r} has a single class sub-folder ({folders[0]!r}); classification needs "
            "at least two. Add a folder of images of another class (e.g. negatives)."
        )


def check_rows(dataset: datasets.Dataset, example_fn: Callable[[dict], dict], split: str, columns: list[str],
               progress: bool = True) -> None:
    """Run ``example_fn`` on every row; raise one ``DataError`` listing the rows that fail (at most 5 shown)."""
    names = [_file_names(dataset, column) for column in columns]
    problems: list[str] = []
    for index in tqdm(range(len(dataset)), desc=f"checking {split}", unit="row", disable=not progress, leave=False):
        try:
            example_fn(dataset[index])
        except Exception as error:
            where = "".join(name(index) for name in names)
            problems.append(f"{split}[{index}]{where}: {type(error).__name__}: {error}")
    if problems:
        shown = "\n  ".join(problems[:_SHOWN])
        more = f"\n  ... and {len(problems) - _SHOWN} more" if len(problems) > _SHOWN else ""
        raise DataError(f"{len(problems)} of {len(dataset)} rows of the {split!r} split cannot be used; fix or remove "
                        f"them before training:\n  {shown}{more}")


def check_training_data(data: datasets.DatasetDict, task: str, schema: LabelSchema, image_column: str,
                        label_column: str, reduce_labels: bool = False, ignore_index: int = 255,
                        progress: bool = True) -> None:
    """Check classes and every row of every split as training will read them; ``DataError`` on the first problem."""
    if task == "classification":
        check_single_label_classes(schema, label_column)
        example_fn = ClassificationExample(_no_augmentation, schema, image_column, label_column)
    else:
        example_fn = SegmentationExample(_no_augmentation, schema.num_labels, image_column, label_column,
                                         reduce_labels, ignore_index)
    for split, dataset in data.items():
        check_rows(dataset, example_fn, split, [image_column, label_column], progress)
    logger.info("Checked %s rows of training data.", " + ".join(str(len(split)) for split in data.values()))
