"""Training losses: (soft-target) cross-entropy with label smoothing, and multi-label BCE."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def soft_target_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ``-sum(targets * log_softmax(logits))``; targets are (B, C) probabilities."""
    return torch.sum(-targets * F.log_softmax(logits.float(), dim=-1), dim=-1).mean()


def finetuning_loss(
    logits: torch.Tensor, labels: torch.Tensor, multi_label: bool = False, label_smoothing: float = 0.0
) -> torch.Tensor:
    """The fine-tuning recipe's batch-mean loss for class ids (B,) with label smoothing, soft targets (B, C, e.g.
    from mixup) or multi-hot targets (multi-label). The models' own ``labels=`` loss is ``hf_beit.losses``'."""
    if multi_label:
        if labels.shape != logits.shape:
            raise ValueError(
                f"Multi-label targets must have the logits' shape {tuple(logits.shape)}, got {tuple(labels.shape)}."
            )
        return F.binary_cross_entropy_with_logits(logits.float(), labels.float())
    if labels.ndim == 2:
        return soft_target_cross_entropy(logits, labels)
    return F.cross_entropy(logits.float(), labels.long(), label_smoothing=label_smoothing)
