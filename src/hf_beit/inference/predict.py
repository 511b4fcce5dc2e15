"""Batch image classification: class probabilities, top-k / thresholded labels, JSON and CSV reports."""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from tqdm.auto import tqdm

from ._images import open_rgb
from ._loading import is_multi_label, label_names

DEFAULT_TOP_K = 5


@torch.no_grad()
def class_probabilities(model: torch.nn.Module, image_processor: Any, images: Sequence[Image.Image]) -> torch.Tensor:
    """Probabilities ``(len(images), num_labels)`` in class-id order, float32 on the CPU.

    Softmax over classes, or an independent sigmoid per class when ``config.problem_type`` is
    ``"multi_label_classification"``.
    """
    if not images:
        return torch.empty(0, model.config.num_labels)
    pixel_values = image_processor(images=list(images), return_tensors="pt")["pixel_values"]
    parameter = next(model.parameters(), None) if isinstance(model, torch.nn.Module) else None  # else an EngineModel
    if parameter is not None:
        pixel_values = pixel_values.to(parameter.device, parameter.dtype)
    logits = model(pixel_values=pixel_values).logits.float().cpu()
    return logits.sigmoid() if is_multi_label(model.config) else logits.softmax(dim=-1)


def top_predictions(
    probs: torch.Tensor, labels: Sequence[str], top_k: int | None = None, threshold: float | None = None
) -> list[dict[str, Any]]:
    """``[{"label", "score"}]`` sorted by descending score: scores >= ``threshold`` (if set), at most ``top_k``."""
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be >= 1 (or None for all); got {top_k}.")
    scores, order = probs.sort(descending=True)
    predictions = [{"label": labels[i], "score": float(s)} for s, i in zip(scores.tolist(), order.tolist())]
    if threshold is not None:
        predictions = [p for p in predictions if p["score"] >= threshold]
    return predictions[:top_k] if top_k is not None else predictions


def predict_images(
    model: torch.nn.Module,
    image_processor: Any,
    paths: Sequence[str | os.PathLike],
    batch_size: int = 8,
    top_k: int | None = None,
    threshold: float = 0.5,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Classify image files in batches; one ``{"image": path, "predictions": [...]}`` per file, in input order.

    Single-label models keep the ``top_k`` best classes (default 5). Multi-label models keep every class whose
    sigmoid score is >= ``threshold``, at most ``top_k`` if given.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; got {batch_size}.")
    multi_label = is_multi_label(model.config)
    keep_k = top_k if (top_k is not None or multi_label) else DEFAULT_TOP_K
    labels = label_names(model.config)
    results: list[dict[str, Any]] = []
    with tqdm(total=len(paths), desc="predict", unit="img", disable=not progress) as bar:
        for start in range(0, len(paths), batch_size):
            batch = [Path(p) for p in paths[start:start + batch_size]]
            probs = class_probabilities(model, image_processor, [open_rgb(p) for p in batch])
            for path, row in zip(batch, probs):
                kept = top_predictions(row, labels, keep_k, threshold if multi_label else None)
                results.append({"image": str(path), "predictions": kept})
            bar.update(len(batch))
    return results


def format_predictions(results: Sequence[dict[str, Any]], fmt: str = "json") -> str:
    """Render :func:`predict_images` results as JSON (a list) or CSV (``image,rank,label,score``, rank from 1)."""
    if fmt == "json":
        return json.dumps(list(results), indent=2) + "\n"
    if fmt != "csv":
        raise ValueError(f"Unknown output format {fmt!r}; use 'json' or 'csv'.")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["image", "rank", "label", "score"])
    for result in results:
        for rank, prediction in enumerate(result["predictions"], start=1):
            writer.writerow([result["image"], rank, prediction["label"], f"{prediction['score']:.6g}"])
    return buffer.getvalue()
