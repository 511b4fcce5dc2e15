"""Fine-tuning BEiT with ``transformers.Trainer``: layer-decay optimizer, data, augmentation, metrics, recipes.

Names are imported lazily so that ``hf-beit`` sub-commands that do not train stay fast to start.
"""

from __future__ import annotations

from .._lazy import by_module, lazy_attributes

_EXPORTS = by_module({
    "augment": ("AugmentConfig", "Mixup"),
    "trainer": ("BeitTrainer",),
    "recipes": ("FinetuneArguments", "run_finetuning", "train_classification", "train_segmentation"),
    "init_from": ("build_model", "finetune_config"),
    "layer_decay": (
        "create_layer_decay_optimizer", "get_layer_id", "layer_decay_optimizer_cls_and_kwargs",
        "layer_decay_parameter_groups",
    ),
    "datasets": ("LabelSchema", "load_digits_dataset"),
    "collators": ("collate_pixel_batch",),
})

__all__ = list(_EXPORTS)

__getattr__ = lazy_attributes(__name__, _EXPORTS)
