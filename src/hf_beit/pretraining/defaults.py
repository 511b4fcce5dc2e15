"""unilm's pre-training recipe defaults, importable without torch (the CLI shows them in --help)."""

from __future__ import annotations

from typing import Any

DEFAULT_PRESET = "beit-base-patch16-224-pt22k"

#: ``TrainingArguments`` defaults of the unilm recipe (everything else is transformers' default).
PRETRAINING_DEFAULTS: dict[str, Any] = {
    "learning_rate": 1.5e-3,
    "adam_beta1": 0.9,
    "adam_beta2": 0.999,
    "adam_epsilon": 1e-8,
    "weight_decay": 0.05,
    "max_grad_norm": 3.0,
    "lr_scheduler_type": "cosine_with_min_lr",
    "lr_scheduler_kwargs": {"min_lr": 1e-5},
}
