"""Plain numpy metric functions shared by the ``evaluate`` modules and the Trainer ``compute_metrics``."""

from __future__ import annotations

import numpy as np

from ...segmentation_labels import reduce_labels


def _as_labels(references, name: str = "references") -> np.ndarray:
    labels = np.asarray(references)
    if labels.ndim != 1:
        raise ValueError(f"{name} must be a 1-D sequence of class ids, got shape {labels.shape}.")
    return labels.astype(np.int64)


def accuracy(predictions, references) -> float:
    """Fraction of ``predictions`` (class ids) equal to ``references``."""
    preds, labels = _as_labels(predictions, "predictions"), _as_labels(references)
    if preds.shape != labels.shape:
        raise ValueError(f"predictions {preds.shape} and references {labels.shape} must have the same length.")
    if labels.size == 0:
        raise ValueError("Cannot compute accuracy of an empty set.")
    return float((preds == labels).mean())


def top_k_accuracy(scores, references, k: int = 5) -> float:
    """Fraction of samples whose reference is among the ``k`` highest ``scores`` (N, C); ties favour lower ids."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = _as_labels(references)
    if scores.ndim != 2 or scores.shape[0] != labels.shape[0]:
        raise ValueError(f"scores must have shape (N, num_classes) with N={labels.shape[0]}, got {scores.shape}.")
    k = min(k, scores.shape[1])
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return float((top == labels[:, None]).any(axis=1).mean())


def _f1(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    denominator = 2 * tp + fp + fn
    return np.divide(2 * tp, denominator, out=np.zeros_like(tp, dtype=np.float64), where=denominator > 0)


def average_precision(scores, targets) -> float:
    """Area under the precision-recall step curve (the definition of sklearn ``average_precision_score``)."""
    scores, targets = np.asarray(scores, dtype=np.float64), np.asarray(targets).astype(bool)
    positives = targets.sum()
    if positives == 0:
        return float("nan")
    order = np.argsort(-scores, kind="mergesort")
    scores, targets = scores[order], targets[order]
    # one point per distinct score threshold
    last_of_threshold = np.r_[np.nonzero(np.diff(scores))[0], scores.size - 1]
    true_positives = np.cumsum(targets)[last_of_threshold]
    precision = true_positives / (last_of_threshold + 1)
    recall = true_positives / positives
    recall_steps = np.diff(np.r_[0.0, recall])
    return float((recall_steps * precision).sum())


def multilabel_metrics(scores, references, threshold: float = 0.5) -> dict[str, float]:
    """Micro/macro F1 (a class is predicted when ``sigmoid(logit) > threshold``) and mean average precision over
    classes with a positive.

    ``scores`` are logits; ``threshold`` is a probability, the same as ``hf-beit predict --threshold``;
    ``references`` is a multi-hot (N, C) array.
    """
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold is a probability in (0, 1), got {threshold}.")
    scores = np.asarray(scores, dtype=np.float64)
    targets = np.asarray(references)
    if scores.ndim != 2 or scores.shape != targets.shape:
        raise ValueError(f"scores {scores.shape} and references {targets.shape} must both be (N, num_classes).")
    targets = targets.astype(bool)
    predicted = scores > np.log(threshold / (1.0 - threshold))  # sigmoid(s) > t  <=>  s > logit(t)
    tp = (predicted & targets).sum(axis=0).astype(np.float64)
    fp = (predicted & ~targets).sum(axis=0).astype(np.float64)
    fn = (~predicted & targets).sum(axis=0).astype(np.float64)
    per_class_ap = [average_precision(scores[:, c], targets[:, c]) for c in range(scores.shape[1])]
    valid_ap = [ap for ap in per_class_ap if not np.isnan(ap)]
    return {
        "f1_micro": float(_f1(tp.sum(keepdims=True), fp.sum(keepdims=True), fn.sum(keepdims=True))[0]),
        "f1_macro": float(_f1(tp, fp, fn).mean()),
        "mAP": float(np.mean(valid_ap)) if valid_ap else float("nan"),
    }


def reduce_segmentation_labels(label_map: np.ndarray, ignore_index: int = 255) -> np.ndarray:
    """ADE20k convention: background 0 -> ``ignore_index``, class k -> k - 1, ``ignore_index`` stays."""
    return reduce_labels(np.asarray(label_map).astype(np.int64), ignore_index)


def segmentation_confusion(predictions, references, num_labels: int, ignore_index: int = 255) -> np.ndarray:
    """Confusion matrix (num_labels, num_labels), rows = reference, over pixels whose reference != ignore_index."""
    total = np.zeros((num_labels, num_labels), dtype=np.int64)
    for pred, label in zip(predictions, references, strict=True):
        pred, label = np.asarray(pred).astype(np.int64), np.asarray(label).astype(np.int64)
        if pred.shape != label.shape:
            raise ValueError(f"prediction {pred.shape} and reference {label.shape} maps must have the same shape.")
        keep = label != ignore_index
        pred, label = pred[keep], label[keep]
        if label.size and (label.min() < 0 or label.max() >= num_labels):
            raise ValueError(f"reference ids must be in [0, {num_labels}) or {ignore_index}; got {label.max()}.")
        if pred.size and (pred.min() < 0 or pred.max() >= num_labels):
            raise ValueError(f"predicted ids must be in [0, {num_labels}); got {pred.max()}.")
        total += np.bincount(label * num_labels + pred, minlength=num_labels**2).reshape(num_labels, num_labels)
    return total


def mean_iou(
    predictions, references, num_labels: int, ignore_index: int = 255, reduce_labels: bool = False
) -> dict[str, float | list[float]]:
    """mmseg-style mIoU, mean class accuracy and pixel accuracy.

    Classes absent from both prediction and reference get IoU NaN and are left out of the means.
    With ``reduce_labels`` the references are first mapped 0 -> ignore, k -> k - 1 (predictions are not).
    """
    if reduce_labels:
        references = [reduce_segmentation_labels(label, ignore_index) for label in references]
    confusion = segmentation_confusion(predictions, references, num_labels, ignore_index)
    intersection = np.diag(confusion).astype(np.float64)
    label_area = confusion.sum(axis=1).astype(np.float64)
    union = label_area + confusion.sum(axis=0) - intersection
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = intersection / union
        class_accuracy = intersection / label_area
    total = label_area.sum()
    return {
        "mean_iou": float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan"),
        "mean_accuracy": float(np.nanmean(class_accuracy)) if np.isfinite(class_accuracy).any() else float("nan"),
        "pixel_accuracy": float(intersection.sum() / total) if total else float("nan"),
        "per_category_iou": iou.tolist(),
        "per_category_accuracy": class_accuracy.tolist(),
    }
