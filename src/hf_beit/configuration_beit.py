"""BEiT configuration: transformers' `BeitConfig` fields (config.json interchangeable) plus presets."""

from __future__ import annotations

from typing import Any

import transformers
from huggingface_hub.dataclasses import strict

_BASE = {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072}
_LARGE = {"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16, "intermediate_size": 4096}
# Architecture facts shared by every released BEiT v1 checkpoint (shared/reference/unilm-checkpoints.md §4).
_ORIGINAL = {"patch_size": 16, "layer_norm_eps": 1e-6, "use_absolute_position_embeddings": False, "hidden_act": "gelu"}
_FINETUNED = {"use_relative_position_bias": True, "use_mean_pooling": True}
_MIM = {"use_shared_relative_position_bias": True, "use_mask_token": True, "vocab_size": 8192}
_SEGMENTATION = {"use_relative_position_bias": True, "image_size": 640, "num_labels": 150, "use_auxiliary_head": True}

BEIT_PRESETS: dict[str, dict[str, Any]] = {
    "beit-base-patch16-224-pt22k": {**_ORIGINAL, **_BASE, **_MIM, "image_size": 224, "layer_scale_init_value": 0.1},
    "beit-large-patch16-224-pt22k": {**_ORIGINAL, **_LARGE, **_MIM, "image_size": 224, "layer_scale_init_value": 1e-5},
    "beit-base-patch16-224": {**_ORIGINAL, **_BASE, **_FINETUNED, "image_size": 224, "layer_scale_init_value": 0.1},
    "beit-base-patch16-384": {**_ORIGINAL, **_BASE, **_FINETUNED, "image_size": 384, "layer_scale_init_value": 0.1},
    "beit-large-patch16-224": {**_ORIGINAL, **_LARGE, **_FINETUNED, "image_size": 224, "layer_scale_init_value": 1e-5},
    "beit-large-patch16-384": {**_ORIGINAL, **_LARGE, **_FINETUNED, "image_size": 384, "layer_scale_init_value": 1e-5},
    "beit-large-patch16-512": {**_ORIGINAL, **_LARGE, **_FINETUNED, "image_size": 512, "layer_scale_init_value": 1e-5},
    "beit-base-patch16-640": {
        **_ORIGINAL, **_BASE, **_SEGMENTATION, "out_indices": [3, 5, 7, 11], "layer_scale_init_value": 0.1,
    },
    "beit-large-patch16-640": {
        **_ORIGINAL, **_LARGE, **_SEGMENTATION, "out_indices": [7, 11, 15, 23], "layer_scale_init_value": 1e-6,
    },
}


@strict
class BeitConfig(transformers.BeitConfig):
    """Configuration of hf_beit models.

    Same fields, defaults and ``model_type`` ("beit") as ``transformers.BeitConfig``, so a ``config.json`` written by
    either package loads in the other. One deliberate difference in meaning: for segmentation, ``out_indices`` are
    the 0-based *blocks* after which UPerNet features are taken (unilm/mmseg semantics; base ``[3, 5, 7, 11]``).
    Stock transformers reads the same numbers two blocks earlier. See README "Segmentation feature taps".
    """

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> BeitConfig:
        """Build the configuration of a released BEiT v1 architecture, e.g. ``"beit-base-patch16-224"``."""
        if name not in BEIT_PRESETS:
            raise KeyError(f"Unknown BEiT preset {name!r}. Available presets: {', '.join(sorted(BEIT_PRESETS))}.")
        return cls(**{**BEIT_PRESETS[name], **overrides})

    @property
    def image_size_2d(self) -> tuple[int, int]:
        """``image_size`` as ``(height, width)``."""
        return _pair(self.image_size)

    @property
    def patch_size_2d(self) -> tuple[int, int]:
        """``patch_size`` as ``(height, width)``."""
        return _pair(self.patch_size)

    @property
    def window_size(self) -> tuple[int, int]:
        """Patch grid of the configured image size; relative-position tables are sized for it."""
        (h, w), (ph, pw) = self.image_size_2d, self.patch_size_2d
        return h // ph, w // pw


def _pair(value: int | list[int] | tuple[int, ...]) -> tuple[int, int]:
    if isinstance(value, (list, tuple)):
        return int(value[0]), int(value[1])
    return int(value), int(value)
