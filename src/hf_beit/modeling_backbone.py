"""Multi-scale features of BEiT blocks: ``BeitBackbone`` (transformers' ``AutoBackbone`` API), the ViTDet/UPerNet
feature pyramid it shares with the segmentation model, and timm-style ``forward_intermediates``.

Features are the raw outputs of the 0-based blocks in ``config.out_indices`` (unilm/mmseg/detectron2 meaning; base
``[3, 5, 7, 11]``); ``out_features`` are stock transformers' stage names of the same tensors (block ``i`` ->
``"stage{i+1}"``). Only the blocks up to the last tap are run unless every hidden state or attention is requested.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import nn
from transformers.backbone_utils import BackboneMixin
from transformers.modeling_outputs import BackboneOutput

from .configuration_beit import BeitConfig
from .modeling_beit import BeitModel, BeitPreTrainedModel, _resolve_flags, selected_hidden_states


class BeitFeaturePyramidMixin:
    """The 4-level pyramid of unilm's BEiT-UPerNet and ViTDet: x4 and x2 up (transposed convolutions), identity, x2
    down (max pool). The operators are attributes ``fpn1..fpn4`` of the model itself, so the state-dict names are the
    released checkpoints' (``fpn1.0.weight``, ``fpn1.1.running_mean``, ``fpn2.0.weight``)."""

    def _add_feature_pyramid(self, dim: int) -> None:
        self.fpn1 = nn.Sequential(
            nn.ConvTranspose2d(dim, dim, kernel_size=2, stride=2),
            nn.BatchNorm2d(dim),
            nn.GELU(),
            nn.ConvTranspose2d(dim, dim, kernel_size=2, stride=2),
        )
        self.fpn2 = nn.Sequential(nn.ConvTranspose2d(dim, dim, kernel_size=2, stride=2))
        self.fpn3 = nn.Identity()
        self.fpn4 = nn.MaxPool2d(kernel_size=2, stride=2)

    def _feature_pyramid(self, maps: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """Four ``(B, C, H, W)`` maps of the patch grid -> 4x, 2x, 1x and 0.5x that resolution (strides 4 to 32)."""
        return tuple(op(fmap) for op, fmap in zip((self.fpn1, self.fpn2, self.fpn3, self.fpn4), maps, strict=True))


def tokens_to_map(hidden_state: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """``(B, 1 + H*W, C)`` tokens (CLS first) -> ``(B, C, H, W)`` map of the patch tokens."""
    patches = hidden_state[:, 1:]
    return patches.transpose(1, 2).reshape(patches.shape[0], patches.shape[2], *grid)


def intermediate_blocks(indices: int | Sequence[int] | None, depth: int) -> list[int]:
    """timm's selection: ``None`` all blocks, an int ``n`` the last ``n``, a list those blocks (negative from the end).

    Returned sorted without repeats (features come out in block order, as in timm).
    """
    if indices is None:
        return list(range(depth))
    if isinstance(indices, int):
        if not 0 < indices <= depth:
            raise ValueError(f"indices={indices} asks for the last {indices} blocks; the model has 1..{depth}.")
        return list(range(depth - indices, depth))
    bad = [i for i in indices if not -depth <= i < depth]
    if bad or not len(indices):
        raise ValueError(
            f"indices {list(indices)} must be 0-based block indices in 0..{depth - 1} (or -{depth}..-1 from the end), "
            "or an int n for the last n blocks."
        )
    return sorted({i % depth for i in indices})


class BeitBackbone(BackboneMixin, BeitFeaturePyramidMixin, BeitPreTrainedModel):
    """BEiT as a transformers backbone: ``BackboneOutput(feature_maps, hidden_states, attentions)``.

    ``feature_maps`` are the outputs of the blocks in ``config.out_indices`` as ``(B, C, H, W)`` maps of the patch
    grid (``(B, 1 + H*W, C)`` tokens with ``reshape_hidden_states=False``), or with ``add_fpn=True`` the 4-level
    pyramid (4x, 2x, 1x, 0.5x the grid's resolution) that UPerNet/ViTDet heads expect. Loads the backbone (and FPN)
    of classification, MIM and segmentation repos; their heads are dropped silently.
    """

    _keys_to_ignore_on_load_unexpected: ClassVar[list[str]] = [
        r".*relative_position_index.*",
        r"^(classifier|lm_head|layernorm|decode_head|auxiliary_head)\.",
        r"^beit\.pooler\.",
        r"^fpn[1-4]\.",  # a segmentation repo loaded with add_fpn=False
    ]

    def __init__(self, config: BeitConfig) -> None:
        super().__init__(config)
        if config.add_fpn and (len(config.out_indices) != 4 or not config.reshape_hidden_states):
            raise ValueError(
                "add_fpn=True needs exactly 4 out_indices (0-based blocks, e.g. [3, 5, 7, 11] for base) and "
                f"reshape_hidden_states=True; got out_indices={config.out_indices}, "
                f"reshape_hidden_states={config.reshape_hidden_states}."
            )
        self.num_features = [config.hidden_size] * (config.num_hidden_layers + 1)
        self.beit = BeitModel(config, add_pooling_layer=False)
        if config.add_fpn:
            self._add_feature_pyramid(config.hidden_size)
        self.post_init()

    def post_init(self) -> None:
        # BackboneMixin.post_init would install transformers' output-capturing hooks; BeitEncoder collects the
        # hidden states itself.
        BeitPreTrainedModel.post_init(self)

    def get_input_embeddings(self) -> nn.Module:
        return self.beit.embeddings.patch_embeddings

    def forward(
        self,
        pixel_values: torch.Tensor,
        output_hidden_states: bool | int | list[int] | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
        interpolate_pos_encoding: bool = False,
        **kwargs,
    ) -> BackboneOutput | tuple:
        output_attentions, output_hidden_states, return_dict = _resolve_flags(
            self.config, output_attentions, output_hidden_states, return_dict
        )
        count = self.config.num_hidden_layers + 1
        taps = [block + 1 for block in self.config.out_indices]
        requested = selected_hidden_states(output_hidden_states, count)
        keep = set(taps) | (requested or set())
        _, states, attentions, grid = self.beit.encode(
            pixel_values,
            output_attentions=output_attentions,
            output_hidden_states=sorted(keep),
            num_blocks=count - 1 if output_attentions else max(keep),
            interpolate_pos_encoding=interpolate_pos_encoding,
        )
        maps = [states[i] for i in taps]
        if self.config.reshape_hidden_states:
            maps = [tokens_to_map(fmap, grid) for fmap in maps]
        if self.config.add_fpn:
            maps = self._feature_pyramid(maps)
        hidden_states = None
        if requested is not None:
            hidden_states = tuple(states[i] if i in requested and i < len(states) else None for i in range(count))
        output = BackboneOutput(feature_maps=tuple(maps), hidden_states=hidden_states, attentions=attentions)
        return output if return_dict else output.to_tuple()
