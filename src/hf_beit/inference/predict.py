"""Batch image classification: class probabilities, top-k / thresholded labels, JSON and CSV reports.

Images are decoded and preprocessed one at a time under a pixel budget (only their pixel values wait for the batch),
and an image that cannot be read is reported in its own result (``"error"``) instead of ending the run.
"""

from __future__ import annotations

import contextlib
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

from ..atomic_io import atomic_output_dir, atomic_write_text
from ..image_loading import InvalidImageError
from ..pixel_budget import PixelBudget
from ._images import CLI_BUDGET, output_stems, read_pixel_values
from ._loading import is_multi_label, label_names
from .predict_figures import prediction_figure

DEFAULT_TOP_K = 5


@torch.no_grad()
def class_probabilities(model: torch.nn.Module, image_processor: Any, images: Sequence[Image.Image]) -> torch.Tensor:
    """Probabilities ``(len(images), num_labels)`` in class-id order, float32 on the CPU.

    Softmax over classes, or an independent sigmoid per class when ``config.problem_type`` is
    ``"multi_label_classification"``.
    """
    if not images:
        return torch.empty(0, model.config.num_labels)
    return pixel_probabilities(model, list(image_processor(images=list(images))["pixel_values"]))


@torch.no_grad()
def pixel_probabilities(model: Any, pixel_values: Sequence[torch.Tensor]) -> torch.Tensor:
    """Probabilities ``(len(pixel_values), num_labels)`` of preprocessed ``(C, H, W)`` images, in input order.

    ``model`` is an ``nn.Module`` or an :class:`hf_beit.export.EngineModel`. Images of equal size run as one batch;
    images of different sizes (a processor without a fixed output size) run in one batch per size.
    """
    if not pixel_values:
        return torch.empty(0, model.config.num_labels)
    parameter = next(model.parameters(), None) if isinstance(model, torch.nn.Module) else None
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for index, values in enumerate(pixel_values):
        by_shape.setdefault(tuple(values.shape), []).append(index)
    probs = torch.empty(len(pixel_values), model.config.num_labels)
    for indices in by_shape.values():
        batch = torch.stack([pixel_values[i] for i in indices])
        if parameter is not None:
            batch = batch.to(parameter.device, parameter.dtype)
        logits = model(pixel_values=batch).logits.float().cpu()
        probs[indices] = logits.sigmoid() if is_multi_label(model.config) else logits.softmax(dim=-1)
    return probs


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
    budget: PixelBudget = CLI_BUDGET,
    figures: str | os.PathLike | None = None,
    overwrite: bool = False,
) -> list[dict[str, Any]]:
    """Classify image files in batches; one ``{"image": path, "predictions": [...]}`` per file, in input order.

    Single-label models keep the ``top_k`` best classes (default 5). Multi-label models keep every class whose
    sigmoid score is >= ``threshold``, at most ``top_k`` if given. A file that cannot be read (corrupt, not an
    image, above ``budget``) gets ``{"image": path, "error": message}`` and the others are still classified.

    ``figures``: a folder (written atomically; a non-empty one is only replaced with ``overwrite``) that gets one
    ``<stem>_predictions.png`` per classified image (:func:`hf_beit.inference.predict_figures.prediction_figure`).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; got {batch_size}.")
    multi_label = is_multi_label(model.config)
    keep_k = top_k if (top_k is not None or multi_label) else DEFAULT_TOP_K
    labels = label_names(model.config)
    paths = [Path(p) for p in paths]
    stems = output_stems(paths)
    results: list[dict[str, Any]] = []
    with contextlib.ExitStack() as stack:
        folder = None if figures is None else stack.enter_context(atomic_output_dir(figures, overwrite=overwrite))
        bar = stack.enter_context(tqdm(total=len(paths), desc="predict", unit="img", disable=not progress))
        for start in range(0, len(paths), batch_size):
            read: dict[int, torch.Tensor] = {}
            errors: dict[int, str] = {}
            for index in range(start, min(start + batch_size, len(paths))):
                try:
                    read[index] = read_pixel_values(paths[index], image_processor, budget)
                except InvalidImageError as error:
                    errors[index] = str(error)
            probs = dict(zip(read, pixel_probabilities(model, list(read.values()))))
            for index in range(start, min(start + batch_size, len(paths))):
                if index in errors:
                    results.append({"image": str(paths[index]), "error": errors[index]})
                    continue
                kept = top_predictions(probs[index], labels, keep_k, threshold if multi_label else None)
                results.append({"image": str(paths[index]), "predictions": kept})
                if folder is not None:
                    title = f"{paths[index].name}: " + (f"sigmoid >= {threshold:g}" if multi_label else
                                                        f"top {len(kept)} of {len(labels)}")
                    prediction_figure(read[index], image_processor, kept, title).save(
                        folder / f"{stems[index]}_predictions.png")
            bar.update(min(batch_size, len(paths) - start))
    return results


def format_predictions(results: Sequence[dict[str, Any]], fmt: str = "json") -> str:
    """Render :func:`predict_images` results as JSON (a list) or CSV (``image,rank,label,score,error``, rank from
    1; an unreadable image is one row with only ``image`` and ``error``)."""
    if fmt == "json":
        return json.dumps(list(results), indent=2) + "\n"
    if fmt != "csv":
        raise ValueError(f"Unknown output format {fmt!r}; use 'json' or 'csv'.")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["image", "rank", "label", "score", "error"])
    for result in results:
        if "error" in result:
            writer.writerow([result["image"], "", "", "", result["error"]])
        for rank, prediction in enumerate(result.get("predictions", ()), start=1):
            writer.writerow([result["image"], rank, prediction["label"], f"{prediction['score']:.6g}", ""])
    return buffer.getvalue()


def check_report_target(output: str | os.PathLike, inputs: Sequence[str | os.PathLike]) -> None:
    """Refuse an ``--output`` that is a folder or one of the ``inputs`` (writing it would replace an image)."""
    target = Path(output)
    if target.is_dir():
        raise IsADirectoryError(f"--output {str(target)!r} is a folder; pass a file name such as predictions.json.")
    if target.exists() and any(target.samefile(path) for path in inputs if Path(path).exists()):
        raise FileExistsError(f"--output {str(target)!r} is one of the input images; it would be overwritten. "
                              "Choose another file name.")


def write_report(text: str, output: str | os.PathLike, inputs: Sequence[str | os.PathLike]) -> None:
    """Write ``text`` to ``output`` atomically after :func:`check_report_target`."""
    check_report_target(output, inputs)
    atomic_write_text(output, text)


def failures(results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The results of images that could not be classified."""
    return [result for result in results if "error" in result]
