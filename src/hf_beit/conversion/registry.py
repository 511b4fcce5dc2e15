"""Registry of the released BEiT v1 checkpoints (microsoft/unilm), with the facts needed to convert and describe them.

Accuracy/mIoU numbers are the ones published in unilm's ``beit/README.md`` (and its get-started / segmentation
READMEs).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..configuration_beit import MODEL_SIZES
from .errors import ConversionError
from .families import BEIT, BEIT_PT1K, CheckpointFamily

DOWNLOAD_URL = "https://github.com/addf400/files/releases/download/v1.0/{}.pth"


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
    """A released unilm checkpoint: what it is, how to convert it, and what its model card says."""

    name: str  # unilm file stem
    repo_name: str  # name of the converted repo (the Hub name where microsoft/* exists)
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

    @property
    def url(self) -> str:
        return DOWNLOAD_URL.format(self.name)

    @property
    def architecture(self) -> dict:
        """Expected architecture numbers (hidden size, depth, heads, FFN)."""
        return dict(MODEL_SIZES[self.size])


def _in1k(top1: float, top5: float, note: str = "") -> tuple[Metric, ...]:
    args = ("imagenet-1k", "ImageNet-1k (val)", "image-classification", note)
    return (Metric("Top-1 accuracy", "accuracy", top1, *args), Metric("Top-5 accuracy", "top_5_accuracy", top5, *args))


def _ade(single: float, multi: float) -> tuple[Metric, ...]:
    args = ("ade20k", "ADE20k (val)", "image-segmentation")
    return (
        Metric("mIoU", "mean_iou", single, *args, "single-scale, 640 sliding window"),
        Metric("mIoU (ms+flip)", "mean_iou", multi, *args, "multi-scale + flip"),
    )


_PT = "Masked image modeling (BEiT, DALL-E visual tokens) on ImageNet-22k"
_FT22K = "supervised on ImageNet-22k (21841 classes)"
_TO1K = "then ImageNet-1k"
_SEG_NOTE = (
    "UPerNet features are taken after 0-based blocks {} as in the original mmseg model; stock transformers taps "
    "two blocks earlier, so load this repo with hf_beit to reproduce the original outputs."
)


def _entries() -> list[ReleasedCheckpoint]:
    entries = []
    for size in ("base", "large"):
        entries += [
            ReleasedCheckpoint(
                f"beit_{size}_patch16_224_pt22k",
                f"beit-{size}-patch16-224-pt22k",
                "mim",
                size,
                224,
                _PT,
                "none (self-supervised only)",
                hub_equivalent=f"microsoft/beit-{size}-patch16-224-pt22k",
                notes=("Intended as initialisation for fine-tuning; the 8192-way head predicts DALL-E visual tokens.",),
            ),
            ReleasedCheckpoint(
                f"beit_{size}_patch16_224_pt22k_ft22k",
                f"beit-{size}-patch16-224-pt22k-ft22k",
                "classification",
                size,
                224,
                _PT,
                _FT22K,
                "imagenet-22k",
                21841,
                hub_equivalent=f"microsoft/beit-{size}-patch16-224-pt22k-ft22k",
                notes=("No ImageNet-22k accuracy is published for this checkpoint.",),
            ),
            ReleasedCheckpoint(
                f"beit_{size}_patch16_224_pt22k_ft1k",
                f"beit-{size}-patch16-224-pt22k-ft1k",
                "classification",
                size,
                224,
                _PT,
                "supervised on ImageNet-1k (directly after pre-training)",
                "imagenet-1k",
                1000,
                metrics=_in1k(*{"base": (83.7, 96.6), "large": (86.0, 97.6)}[size]),
            ),
            ReleasedCheckpoint(
                f"beit_{size}_patch16_640_pt22k_ft22ktoade20k",
                f"beit-{size}-finetuned-ade-640-640",
                "segmentation",
                size,
                640,
                _PT,
                f"{_FT22K}, then UPerNet on ADE20k (160k iterations, 640x640 crops)",
                "ade20k",
                150,
                f"microsoft/beit-{size}-finetuned-ade-640-640",
                metrics=_ade(*{"base": (53.6, 54.2), "large": (56.7, 57.0)}[size]),
                notes=(_SEG_NOTE.format({"base": [3, 5, 7, 11], "large": [7, 11, 15, 23]}[size]),),
            ),
        ]
    to1k = {
        ("base", 224): (85.2, 97.6),
        ("base", 384): (86.820, 98.124),
        ("large", 224): (87.396, 98.282),
        ("large", 384): (88.408, 98.602),
        ("large", 512): (88.600, 98.658),
    }
    for (size, resolution), (top1, top5) in to1k.items():
        repo = f"beit-{size}-patch16-{resolution}"
        entries.append(
            ReleasedCheckpoint(
                f"beit_{size}_patch16_{resolution}_pt22k_ft22kto1k",
                repo,
                "classification",
                size,
                resolution,
                _PT,
                f"{_FT22K}, {_TO1K} at {resolution}x{resolution}",
                "imagenet-1k",
                1000,
                hub_equivalent=f"microsoft/{repo}",
                metrics=_in1k(top1, top5),
            )
        )
    entries.append(
        ReleasedCheckpoint(
            "beit_base_patch16_224_pt1k_800ep",
            "beit-base-patch16-224-pt1k-800ep",
            "mim",
            "base",
            224,
            "Masked image modeling on ImageNet-1k for 800 epochs (absolute position embeddings, no layer scale)",
            "none (self-supervised only)",
            family=BEIT_PT1K,
            notes=("Released for analysis; uses absolute position embeddings instead of relative position bias.",),
        )
    )
    return entries


RELEASED_CHECKPOINTS: dict[str, ReleasedCheckpoint] = {entry.name: entry for entry in _entries()}


def get_released_checkpoint(name: str) -> ReleasedCheckpoint:
    """Find an entry by unilm file stem (``beit_base_patch16_224_pt22k``) or repo name (``beit-base-patch16-224``)."""
    stem = name.removesuffix(".pth").split("/")[-1]
    for entry in RELEASED_CHECKPOINTS.values():
        if stem in (entry.name, entry.repo_name):
            return entry
    known = ", ".join(sorted(RELEASED_CHECKPOINTS))
    raise ConversionError(f"Unknown released checkpoint {name!r}. Known names: {known}.")
