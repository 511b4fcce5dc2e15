"""BEiT v2's CLS-pretraining head in an original checkpoint: split it off, rename it, describe what was done.

unilm stores the head as ``cls_pt_layers.{i}.*`` (blocks with v1's key names) plus, without a shared token head,
``cls_pt_norm.*`` and ``cls_pt_lm_head.*``. The converter takes these keys out before reading the MIM model and
either drops them or writes them, renamed, to :data:`hf_beit.cls_pretraining.CLS_HEAD_WEIGHTS_NAME`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from ..cls_pretraining import CLS_HEAD_WEIGHTS_NAME, BeitClsPretrainingHead, save_head_weights
from .errors import ConversionError
from .key_mapping import convert_state_dict

CHOICES = ("keep", "drop")

HEAD_PREFIXES = ("cls_pt_layers.", "cls_pt_norm.", "cls_pt_lm_head.")
_OWN_PARTS = {"cls_pt_norm.": "layernorm.", "cls_pt_lm_head.": "lm_head."}


def split_cls_pretraining_head(
    state_dict: Mapping[str, torch.Tensor],
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """``(MIM weights, CLS-pretraining head weights)``, both with the original names."""
    head = {key: value for key, value in state_dict.items() if key.startswith(HEAD_PREFIXES)}
    return {key: value for key, value in state_dict.items() if key not in head}, head


def convert_cls_pretraining_head(head: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Original head names -> the names of :class:`hf_beit.cls_pretraining.BeitClsPretrainingHead`.

    The blocks go through the same mapping as the encoder's (``cls_pt_layers.{i}.attn.qkv.weight`` ->
    ``layer.{i}.attention.attention.{query,key,value}.weight`` and so on).
    """
    as_blocks = {
        "blocks." + key.removeprefix("cls_pt_layers."): value
        for key, value in head.items()
        if key.startswith("cls_pt_layers.")
    }
    renamed = {
        key.replace("beit.encoder.layer.", "layer.", 1): value
        for key, value in convert_state_dict(as_blocks, "embeddings").items()
    }
    for original, ours in _OWN_PARTS.items():
        renamed |= {ours + key.removeprefix(original): value for key, value in head.items() if key.startswith(original)}
    return renamed


def kept_head_note(early_layers: int) -> str:
    return (
        f"Kept the CLS-pretraining head (BEiT v2; fed from block {early_layers}) in `{CLS_HEAD_WEIGHTS_NAME}`, which "
        "the MIM model does not load: `hf_beit.BeitClsPretrainingHead.from_pretrained(repo)`."
    )


def dropped_head_note(count: int) -> str:
    return (f"Dropped the CLS-pretraining head of BEiT v2 ({count} tensors, `cls_pt_*`): "
            "not needed outside pre-training.")


@dataclass
class KeptHead:
    """A CLS-pretraining head to write beside the MIM weights."""

    weights: dict[str, torch.Tensor]
    early_layers: int

    def write(self, folder: Path) -> None:
        save_head_weights(folder / CLS_HEAD_WEIGHTS_NAME, self.weights, self.early_layers)

    def check(self, folder: Path, config) -> None:
        """Load the written head strictly (every weight in place, none left over)."""
        BeitClsPretrainingHead.from_pretrained(folder, config)


def plan_cls_head(
    head: Mapping[str, torch.Tensor], task: str, depth: int, choice: str, early_layers: int | None
) -> tuple[KeptHead | None, str | None]:
    """What to do with a checkpoint's CLS-pretraining head: ``(head to write or None, conversion note)``.

    It is kept only for a MIM target and ``choice == "keep"``; keeping it needs ``early_layers`` (not in the
    weights: the registry entry gives it, or ``--cls-head-early-layers``).
    """
    if not head:
        return None, None
    if choice not in CHOICES:
        raise ConversionError(f"--cls-pretraining-head must be one of {', '.join(CHOICES)}, got {choice!r}.")
    if choice == "drop" or task != "mim":
        return None, dropped_head_note(len(head))
    if early_layers is None:
        raise ConversionError(
            "The checkpoint holds a BEiT v2 CLS-pretraining head (cls_pt_layers.*), whose input block is not "
            "stored in the weights: pass --cls-head-early-layers (BEiT v2: 9 for base, 21 for large), "
            "--model-name of a registry entry, or --cls-pretraining-head drop."
        )
    if not 0 < early_layers <= depth:
        raise ConversionError(f"--cls-head-early-layers {early_layers} is not a block of a {depth}-block model.")
    return KeptHead(convert_cls_pretraining_head(head), early_layers), kept_head_note(early_layers)
