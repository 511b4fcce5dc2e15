"""Re-targeting an original state dict to another task or resolution, as unilm's fine-tuning loaders do."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..relative_position_resize import (
    expand_shared_relative_position_bias,
    resize_absolute_position_embeddings,
    resize_relative_position_bias_table,
)
from .config_inference import CheckpointFacts
from .errors import ConversionError

_UNILM_SHARED = "rel_pos_bias.relative_position_bias_table"
_UNILM_LAYER = "blocks.{}.attn.relative_position_bias_table"
# Weights that belong to each task's head (backbone-relative unilm names).
_HEAD_PREFIXES = {
    "mim": ("mask_token", "lm_head.", "norm."),
    "classification": ("fc_norm.", "head.", "norm."),
    "segmentation": ("fpn1.", "fpn2.", "decode_head.", "auxiliary_head."),
    "backbone": (),
}
# Names (classic and transformers-5 in-memory) of the weights a newly created head starts without.
NEW_HEAD_KEYS = {
    "classification": ("classifier.", "beit.pooler.", "beit.layernorm."),
    "segmentation": ("fpn", "decode_head.", "auxiliary_head."),
}


@dataclass
class Adaptation:
    """Result of re-targeting: the state dict, which new-head weights will be freshly initialised, and notes."""

    state_dict: dict[str, torch.Tensor]
    new_head_prefixes: tuple[str, ...] = ()
    notes: list[str] = field(default_factory=list)


def adapt_to_task(
    state_dict: dict[str, torch.Tensor], facts: CheckpointFacts, task: str, num_labels: int | None = None
) -> Adaptation:
    """Drop the source head when the target task (or its number of labels) differs, and expand a shared relative
    table into every layer when the target uses per-layer bias (unilm's MIM -> fine-tuning initialisation)."""
    if task == "mim" and facts.task != "mim":
        raise ConversionError(f"A {facts.task} checkpoint has no visual-token head; it cannot be converted for MIM.")
    source_head = _HEAD_PREFIXES[facts.task]
    drop_head = facts.task != task
    if not drop_head and task != "mim" and num_labels is not None and num_labels != facts.num_labels:
        drop_head = True  # unilm deletes a head whose shape does not match
    notes = []
    adapted = dict(state_dict)
    if drop_head:
        removed = [key for key in adapted if key.startswith(source_head)]
        for key in removed:
            del adapted[key]
        if removed:
            notes.append(f"Dropped the {facts.task} head ({len(removed)} tensors); the {task} head is new.")
    if task != "mim" and _UNILM_SHARED in adapted:
        adapted = expand_shared_relative_position_bias(adapted, facts.num_hidden_layers, _UNILM_SHARED, _UNILM_LAYER)
        notes.append("Copied the shared relative position bias into every layer (as unilm does for fine-tuning).")
    return Adaptation(adapted, NEW_HEAD_KEYS.get(task, ()) if drop_head else (), notes)


def resize_position_parameters(
    state_dict: dict[str, torch.Tensor], src_image: int, dst_image: int, patch_size: int
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Resize relative tables (geometric-progression bicubic) and absolute embeddings (bicubic) in a converted
    (classic HF names) state dict from a ``src_image`` to a ``dst_image`` resolution."""
    if src_image == dst_image:
        return state_dict, []
    if src_image % patch_size or dst_image % patch_size:
        raise ConversionError(f"Image sizes {src_image} and {dst_image} must be multiples of the patch {patch_size}.")
    src, dst = src_image // patch_size, dst_image // patch_size
    resized = dict(state_dict)
    for key, tensor in state_dict.items():
        if key.endswith("relative_position_bias_table"):
            resized[key] = resize_relative_position_bias_table(tensor, (src, src), (dst, dst))
        elif key == "beit.embeddings.position_embeddings":
            resized[key] = resize_absolute_position_embeddings(tensor, src, dst)
    note = (
        f"Resized position parameters from {src_image} to {dst_image} ({src}x{src} -> {dst}x{dst} patches) with "
        "unilm's geometric-progression bicubic interpolation (absolute embeddings: bicubic)."
    )
    return resized, [note]
