"""The *Labels* row of a model card: which label set, how many classes, and the labels themselves (all of a small
set; a few examples and where the full list is for a large one)."""

from __future__ import annotations

from typing import Any

from .families import CheckpointFamily

#: Label sets with at most this many classes are listed in full.
FULL_LIST_MAX = 20
_EXAMPLES = 3
_PROVENANCE = {
    "rvl-cdip": "RVL-CDIP document classes in the dataset's label order",
    "imagenet-1k": "ImageNet-1k, WordNet lemmas",
    "imagenet-22k": "ImageNet-22k numbered without gaps as the sorted wnids of the non-empty classes; the Hub copy's "
    "id2label has gaps at 9205/15027",
    "ade20k": "ADE20k SceneParsing; background/unlabelled is ignored",
}


def _named(config: Any) -> list[str]:
    id2label = {int(k): str(v) for k, v in (config.id2label or {}).items()}
    return [f"{i} = {id2label.get(i, f'LABEL_{i}')}" for i in range(config.num_labels)]


def label_text(task: str, config: Any, label_set: str | None, family: CheckpointFamily) -> str:
    """The labels of a ``task`` model with ``config`` (``label_set``: the registry's name of its label set)."""
    if task == "mim":
        return f"none (visual-token vocabulary of {config.vocab_size} {family.tokenizer} codes)"
    if task == "embeddings":
        return "none (no task head)"
    return listed_labels(config, _PROVENANCE.get(label_set))


def listed_labels(config: Any, provenance: str | None = None) -> str:
    """``"N classes (provenance): 0 = a; 1 = b"`` for a classifier's ``config`` (a few examples for a large set)."""
    named = _named(config)
    head = f"{len(named)} classes" + (f" ({provenance})" if provenance else "")
    if len(named) <= FULL_LIST_MAX:
        return f"{head}: " + "; ".join(named)
    return f"{head}, e.g. " + "; ".join(named[:_EXAMPLES]) + "; ... (the full list is `id2label` in `config.json`)"
