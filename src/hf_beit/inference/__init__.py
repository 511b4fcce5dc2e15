"""Inference for users: pipelines, batch prediction, sliding-window segmentation, embeddings, attention maps.

The HTTP endpoint lives in :mod:`hf_beit.inference.server` (``serve`` extra: starlette, uvicorn, httpx).
"""

from .attention_maps import AttentionMaps, attention_maps
from .embeddings import extract_embeddings
from .pipelines import pipeline
from .predict import class_probabilities, predict_images, top_predictions
from .segment import segment_files, segment_image
from .sliding_window import sliding_window_logits, window_starts

__all__ = [
    "AttentionMaps",
    "attention_maps",
    "class_probabilities",
    "extract_embeddings",
    "pipeline",
    "predict_images",
    "segment_files",
    "segment_image",
    "sliding_window_logits",
    "top_predictions",
    "window_starts",
]
