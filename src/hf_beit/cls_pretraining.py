"""BEiT v2's CLS-pretraining head, kept beside a masked-image-modeling repo in its own file.

BEiT v2 pre-training (unilm ``VisionTransformerForMaskedImageModelingCLS``) adds a second branch to the MIM model:
the final CLS token is joined to the patch tokens after block ``early_layers`` (9 of 12 for base, 21 of 24 for
large) and the sequence runs through ``num_layers`` (2) more blocks, which use the model's shared relative-position
bias; the result goes through the model's final LayerNorm and visual-token head (``shared_lm_head=True``, the
released setting) or through its own (``cls_pt_norm``/``cls_pt_lm_head``). Predicting the masked tokens from there
forces the CLS token to summarise the image. The branch only matters for (continued) pre-training, so it is not
part of ``BeitForMaskedImageModeling``: the converter writes it to ``cls_pretraining_head.safetensors`` (classic
``BeitLayer`` names under ``layer.{i}.``, ``early_layers`` in the file's metadata), which ``from_pretrained`` of the
MIM model never reads, so the MIM repo loads cleanly in hf_beit and stock transformers alike.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from .configuration_beit import BeitConfig
from .modeling_beit import BeitForMaskedImageModeling, BeitLayer

CLS_HEAD_WEIGHTS_NAME = "cls_pretraining_head.safetensors"
_KIND = "beitv2_cls_pretraining_head"


class BeitClsPretrainingHead(nn.Module):
    """The CLS-pretraining blocks (``layer``) and, when not shared with the MIM model, their norm and token head."""

    def __init__(self, config: BeitConfig, early_layers: int, num_layers: int = 2, shared_lm_head: bool = True):
        super().__init__()
        if not 0 < early_layers <= config.num_hidden_layers:
            raise ValueError(
                f"early_layers must be between 1 and num_hidden_layers ({config.num_hidden_layers}), "
                f"got {early_layers}."
            )
        self.early_layers = early_layers
        self.layer = nn.ModuleList(
            BeitLayer(config, early_layers + i, 0.0, config.use_relative_position_bias) for i in range(num_layers)
        )
        self.layernorm = None if shared_lm_head else nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.lm_head = None if shared_lm_head else nn.Linear(config.hidden_size, config.vocab_size)

    @property
    def shared_lm_head(self) -> bool:
        return self.lm_head is None

    def forward(
        self,
        model: BeitForMaskedImageModeling,
        pixel_values: torch.Tensor,
        bool_masked_pos: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Visual-token logits ``(B, num_patches, vocab_size)`` of the CLS-pretraining branch of ``model``."""
        encoder = model.beit
        last, states, _, grid = encoder.encode(
            pixel_values, bool_masked_pos, output_hidden_states=[self.early_layers]
        )
        hidden = torch.cat([last[:, :1], states[self.early_layers][:, 1:]], dim=1)
        shared = encoder.encoder.relative_position_bias
        bias = shared(grid) if shared is not None else None
        for block in self.layer:
            hidden = block(hidden, grid, bias)[0]
        norm = model.layernorm if self.layernorm is None else self.layernorm
        head = model.lm_head if self.lm_head is None else self.lm_head
        return head(norm(hidden[:, 1:]))

    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        """Write ``cls_pretraining_head.safetensors`` into ``directory`` (next to the MIM repo's files)."""
        path = Path(directory) / CLS_HEAD_WEIGHTS_NAME
        save_head_weights(path, self.state_dict(), self.early_layers)
        return path

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, config: BeitConfig | None = None) -> BeitClsPretrainingHead:
        """Load the head saved in a MIM repo (``config`` defaults to the repo's ``config.json``)."""
        path = Path(directory) / CLS_HEAD_WEIGHTS_NAME
        if not path.is_file():
            raise FileNotFoundError(
                f"{directory} has no {CLS_HEAD_WEIGHTS_NAME}: convert a BEiT v2 pre-training checkpoint with the "
                "CLS-pretraining head kept (the default of hf-beit convert)."
            )
        config = config or BeitConfig.from_pretrained(str(directory))
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            names = list(handle.keys())  # a safetensors handle, not a dict
            weights = {key: handle.get_tensor(key) for key in names}
        if metadata.get("hf_beit") != _KIND or "early_layers" not in metadata:
            raise ValueError(f"{path} is not a CLS-pretraining head written by hf_beit (metadata {metadata}).")
        num_layers = len({key.split(".")[1] for key in weights if key.startswith("layer.")})
        head = cls(config, int(metadata["early_layers"]), num_layers, shared_lm_head="lm_head.weight" not in weights)
        head.load_state_dict(weights, strict=True)
        return head.eval()


def save_head_weights(path: str | os.PathLike, weights: dict[str, torch.Tensor], early_layers: int) -> None:
    """Write head weights (classic names under ``layer.{i}.``) with the metadata :meth:`from_pretrained` reads."""
    tensors = {key: value.detach().to("cpu").contiguous().clone() for key, value in weights.items()}
    metadata = {"format": "pt", "hf_beit": _KIND, "early_layers": str(early_layers)}
    save_file(tensors, str(path), metadata=metadata)
