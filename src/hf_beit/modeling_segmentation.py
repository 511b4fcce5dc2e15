"""UPerNet semantic segmentation on a BEiT backbone, as in unilm's ADE20k models (mmseg UPerHead + FCNHead).

Features are taken after the 0-based blocks listed in ``config.out_indices`` (base ``[3, 5, 7, 11]``), turned into
a 4-level pyramid (strides 4, 8, 16, 32) by the ``fpn1..fpn4`` operators, and decoded by a pyramid-pooling UPerNet
head. Stock transformers reads ``out_indices`` two blocks earlier; see the README.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers.modeling_outputs import SemanticSegmenterOutput
from typing_extensions import Unpack

from .adaptive_pooling import AdaptiveAvgPool2d
from .configuration_beit import BeitConfig
from .losses import semantic_segmentation_loss
from .modeling_backbone import BeitFeaturePyramidMixin, tokens_to_map
from .modeling_beit import BeitForwardOptions, BeitModel, BeitPreTrainedModel, as_requested, selected_hidden_states


class BeitConvModule(nn.Module):
    """Conv (no bias) -> BatchNorm -> ReLU, named ``conv``/``bn`` like mmcv's ConvModule."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.activation = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.bn(self.conv(x)))


def _upsample_to(x: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=reference.shape[-2:], mode="bilinear", align_corners=False)


class BeitUperHead(nn.Module):
    """UPerNet decode head: pyramid pooling on the coarsest level, top-down FPN, fused 3x3 bottleneck.

    The pyramid's adaptive average pools are written as averaging matrices (``adaptive_pooling``): same result,
    and they export to ONNX at any feature-map size.
    """

    def __init__(self, config: BeitConfig) -> None:
        super().__init__()
        dim, channels = config.hidden_size, config.hidden_size
        self.psp_modules = nn.ModuleList(
            nn.Sequential(AdaptiveAvgPool2d(scale), BeitConvModule(dim, channels, 1)) for scale in config.pool_scales
        )
        self.bottleneck = BeitConvModule(dim + len(config.pool_scales) * channels, channels, 3)
        self.lateral_convs = nn.ModuleList(BeitConvModule(dim, channels, 1) for _ in range(3))
        self.fpn_convs = nn.ModuleList(BeitConvModule(channels, channels, 3) for _ in range(3))
        self.fpn_bottleneck = BeitConvModule(4 * channels, channels, 3)
        self.dropout = nn.Dropout2d(0.1)
        self.classifier = nn.Conv2d(channels, config.num_labels, kernel_size=1)

    def _pyramid_pooling(self, x: torch.Tensor) -> torch.Tensor:
        pooled = [_upsample_to(module(x), x) for module in self.psp_modules]
        return self.bottleneck(torch.cat([x, *pooled], dim=1))

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        laterals = [conv(feature) for conv, feature in zip(self.lateral_convs, features)]
        laterals.append(self._pyramid_pooling(features[-1]))
        for i in range(len(laterals) - 1, 0, -1):
            laterals[i - 1] = laterals[i - 1] + _upsample_to(laterals[i], laterals[i - 1])
        outs = [conv(lateral) for conv, lateral in zip(self.fpn_convs, laterals)] + [laterals[-1]]
        outs = [outs[0]] + [_upsample_to(out, outs[0]) for out in outs[1:]]
        return self.classifier(self.dropout(self.fpn_bottleneck(torch.cat(outs, dim=1))))


class BeitFCNHead(nn.Module):
    """Auxiliary FCN head on one pyramid level (``in_index`` 2, as in unilm's configs)."""

    in_index = 2

    def __init__(self, config: BeitConfig) -> None:
        super().__init__()
        dim, channels = config.hidden_size, config.auxiliary_channels
        self.convs = nn.ModuleList(
            BeitConvModule(dim if i == 0 else channels, channels, 3) for i in range(config.auxiliary_num_convs)
        )
        self.conv_cat = BeitConvModule(dim + channels, channels, 3) if config.auxiliary_concat_input else None
        self.dropout = nn.Dropout2d(0.1)
        self.classifier = nn.Conv2d(channels, config.num_labels, kernel_size=1)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = features[self.in_index]
        out = x
        for conv in self.convs:
            out = conv(out)
        if self.conv_cat is not None:
            out = self.conv_cat(torch.cat([x, out], dim=1))
        return self.classifier(self.dropout(out))


class BeitForSemanticSegmentation(BeitFeaturePyramidMixin, BeitPreTrainedModel):
    """BEiT + UPerNet. ``logits`` are ``(batch, num_labels, H/4, W/4)``; ``labels`` ``(batch, H, W)`` give the loss."""

    def __init__(self, config: BeitConfig) -> None:
        super().__init__(config)
        _check_out_indices(config)
        self.beit = BeitModel(config, add_pooling_layer=False)
        self._add_feature_pyramid(config.hidden_size)
        self.decode_head = BeitUperHead(config)
        self.auxiliary_head = BeitFCNHead(config) if config.use_auxiliary_head else None
        self.post_init()

    def backbone_features(self, hidden_states: tuple[torch.Tensor, ...], grid: tuple[int, int]) -> list[torch.Tensor]:
        """The 4-level feature pyramid from the outputs of the blocks in ``out_indices``."""
        # hidden_states[0] is the embedding output, hidden_states[i + 1] the output of block i
        maps = [tokens_to_map(hidden_states[block + 1], grid) for block in self.config.out_indices]
        return list(self._feature_pyramid(maps))

    def forward(
        self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None, **kwargs: Unpack[BeitForwardOptions]
    ) -> SemanticSegmenterOutput | tuple:
        return_dict = kwargs.pop("return_dict", None)
        requested = kwargs.pop("output_hidden_states", None)
        if labels is not None and self.config.num_labels == 1:
            raise ValueError("Semantic segmentation needs num_labels > 1 to compute a loss.")
        outputs = self.beit(pixel_values, **kwargs, output_hidden_states=True, return_dict=True)
        patch = self.config.patch_size_2d
        grid = (pixel_values.shape[-2] // patch[0], pixel_values.shape[-1] // patch[1])
        features = self.backbone_features(outputs.hidden_states, grid)
        logits = self.decode_head(features)
        loss = None
        if labels is not None:
            auxiliary = self.auxiliary_head(features) if self.auxiliary_head is not None else None
            loss = semantic_segmentation_loss(
                logits, labels, self.config.semantic_loss_ignore_index, auxiliary, self.config.auxiliary_loss_weight
            )
        keep = selected_hidden_states(
            self.config.output_hidden_states if requested is None else requested, len(outputs.hidden_states)
        )
        hidden_states = None
        if keep is not None:
            hidden_states = tuple(h if i in keep else None for i, h in enumerate(outputs.hidden_states))
        output = SemanticSegmenterOutput(
            loss=loss, logits=logits, hidden_states=hidden_states, attentions=outputs.attentions
        )
        return as_requested(self.config, output, return_dict)


def _check_out_indices(config: BeitConfig) -> None:
    indices = list(config.out_indices or [])
    depth = config.num_hidden_layers
    if len(indices) != 4 or any(not 0 <= i < depth for i in indices):
        raise ValueError(
            f"BeitForSemanticSegmentation needs 4 out_indices, each a 0-based block index below {depth} "
            f"(the blocks after which UPerNet features are taken, e.g. [3, 5, 7, 11] for base); got {indices}."
        )
