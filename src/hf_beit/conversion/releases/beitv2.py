"""BEiT v2 (microsoft/unilm ``beit2/``): pre-trained, ImageNet and ADE20k checkpoints with the results published
in its README, PRETRAINING.md, get_started_for_image_classification.md and semantic_segmentation/README.md
(exact evaluation outputs where those files give them)."""

from __future__ import annotations

from ..families import BEITV2
from ..release_entry import ReleasedCheckpoint, ade20k_metrics, imagenet_metrics

_EPOCHS = {"": 1600, "_300e": 300}
_FT21K = "supervised on ImageNet-21k (21841 classes, 90 epochs)"
_FT21K_NOTE = (
    "No ImageNet-21k accuracy is published for this checkpoint; unilm recommends it as the starting point for "
    "fine-tuning."
)
_CLS_HEAD_NOTE = (
    "The original file also holds the CLS-pretraining head (two blocks fed from block {}); the converter keeps it in "
    "`cls_pretraining_head.safetensors` beside the MIM weights (`--cls-pretraining-head drop` leaves it out)."
)
# (size, schedule suffix) -> published ImageNet-1k accuracy of "<...>_pt1k{suffix}_ft1k"
_FT1K = {
    ("base", ""): (85.5, 97.5),
    ("base", "_300e"): (85.0, None),
    ("large", ""): (87.3, 98.2),
    ("large", "_300e"): (86.6, None),
}
_FT21KTO1K = {"base": (86.458, 97.978), "large": (88.370, 98.578)}  # get_started's "Expected results"
_ADE20K = {("base", ""): 53.1, ("base", "_ft21k"): 53.5, ("large", ""): 56.7, ("large", "_ft21k"): 57.54}


def _stem(size: str, suffix: str) -> str:
    return f"beitv2_{size}_patch16_224_pt1k{suffix}"


def _pretraining(epochs: int) -> str:
    return f"Masked image modeling (BEiT v2, VQ-KD visual tokens) on ImageNet-1k for {epochs} epochs"


def _entry(stem: str, task: str, size: str, finetuning: str, **kwargs) -> ReleasedCheckpoint:
    image_size = kwargs.pop("image_size", 224)
    epochs = kwargs.pop("epochs", 1600)
    return ReleasedCheckpoint(
        stem, stem.replace("_", "-"), task, size, image_size, _pretraining(epochs), finetuning, family=BEITV2,
        container=kwargs.pop("container", "module"), **kwargs,
    )


def _per_size(size: str) -> list[ReleasedCheckpoint]:
    found = []
    for suffix, epochs in _EPOCHS.items():
        found.append(
            _entry(
                _stem(size, suffix), "mim", size, "none (self-supervised only)", epochs=epochs,
                notes=(_CLS_HEAD_NOTE.format(BEITV2.early_layers(size)),),
            )
        )
        top1, top5 = _FT1K[(size, suffix)]
        found.append(
            _entry(
                f"{_stem(size, suffix)}_ft1k", "classification", size, "supervised on ImageNet-1k", epochs=epochs,
                label_set="imagenet-1k", num_labels=1000, metrics=imagenet_metrics(top1, top5),
                parent=_stem(size, suffix),
            )
        )
    found += [
        _entry(
            f"{_stem(size, '')}_ft21k", "classification", size, _FT21K, label_set="imagenet-22k", num_labels=21841,
            notes=(_FT21K_NOTE,), parent=_stem(size, ""),
        ),
        _entry(
            f"{_stem(size, '')}_ft21kto1k", "classification", size, f"{_FT21K}, then ImageNet-1k",
            label_set="imagenet-1k", num_labels=1000, metrics=imagenet_metrics(*_FT21KTO1K[size]),
            parent=f"{_stem(size, '')}_ft21k",
        ),
    ]
    for middle, after in (("", "pre-training"), ("_ft21k", "ImageNet-21k fine-tuning")):
        found.append(
            _entry(
                f"{_stem(size, '')}{middle}{'to' if middle else '_ft'}ade20k", "segmentation", size,
                f"UPerNet on ADE20k after {after} (160k iterations, 512x512 crops)", image_size=512,
                label_set="ade20k", num_labels=150, metrics=ade20k_metrics(_ADE20K[(size, middle)], crop=512),
                container="state_dict", parent=f"{_stem(size, '')}{middle}",
            )
        )
    return found


def entries() -> list[ReleasedCheckpoint]:
    """The 16 released BEiT v2 checkpoints (the VQ-KD tokenizer is :mod:`hf_beit.tokenizers.vqkd`)."""
    return [*_per_size("base"), *_per_size("large")]
