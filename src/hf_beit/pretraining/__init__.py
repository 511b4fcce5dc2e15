"""BEiT masked-image-modeling pre-training: two-view collator, Trainer recipe and the `hf-beit pretrain` command.

Names are imported on first use, so that ``hf-beit`` sub-commands that do not pre-train stay fast to start.
"""

from __future__ import annotations

from .._lazy import by_module, lazy_attributes

_EXPORTS = by_module({
    "collator": ("IGNORE_INDEX", "DataCollatorForBeitPretraining", "TwoViewTransform"),
    "data": ("ImageFolderDataset", "load_digits_images"),
    "recipe": ("PretrainingOptions", "fit_kmeans_tokenizer", "run_pretraining"),
    "trainer": (
        "PRETRAINING_DEFAULTS", "BeitPretrainingTrainer", "build_mask_generator", "build_pretraining_config",
        "pretraining_arguments", "save_pretrained_mim",
    ),
})

__all__ = list(_EXPORTS)

__getattr__ = lazy_attributes(__name__, _EXPORTS)
