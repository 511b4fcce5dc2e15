"""``hf-beit probe`` as a function: images of a dataset -> frozen per-block features -> probes -> JSON + PNG."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from ..atomic_io import atomic_output_dir
from ..image_loading import as_rgb
from .features import block_features
from .plot import plot_accuracies
from .train import ProbeResult, ProbeSettings, train_probes

RESULTS_NAME = "probe_results.json"
PLOT_NAME = "probe_accuracy.png"


def _pixel_values(processor, images, batch_size: int = 64) -> torch.Tensor:
    batches = [
        processor(images=[as_rgb(image) for image in images[start : start + batch_size]], return_tensors="pt")
        for start in range(0, len(images), batch_size)
    ]
    return torch.cat([batch["pixel_values"] for batch in batches])


def load_probe_data(data: str | os.PathLike, eval_split: str = "validation", seed: int = 0):
    """``(train images, train labels, eval images, eval labels, class names)`` from ``"digits"``, a folder with
    class sub-folders per split (``train/``, ``val/``...) or a ``save_to_disk`` dataset, as ``hf-beit train``
    reads them (a validation split is held out of ``train`` when there is none)."""
    from ..training.datasets import DataError, infer_label_schema, load_source, with_validation_split

    splits = with_validation_split(load_source(data, "classification"), 0.1, seed)
    if eval_split not in splits:
        raise DataError(f"No {eval_split!r} split in {data}; found {list(splits)}.")
    schema = infer_label_schema(splits["train"], "label")

    def take(split):
        rows = splits[split]
        return list(rows["image"]), torch.tensor([schema.encode(label) for label in rows["label"]])

    (train_images, train_labels), (eval_images, eval_labels) = take("train"), take(eval_split)
    return train_images, train_labels, eval_images, eval_labels, schema.id2label


def probe_model(
    model, processor, data: str | os.PathLike, settings: ProbeSettings | None = None, eval_split: str = "validation",
    progress: bool = True,
) -> ProbeResult:
    """Per-block linear probes of ``model`` (any hf_beit model; its encoder is frozen) on ``data``."""
    settings = settings or ProbeSettings()
    train_images, train_labels, eval_images, eval_labels, id2label = load_probe_data(data, eval_split, settings.seed)
    train = block_features(model, _pixel_values(processor, train_images), progress=progress)
    evaluation = block_features(model, _pixel_values(processor, eval_images), progress=progress)
    result = train_probes(train, train_labels, evaluation, eval_labels, settings, len(id2label), progress=progress)
    result.extra = {"eval_split": eval_split, "num_labels": len(id2label)}
    return result


def write_probe_outputs(
    results: dict[str, ProbeResult], output_dir: str | os.PathLike, overwrite: bool = False
) -> Path:
    """``probe_results.json`` (one entry per model) and ``probe_accuracy.png`` (one line per model), atomically."""
    with atomic_output_dir(output_dir, overwrite=overwrite) as staging:
        payload = {name: result.to_dict() for name, result in results.items()}
        (staging / RESULTS_NAME).write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        plot_accuracies({name: result.accuracy for name, result in results.items()}, staging / PLOT_NAME)
    return Path(output_dir)
