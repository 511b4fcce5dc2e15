"""``compute_metrics`` / ``preprocess_logits_for_metrics`` callables for ``transformers.Trainer``."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from transformers import EvalPrediction

from .functional import accuracy, mean_iou, multilabel_metrics, top_k_accuracy


def _logits(predictions) -> np.ndarray:
    # the model may return extra outputs (hidden states); logits come first
    return np.asarray(predictions[0] if isinstance(predictions, (tuple, list)) else predictions)


def single_label_metrics(eval_pred: EvalPrediction) -> dict[str, float]:
    """Top-1 accuracy, plus top-5 accuracy when there are more than 5 classes."""
    logits, labels = _logits(eval_pred.predictions), np.asarray(eval_pred.label_ids)
    metrics = {"accuracy": accuracy(logits.argmax(axis=-1), labels)}
    if logits.shape[-1] > 5:
        metrics["top5_accuracy"] = top_k_accuracy(logits, labels, k=5)
    return metrics


def multi_label_metrics(eval_pred: EvalPrediction) -> dict[str, float]:
    """Micro/macro F1 at sigmoid 0.5 and mAP."""
    return multilabel_metrics(_logits(eval_pred.predictions), np.asarray(eval_pred.label_ids), threshold=0.5)


def segmentation_metrics_fn(num_labels: int, ignore_index: int = 255) -> Callable[[EvalPrediction], dict[str, float]]:
    """mIoU / mean accuracy / pixel accuracy over label maps produced by :func:`segmentation_logits_to_labels`."""

    def compute(eval_pred: EvalPrediction) -> dict[str, float]:
        result = mean_iou(_logits(eval_pred.predictions), eval_pred.label_ids, num_labels, ignore_index=ignore_index)
        return {key: value for key, value in result.items() if not key.startswith("per_category")}

    return compute


def segmentation_logits_to_labels(logits, labels: torch.Tensor) -> torch.Tensor:
    """Upsample (bilinear) segmentation logits to the label size and take the argmax, to keep eval memory small."""
    if isinstance(logits, (tuple, list)):
        logits = logits[0]
    upsampled = torch.nn.functional.interpolate(
        logits.float(), size=labels.shape[-2:], mode="bilinear", align_corners=False
    )
    return upsampled.argmax(dim=1)


def float_logits(logits, labels) -> torch.Tensor:
    """Classification logits as float32 (bf16 autocast logits cannot become numpy arrays)."""
    if isinstance(logits, (tuple, list)):
        logits = logits[0]
    return logits.float()
