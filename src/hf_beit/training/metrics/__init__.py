"""Metrics shipped with hf_beit: plain functions plus offline ``evaluate`` modules (one directory each)."""

from __future__ import annotations

from pathlib import Path

from .functional import accuracy, average_precision, mean_iou, multilabel_metrics, top_k_accuracy

METRICS_DIR = Path(__file__).resolve().parent
METRIC_NAMES = ("accuracy", "top_k_accuracy", "multilabel", "mean_iou")


def metric_path(name: str) -> str:
    """Directory of the bundled ``evaluate`` module ``name`` (pass it to ``evaluate.load``)."""
    if name not in METRIC_NAMES:
        raise ValueError(f"Unknown hf_beit metric {name!r}; choose one of {', '.join(METRIC_NAMES)}.")
    return str(METRICS_DIR / name)


def load_metric(name: str, **kwargs):
    """``evaluate.load`` of a bundled metric; works offline (no Hub access)."""
    import evaluate

    return evaluate.load(metric_path(name), **kwargs)


__all__ = [
    "METRICS_DIR",
    "METRIC_NAMES",
    "accuracy",
    "average_precision",
    "load_metric",
    "mean_iou",
    "metric_path",
    "multilabel_metrics",
    "top_k_accuracy",
]
