"""Losses of the BEiT heads (classification, masked image modeling, semantic segmentation)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100


def infer_problem_type(labels: torch.Tensor, num_labels: int) -> str:
    """transformers' rule: 1 label -> regression; integer labels -> single-label; otherwise multi-label."""
    if num_labels == 1:
        return "regression"
    if labels.dtype in (torch.long, torch.int, torch.int16, torch.int8, torch.uint8):
        return "single_label_classification"
    return "multi_label_classification"


def classification_loss(logits: torch.Tensor, labels: torch.Tensor, config) -> torch.Tensor:
    """Loss for ``config.problem_type`` (inferred per call, without writing to the config, when it is unset)."""
    labels = labels.to(logits.device)
    problem_type = config.problem_type or infer_problem_type(labels, config.num_labels)
    if problem_type == "regression":
        return F.mse_loss(logits.squeeze(-1).float(), labels.squeeze(-1).float())
    if problem_type == "single_label_classification":
        return F.cross_entropy(logits.float().view(-1, logits.shape[-1]), labels.view(-1))
    if problem_type == "multi_label_classification":
        return F.binary_cross_entropy_with_logits(logits.float(), labels.to(torch.float32))
    raise ValueError(
        f"Unknown problem_type {problem_type!r}; use 'regression', 'single_label_classification' or "
        "'multi_label_classification'."
    )


def masked_image_modeling_loss(
    logits: torch.Tensor, labels: torch.Tensor, bool_masked_pos: torch.Tensor | None
) -> torch.Tensor:
    """Cross-entropy between the predicted visual tokens of the masked patches and their tokenizer ids."""
    if bool_masked_pos is None:
        raise ValueError("Computing the masked-image-modeling loss needs bool_masked_pos.")
    mask = bool_masked_pos.bool()
    labels = labels.to(logits.device)
    if labels.shape == mask.shape:  # (batch, num_patches), IGNORE_INDEX where nothing is predicted
        labels = labels[mask]
    elif labels.ndim != 1 or labels.numel() != int(mask.sum()):
        raise ValueError(
            f"labels must be (batch, num_patches)={tuple(mask.shape)} or 1-D with one id per masked patch "
            f"({int(mask.sum())}), got shape {tuple(labels.shape)}."
        )
    return F.cross_entropy(logits[mask].float(), labels, ignore_index=IGNORE_INDEX)


def semantic_segmentation_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    ignore_index: int,
    auxiliary_logits: torch.Tensor | None = None,
    auxiliary_weight: float = 0.4,
) -> torch.Tensor:
    """Pixel-wise cross-entropy at label resolution (logits upsampled bilinearly), plus the weighted auxiliary loss."""
    if labels.ndim != 3:
        raise ValueError(f"Segmentation labels must be (batch, height, width), got shape {tuple(labels.shape)}.")
    labels = labels.to(logits.device).long()

    def pixel_loss(scores: torch.Tensor) -> torch.Tensor:
        upsampled = F.interpolate(scores.float(), size=labels.shape[-2:], mode="bilinear", align_corners=False)
        return F.cross_entropy(upsampled, labels, ignore_index=ignore_index)

    loss = pixel_loss(logits)
    if auxiliary_logits is not None:
        loss = loss + auxiliary_weight * pixel_loss(auxiliary_logits)
    return loss
