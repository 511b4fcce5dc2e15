"""Evaluate a classification or segmentation model on a labelled dataset split, with the model's own processor.

Single-label classification: accuracy, top-5 accuracy, per-class accuracy and the confusion matrix (PNG);
multi-label: F1 (micro / macro, probability threshold) and mAP with per-class average precision (PNG);
segmentation: mIoU, mean class accuracy, pixel accuracy and per-class IoU (PNG). Dataset labels are matched to the
model's by name, so a dataset that numbers its classes differently is still scored correctly.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..atomic_io import atomic_output_dir
from ..hub import resolve_model_dir
from ..image_loading import as_rgb
from ..pictures import bar_chart, matrix_chart
from ..tasks import task_of_config
from ..training.datasets import DataError, infer_label_schema, load_source
from ..training.metrics.functional import average_precision, mean_iou, multilabel_metrics, top_k_accuracy

_SPLIT_PREFERENCE = ("test", "validation", "valid", "val", "train")


@dataclass
class EvaluationResult:
    """The metrics (as written to ``metrics.json``) and the pictures written next to them."""

    metrics: dict[str, Any]
    pictures: list[Path] = field(default_factory=list)


def evaluate_model(
    model_name: str | os.PathLike,
    data: str | os.PathLike,
    output_dir: str | os.PathLike | None = None,
    split: str | None = None,
    batch_size: int = 16,
    label_column: str | None = None,
    threshold: float = 0.5,
    overwrite: bool = False,
    progress: bool = True,
) -> EvaluationResult:
    """Score ``model_name`` (a folder or Hub id) on a split of ``data`` (the sources ``hf-beit train`` takes)."""
    from .. import BeitConfig
    from ..inference._loading import load_image_processor, load_model

    repo = resolve_model_dir(model_name)
    task = task_of_config(BeitConfig.from_pretrained(str(repo)))
    if task is None or task.name not in ("classification", "segmentation"):
        raise ValueError(f"{repo} is not a classification or segmentation model; nothing to evaluate.")
    dataset = _split(load_source(data, task.name), split)
    model = load_model(repo, task.pipeline)
    processor = load_image_processor(repo)
    score = _classification if task.name == "classification" else _segmentation
    metrics, pictures = score(model, processor, dataset, batch_size, label_column, threshold, progress)
    metrics = {"model": str(model_name), "data": str(data), "examples": len(dataset), **metrics}
    if output_dir is None:
        return EvaluationResult(metrics)
    with atomic_output_dir(output_dir, overwrite=overwrite) as staging:
        (staging / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        written = [draw(staging) for draw in pictures]
    return EvaluationResult(metrics, [Path(output_dir) / path.name for path in written])


def _split(data, split: str | None):
    if split is not None:
        if split not in data:
            raise DataError(f"The dataset has no split {split!r}; it has {list(data)}.")
        return data[split]
    return data[next(name for name in (*_SPLIT_PREFERENCE, *data) if name in data)]


def _batches(dataset, batch_size: int, progress: bool):
    for start in tqdm(range(0, len(dataset), batch_size), desc="Evaluating", unit="batch", disable=not progress):
        yield dataset[start : start + batch_size]


def _label_map(model_labels: dict[int, str], data_labels: dict[int, str]) -> np.ndarray:
    """Dataset label id -> model label id, by name (or by id when both are generic numbers)."""
    by_name = {str(name): index for index, name in model_labels.items()}
    mapping = np.full(max(data_labels) + 1, -1, dtype=np.int64)
    for index, name in data_labels.items():
        mapping[index] = by_name.get(str(name), index if len(data_labels) == len(model_labels) else -1)
    if (mapping < 0).any():
        missing = [data_labels[i] for i in np.flatnonzero(mapping < 0)]
        raise DataError(f"Dataset labels {missing[:5]} are not among the model's labels {list(by_name)[:10]}.")
    return mapping


@torch.no_grad()
def _classification(model, processor, dataset, batch_size, label_column, threshold, progress):
    column = label_column or next((c for c in ("label", "labels") if c in dataset.column_names), None)
    if column is None:
        raise DataError(f"No label column among {dataset.column_names}; pass --label-column.")
    schema = infer_label_schema(dataset, column)
    mapping = _label_map({int(k): v for k, v in model.config.id2label.items()}, schema.id2label)
    names = [model.config.id2label[i] for i in range(model.config.num_labels)]
    logits, targets = [], []
    for rows in _batches(dataset, batch_size, progress):
        inputs = processor([as_rgb(image) for image in rows["image"]], return_tensors="pt")
        logits.append(model(**inputs).logits.float().numpy())
        targets += [schema.encode(value) for value in rows[column]]
    scores = np.concatenate(logits)
    if schema.multi_label:
        hot = np.zeros_like(scores)
        for row, data_hot in enumerate(targets):
            hot[row, mapping[np.flatnonzero(data_hot)]] = 1
        per_class = [average_precision(scores[:, c], hot[:, c]) for c in range(len(names))]
        metrics = {**multilabel_metrics(scores, hot, threshold), "threshold": threshold,
                   "average_precision": dict(zip(names, per_class))}  # fmt: skip
        return metrics, [lambda folder: bar_chart(names, per_class, folder / "average_precision.png",
                                                  "Average precision per class")]  # fmt: skip
    truth = mapping[np.asarray(targets)]
    predicted = scores.argmax(axis=1)
    confusion = np.zeros((len(names), len(names)), dtype=np.int64)
    np.add.at(confusion, (truth, predicted), 1)
    with np.errstate(invalid="ignore"):
        per_class = np.diag(confusion) / confusion.sum(axis=1)
    metrics = {
        "accuracy": float((predicted == truth).mean()),
        "top_5_accuracy": top_k_accuracy(scores, truth, k=5),
        "per_class_accuracy": {name: None if np.isnan(v) else float(v) for name, v in zip(names, per_class)},
        "confusion_matrix": confusion.tolist(),
    }
    return metrics, [lambda folder: matrix_chart(confusion, names, folder / "confusion_matrix.png",
                                                 "Confusion matrix")]  # fmt: skip


@torch.no_grad()
def _segmentation(model, processor, dataset, batch_size, label_column, threshold, progress):
    column = label_column or next((c for c in ("annotation", "label", "mask") if c in dataset.column_names), None)
    if column is None:
        raise DataError(f"No mask column among {dataset.column_names}; pass --label-column.")
    predictions, references = [], []
    for rows in _batches(dataset, batch_size, progress):
        images = [as_rgb(image) for image in rows["image"]]
        inputs = processor(images, segmentation_maps=[np.asarray(m) for m in rows[column]], return_tensors="pt")
        logits = model(pixel_values=inputs["pixel_values"]).logits
        labels = inputs["labels"]
        logits = F.interpolate(logits.float(), size=labels.shape[-2:], mode="bilinear", align_corners=False)
        predictions += list(logits.argmax(dim=1).numpy())
        references += list(labels.numpy())
    names = [model.config.id2label[i] for i in range(model.config.num_labels)]
    ignore = model.config.semantic_loss_ignore_index
    metrics = mean_iou(predictions, references, len(names), ignore_index=ignore)
    per_class = metrics.pop("per_category_iou")
    metrics.pop("per_category_accuracy")
    metrics["per_class_iou"] = {name: None if np.isnan(v) else float(v) for name, v in zip(names, per_class)}
    values = [0.0 if np.isnan(v) else float(v) for v in per_class]
    return metrics, [lambda folder: bar_chart(names, values, folder / "per_class_iou.png", "IoU per class")]
