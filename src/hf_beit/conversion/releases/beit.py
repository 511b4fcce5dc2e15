"""BEiT v1 (microsoft/unilm ``beit/``): the results are the ones published in its README, get-started and
segmentation READMEs."""

from __future__ import annotations

from ..families import BEIT_PT1K
from ..release_entry import ReleasedCheckpoint, ade20k_metrics, imagenet_metrics

_PT = "Masked image modeling (BEiT, DALL-E visual tokens) on ImageNet-22k"
_FT22K = "supervised on ImageNet-22k (21841 classes)"
_TO1K = "then ImageNet-1k"


def _per_size(size: str) -> list[ReleasedCheckpoint]:
    pretrained, ft22k = f"beit_{size}_patch16_224_pt22k", f"beit_{size}_patch16_224_pt22k_ft22k"
    return [
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
            parent=pretrained,
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
            metrics=imagenet_metrics(*{"base": (83.7, 96.6), "large": (86.0, 97.6)}[size]),
            parent=pretrained,
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
            metrics=ade20k_metrics(*{"base": (53.6, 54.2), "large": (56.7, 57.0)}[size]),
            container="state_dict",
            parent=ft22k,
        ),
    ]


def entries() -> list[ReleasedCheckpoint]:
    """The 14 released BEiT v1 checkpoints."""
    found = [*_per_size("base"), *_per_size("large")]
    to1k = {
        ("base", 224): (85.2, 97.6),
        ("base", 384): (86.820, 98.124),
        ("large", 224): (87.396, 98.282),
        ("large", 384): (88.408, 98.602),
        ("large", 512): (88.600, 98.658),
    }
    for (size, resolution), (top1, top5) in to1k.items():
        repo = f"beit-{size}-patch16-{resolution}"
        found.append(
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
                metrics=imagenet_metrics(top1, top5),
                parent=f"beit_{size}_patch16_224_pt22k_ft22k",
            )
        )
    found.append(
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
    return found
