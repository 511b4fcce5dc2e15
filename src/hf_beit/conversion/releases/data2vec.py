"""data2vec-vision (facebookresearch/data2vec_vision): the Hub repos facebook/data2vec-vision-*, written by
transformers (model_type "data2vec-vision"); converted from the repo, not from an original .pth file."""

from __future__ import annotations

from ..families import DATA2VEC_VISION
from ..release_entry import ReleasedCheckpoint

_PT = "data2vec self-distillation on ImageNet-1k (masked patches regress an EMA teacher's features)"


def entries() -> list[ReleasedCheckpoint]:
    """facebook/data2vec-vision-{base,large} (encoders) and their ImageNet-1k classifiers (``-ft1k``)."""
    found = []
    for size in ("base", "large"):
        for suffix, task, finetuning, labels in (
            ("", "embeddings", "none (self-supervised only)", (None, None)),
            ("-ft1k", "classification", "supervised on ImageNet-1k", ("imagenet-1k", 1000)),
        ):
            name = f"data2vec-vision-{size}{suffix}"
            found.append(
                ReleasedCheckpoint(
                    name, name, task, size, 224, _PT, finetuning, *labels, hub_equivalent=f"facebook/{name}",
                    family=DATA2VEC_VISION, container="transformers repo",
                    parent=f"data2vec-vision-{size}" if suffix else None,
                )
            )
    return found
