"""DiT (microsoft/unilm ``dit/``): the document-image checkpoints hosted at HYPJUDY/dit, with the RVL-CDIP
accuracy published in dit/README.md. The Hub copies are microsoft/dit-* (model_type "beit")."""

from __future__ import annotations

from ..families import DIT
from ..release_entry import Metric, ReleasedCheckpoint

_FINETUNED_URL = "https://huggingface.co/HYPJUDY/dit/resolve/main/dit-fts/{}.pth"
_PT = "Masked image modeling (BEiT objective, dVAE visual tokens) on 42M IIT-CDIP document images"
_DETECTION_NOTE = (
    "For detection (DiT's Mask/Cascade R-CNN), features are taken after 0-based blocks {}: "
    "`BeitBackbone.from_pretrained(repo, out_indices={}, add_fpn=True)`."
)
_TAPS = {"base": [3, 5, 7, 11], "large": [7, 11, 15, 23]}
_STEMS = {
    "base": ("dit-base-224-p16-500k-62d53a", "rvlcdip_dit-b"),
    "large": ("dit-large-224-p16-500k-d7a2fb", "rvlcdip_dit-l"),
}
_RVL_CDIP = {"base": 92.11, "large": 92.69}


def _accuracy(value: float) -> tuple[Metric, ...]:
    return (Metric("Accuracy", "accuracy", value, "aharley/rvl_cdip", "RVL-CDIP", "image-classification"),)


def entries() -> list[ReleasedCheckpoint]:
    """dit-base / dit-large (pre-trained) and their RVL-CDIP classifiers."""
    found = []
    for size, (pretrained, finetuned) in _STEMS.items():
        taps = _TAPS[size]
        found += [
            ReleasedCheckpoint(
                pretrained, f"dit-{size}", "mim", size, 224, _PT, "none (self-supervised only)",
                hub_equivalent=f"microsoft/dit-{size}", family=DIT,
                notes=(_DETECTION_NOTE.format(taps, taps),),
            ),
            ReleasedCheckpoint(
                finetuned, f"dit-{size}-finetuned-rvlcdip", "classification", size, 224, _PT,
                "supervised on RVL-CDIP (400k document images, 16 classes)", "rvl-cdip", 16,
                hub_equivalent=f"microsoft/dit-{size}-finetuned-rvlcdip", metrics=_accuracy(_RVL_CDIP[size]),
                family=DIT, download_url=_FINETUNED_URL.format(finetuned), parent=pretrained,
            ),
        ]
    return found
