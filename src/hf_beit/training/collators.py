"""Collate preprocessed examples into model batches."""

from __future__ import annotations

import torch


def collate_pixel_batch(examples: list[dict]) -> dict[str, torch.Tensor]:
    """Stack ``pixel_values`` (B, 3, H, W) and ``labels``.

    Labels become int64 class ids (B,), float32 multi-hot targets (B, C) or int64 masks (B, H, W),
    depending on what the preprocessing produced.
    """
    if not examples:
        raise ValueError("Cannot collate an empty batch.")
    batch = {"pixel_values": torch.stack([example["pixel_values"] for example in examples])}
    if "labels" in examples[0]:
        labels = [example["labels"] for example in examples]
        if isinstance(labels[0], torch.Tensor):
            batch["labels"] = torch.stack(labels)
        elif isinstance(labels[0], (list, tuple)):
            batch["labels"] = torch.tensor(labels, dtype=torch.float32)
        else:
            batch["labels"] = torch.tensor(labels, dtype=torch.long)
    return batch
