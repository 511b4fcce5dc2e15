"""Fine-tuning BEiT with ``transformers.Trainer``: layer-decay optimizer, data, augmentation, metrics, recipes.

Names are imported lazily so that ``hf-beit`` sub-commands that do not train stay fast to start.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "AugmentConfig": "augment",
    "Mixup": "augment",
    "BeitTrainer": "trainer",
    "FinetuneArguments": "recipes",
    "run_finetuning": "recipes",
    "train_classification": "recipes",
    "train_segmentation": "recipes",
    "build_model": "init_from",
    "finetune_config": "init_from",
    "create_layer_decay_optimizer": "layer_decay",
    "get_layer_id": "layer_decay",
    "layer_decay_optimizer_cls_and_kwargs": "layer_decay",
    "layer_decay_parameter_groups": "layer_decay",
    "LabelSchema": "datasets",
    "load_digits_dataset": "datasets",
    "collate_pixel_batch": "collators",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'hf_beit.training' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
