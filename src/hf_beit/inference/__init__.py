"""Inference for users: pipelines, batch prediction, sliding-window segmentation, embeddings, attention maps.

The HTTP endpoint lives in :mod:`hf_beit.inference.server` (``serve`` extra: starlette, uvicorn, httpx).
"""

from __future__ import annotations

from .._lazy import by_module, lazy_attributes

_EXPORTS = by_module({
    "attention_pictures": ("AttentionMaps", "attention_maps"),
    "embeddings": ("extract_embeddings",),
    "pipelines": ("pipeline",),
    "predict": ("class_probabilities", "predict_images", "top_predictions"),
    "segment": ("segment_files", "segment_image"),
    "sliding_window": ("sliding_window_logits", "window_starts"),
})

__all__ = sorted(_EXPORTS)  # noqa: PLE0605 - built from the table above

__getattr__ = lazy_attributes(__name__, _EXPORTS)
