"""What the registry knows about one released checkpoint: identity, task, size, card facts and published results."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..configuration_beit import MODEL_SIZES
from .families import BEIT, CheckpointFamily


@dataclass(frozen=True)
class Metric:
    """One published result (model-index entry)."""

    name: str  # e.g. "Top-1 accuracy"
    type: str  # "accuracy", "top_5_accuracy", "mean_iou", ...
    value: float
    dataset: str  # "imagenet-1k", "ade20k"
    dataset_name: str
    task: str  # "image-classification" / "image-segmentation"
    note: str = ""


@dataclass(frozen=True)
class ReleasedCheckpoint:
    """A released checkpoint: what it is, how to convert it, and what its model card says."""

    name: str  # original file stem (unilm families) or Hub repo name (transformers-format families)
    repo_name: str  # name of the converted repo (the Hub name where one exists)
    task: str
    size: str
    image_size: int
    pretraining: str
    finetuning: str
    label_set: str | None = None
    num_labels: int | None = None
    hub_equivalent: str | None = None
    metrics: tuple[Metric, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)
    family: CheckpointFamily = BEIT
    container: str = "model"  # where the released file keeps its weights (for cards written without the file)
    download_url: str | None = None  # when the family's URL pattern does not give it
    parent: str | None = None  # the registry entry (name) this checkpoint was fine-tuned from

    @property
    def url(self) -> str:
        return self.download_url or self.family.download_url.format(self.name)

    def base_model(self, repo_id: str | None = None) -> str | None:
        """The repo id of the parent entry, in the namespace of ``repo_id`` (this entry's repo id), for
        ``base_model``."""
        if self.parent is None:
            return None
        from .registry import RELEASED_CHECKPOINTS

        return in_namespace(RELEASED_CHECKPOINTS[self.parent].repo_name, repo_id)

    @property
    def architecture(self) -> dict:
        """Expected architecture numbers (hidden size, depth, heads, FFN)."""
        return dict(MODEL_SIZES[self.size])

    @property
    def cls_pretraining_early_layers(self) -> int | None:
        """Blocks feeding BEiT v2's CLS-pretraining head (MIM checkpoints of families that have one)."""
        return self.family.early_layers(self.size) if self.task == "mim" else None


def in_namespace(repo_name: str, repo_id: str | None) -> str:
    """``repo_name`` in the Hub namespace of ``repo_id`` (``org/x`` -> ``org/repo_name``; no namespace: as is)."""
    namespace = (repo_id or "").rpartition("/")[0]
    return f"{namespace}/{repo_name}" if namespace else repo_name


def imagenet_metrics(top1: float, top5: float | None = None, note: str = "") -> tuple[Metric, ...]:
    """Published ImageNet-1k top-1 (and top-5) accuracy."""
    args = ("imagenet-1k", "ImageNet-1k (val)", "image-classification", note)
    top = (Metric("Top-1 accuracy", "accuracy", top1, *args),)
    return top if top5 is None else (*top, Metric("Top-5 accuracy", "top_5_accuracy", top5, *args))


def ade20k_metrics(single: float, multi: float | None = None, crop: int = 640) -> tuple[Metric, ...]:
    """Published ADE20k mIoU, single-scale (and multi-scale + flip)."""
    args = ("ade20k", "ADE20k (val)", "image-segmentation")
    single_metric = (Metric("mIoU", "mean_iou", single, *args, f"single-scale, {crop} sliding window"),)
    if multi is None:
        return single_metric
    return (*single_metric, Metric("mIoU (ms+flip)", "mean_iou", multi, *args, "multi-scale + flip"))
