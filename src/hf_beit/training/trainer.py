"""``BeitTrainer``: ``transformers.Trainer`` with BEiT's layer-decay optimizer, label smoothing and mixup/cutmix."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from transformers import Trainer, TrainerCallback

from .augment import Mixup
from .layer_decay import create_layer_decay_optimizer
from .loss import finetuning_loss


class BeitTrainer(Trainer):
    """Trainer for BEiT fine-tuning.

    * The optimizer is AdamW over ``layer_{id}_{decay|no_decay}`` groups (:mod:`.layer_decay`) with
      ``lr = learning_rate * layer_decay ** (L + 1 - id)``; the Trainer's scheduler scales every group alike.
    * Classification losses are computed here (label smoothing, soft mixup/cutmix targets, multi-label BCE);
      segmentation uses the model's own loss (decode + auxiliary head). Every loss is a per-process batch mean,
      so DDP's gradient averaging and gradient accumulation give the true mean.
    """

    loss_is_scaled_for_ga = False

    def __init__(
        self,
        *args,
        task: str = "classification",
        layer_decay: float = 1.0,
        decay_relative_position_tables: bool = True,
        multi_label: bool = False,
        label_smoothing: float = 0.0,
        mixup: Mixup | None = None,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        if task not in ("classification", "segmentation"):
            raise ValueError(f"task must be 'classification' or 'segmentation', got {task!r}.")
        if mixup is not None and (task != "classification" or multi_label):
            raise ValueError("Mixup/cutmix is only available for single-label classification.")
        self.task, self.layer_decay = task, layer_decay
        self.decay_relative_position_tables = decay_relative_position_tables
        self.multi_label, self.label_smoothing, self.mixup = multi_label, label_smoothing, mixup
        # our losses are plain batch means: do not let the Trainer rescale them by token counts
        self.model_accepts_loss_kwargs = False

    def create_optimizer(self, model=None) -> torch.optim.Optimizer:
        if self.optimizer is None:
            self.optimizer = create_layer_decay_optimizer(
                self.model if model is None else model,
                learning_rate=self.args.learning_rate,
                weight_decay=self.args.weight_decay,
                layer_decay=self.layer_decay,
                decay_relative_position_tables=self.decay_relative_position_tables,
                betas=(self.args.adam_beta1, self.args.adam_beta2),
                eps=self.args.adam_epsilon,
            )
        return self.optimizer

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if self.task == "segmentation":
            outputs = model(**inputs)
            loss = outputs.loss
        else:
            labels = inputs.get("labels")
            pixel_values = inputs["pixel_values"]
            if self.mixup is not None and model.training and labels is not None:
                pixel_values, labels = self.mixup(pixel_values, labels)
            outputs = model(pixel_values=pixel_values)
            loss = None
            if labels is not None:
                loss = finetuning_loss(outputs.logits, labels, self.multi_label, self.label_smoothing)
        return (loss, outputs) if return_outputs else loss


class JsonlLoggerCallback(TrainerCallback):
    """Append every Trainer log record (losses, learning rate, eval metrics) to ``<output_dir>/training_log.jsonl``."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        record = {"step": state.global_step, "epoch": state.epoch, **logs}
        with open(self.path, "a") as handle:
            handle.write(json.dumps(record) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
