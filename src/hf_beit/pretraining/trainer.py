"""BEiT masked-image-modeling pre-training on ``transformers.Trainer`` with unilm's hyperparameters as defaults.

unilm (``run_beit_pretraining.py``, see shared reference §5.4): AdamW betas (0.9, 0.999), eps 1e-8, weight decay
0.05 (not on 1-D parameters, biases, cls token, absolute position embeddings), peak lr 1.5e-3 with linear warmup
and per-step cosine decay to 1e-5, gradient clipping 3.0, drop path 0.1, layer scale 0.1 (base), 75 of 196
patches masked in blocks of >= 16. The loss is plain cross-entropy on the masked patches' visual tokens.
"""

from __future__ import annotations

import json
import os
from typing import Any

import torch
from transformers import Trainer, TrainingArguments

from hf_beit import BeitConfig, BeitForMaskedImageModeling
from hf_beit.atomic_io import atomic_output_dir
from hf_beit.losses import masked_image_modeling_loss
from hf_beit.masking import MaskingGenerator
from hf_beit.pretraining.defaults import DEFAULT_PRESET, PRETRAINING_DEFAULTS
from hf_beit.tokenizers.base import VisualTokenizer
from hf_beit.training.layer_decay import uses_weight_decay

TOKENIZER_SUBFOLDER = "visual_tokenizer"
PRETRAINING_CONFIG_NAME = "pretraining_config.json"
#: Model defaults of the recipe (layer scale comes from the preset: 0.1 base, 1e-5 large).
MODEL_DEFAULTS: dict[str, Any] = {"drop_path_rate": 0.1}

__all__ = [
    "PRETRAINING_DEFAULTS",
    "BeitPretrainingTrainer",
    "build_mask_generator",
    "build_pretraining_config",
    "pretraining_arguments",
    "save_pretrained_mim",
]


def pretraining_arguments(output_dir: str | os.PathLike, **overrides: Any) -> TrainingArguments:
    """``TrainingArguments`` with the unilm pre-training defaults; keyword arguments override them."""
    kwargs = {
        **PRETRAINING_DEFAULTS,
        "remove_unused_columns": False,  # the collator needs the raw "image" column
        "label_names": ["labels"],
        "report_to": "none",
        **overrides,
    }
    return TrainingArguments(output_dir=str(output_dir), **kwargs)


def build_pretraining_config(vocab_size: int, preset: str = DEFAULT_PRESET, **overrides: Any) -> BeitConfig:
    """A MIM config (mask token, shared relative position bias) from a preset, with ``vocab_size`` of the tokenizer."""
    if vocab_size < 2:
        raise ValueError(f"The visual tokenizer's vocab_size must be >= 2, got {vocab_size}.")
    settings = {**MODEL_DEFAULTS, **overrides, "vocab_size": vocab_size, "use_mask_token": True}
    return BeitConfig.from_preset(preset, **settings)


def build_mask_generator(
    config: BeitConfig,
    num_masking_patches: int | None = None,
    min_num_patches: int | None = None,
    seed: int | None = None,
) -> MaskingGenerator:
    """Masks for the config's patch grid: 75/196 of the patches and blocks of >= 16/196 unless given explicitly."""
    scaled = MaskingGenerator.for_grid(config.window_size)
    return MaskingGenerator(
        config.window_size,
        num_masking_patches=scaled.num_masking_patches if num_masking_patches is None else num_masking_patches,
        min_num_patches=scaled.min_num_patches if min_num_patches is None else min_num_patches,
        seed=seed,
    )


class BeitPretrainingTrainer(Trainer):
    """``Trainer`` computing the MIM loss on masked patches, with unilm's weight-decay groups; logs ``mlm_acc``."""

    loss_is_scaled_for_ga = False  # our loss is a per-batch mean

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._mlm_correct = 0
        self._mlm_total = 0

    def get_decay_parameter_names(self, model: torch.nn.Module) -> list[str]:
        return [name for name, param in model.named_parameters() if uses_weight_decay(name, param)]

    def compute_loss(
        self,
        model: torch.nn.Module,
        inputs: dict[str, torch.Tensor],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ):
        labels = inputs.pop("labels")
        bool_masked_pos = inputs["bool_masked_pos"]
        outputs = model(**inputs)
        loss = masked_image_modeling_loss(outputs.logits, labels, bool_masked_pos)
        if model.training:
            with torch.no_grad():
                target = labels[bool_masked_pos]
                predicted = outputs.logits[bool_masked_pos].argmax(-1)
                self._mlm_correct += int((predicted == target).sum())
                self._mlm_total += int((target != -100).sum())
        return (loss, outputs) if return_outputs else loss

    def log(self, logs: dict[str, float], *args: Any, **kwargs: Any) -> None:
        if "loss" in logs and self._mlm_total:
            logs["mlm_acc"] = round(self._mlm_correct / self._mlm_total, 4)
            self._mlm_correct = self._mlm_total = 0
        super().log(logs, *args, **kwargs)


def save_pretrained_mim(
    output_dir: str | os.PathLike,
    model: BeitForMaskedImageModeling,
    tokenizer: VisualTokenizer,
    settings: dict[str, Any],
    image_processor: Any = None,
    overwrite: bool = False,
) -> None:
    """Write the pre-trained model, its visual tokenizer (``visual_tokenizer/``), the run settings and optionally an
    image processor, atomically."""
    with atomic_output_dir(output_dir, overwrite=overwrite) as tmp:
        model.save_pretrained(tmp)
        if image_processor is not None:
            image_processor.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp / TOKENIZER_SUBFOLDER)
        (tmp / PRETRAINING_CONFIG_NAME).write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n")
