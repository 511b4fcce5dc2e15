"""BEiT backbone and its image-classification and masked-image-modeling heads.

Module and parameter names follow transformers' on-disk ("classic") BEiT layout, so Hub checkpoints and repos
written by stock transformers load with plain names, and our ``save_pretrained`` output loads in stock transformers.
Inside, the computation is timm-like: one fused qkv GEMM, relative-position bias built once per forward (and
cached without autograd), SDPA with the bias as an additive mask (two batched GEMMs for bf16 inference on CPU).
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutputWithPooling, ImageClassifierOutput, MaskedLMOutput

from .acceleration import attend, fused_linear
from .configuration_beit import BeitConfig
from .losses import classification_loss, masked_image_modeling_loss
from .relative_position import BeitRelativePositionBias


def drop_path(x: torch.Tensor, rate: float, training: bool) -> torch.Tensor:
    """Stochastic depth: zero whole samples of a residual branch with probability ``rate``."""
    if rate == 0.0 or not training:
        return x
    keep = 1.0 - rate
    mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
    return x * mask.div_(keep)


class BeitPatchEmbeddings(nn.Module):
    """Non-overlapping patches -> ``hidden_size`` vectors with one strided convolution."""

    def __init__(self, config: BeitConfig) -> None:
        super().__init__()
        self.num_channels = config.num_channels
        self.patch_size = config.patch_size_2d
        self.projection = nn.Conv2d(config.num_channels, config.hidden_size, self.patch_size, self.patch_size)

    def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        if pixel_values.ndim != 4 or pixel_values.shape[1] != self.num_channels:
            raise ValueError(
                f"Expected pixel_values of shape (batch, {self.num_channels}, height, width), "
                f"got {tuple(pixel_values.shape)}."
            )
        patches = self.projection(pixel_values.to(self.projection.weight.dtype))
        grid = (patches.shape[2], patches.shape[3])
        return patches.flatten(2).transpose(1, 2), grid


class BeitEmbeddings(nn.Module):
    """CLS token + patch embeddings (+ mask token for MIM) (+ absolute positions)."""

    def __init__(self, config: BeitConfig) -> None:
        super().__init__()
        dim = config.hidden_size
        self.window_size = config.window_size
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim)) if config.use_mask_token else None
        self.patch_embeddings = BeitPatchEmbeddings(config)
        num_positions = self.window_size[0] * self.window_size[1] + 1
        self.position_embeddings = (
            nn.Parameter(torch.zeros(1, num_positions, dim)) if config.use_absolute_position_embeddings else None
        )
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(
        self, pixel_values: torch.Tensor, bool_masked_pos: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, tuple[int, int]]:
        x, grid = self.patch_embeddings(pixel_values)
        if bool_masked_pos is not None:
            if self.mask_token is None:
                raise ValueError("bool_masked_pos was given but the model has no mask token (use_mask_token=False).")
            if bool_masked_pos.shape != x.shape[:2]:
                raise ValueError(f"bool_masked_pos must have shape {tuple(x.shape[:2])}, got {tuple(bool_masked_pos.shape)}.")
            w = bool_masked_pos.unsqueeze(-1).to(x.dtype)
            x = x * (1.0 - w) + self.mask_token.to(x.dtype) * w
        x = torch.cat([self.cls_token.to(x.dtype).expand(x.shape[0], -1, -1), x], dim=1)
        if self.position_embeddings is not None:
            x = x + self._positions_for(grid).to(x.dtype)
        return self.dropout(x), grid

    def _positions_for(self, grid: tuple[int, int]) -> torch.Tensor:
        if grid == self.window_size:
            return self.position_embeddings
        cls_pos, patch_pos = self.position_embeddings[:, :1], self.position_embeddings[:, 1:]
        dim = patch_pos.shape[-1]
        patch_pos = patch_pos.reshape(1, *self.window_size, dim).permute(0, 3, 1, 2)
        patch_pos = F.interpolate(patch_pos.float(), size=grid, mode="bicubic", align_corners=False)
        patch_pos = patch_pos.to(cls_pos.dtype).permute(0, 2, 3, 1).reshape(1, -1, dim)
        return torch.cat([cls_pos, patch_pos], dim=1)


class BeitSelfAttention(nn.Module):
    """Multi-head self-attention with q/v biases (no k bias) and an optional per-layer relative-position bias."""

    def __init__(self, config: BeitConfig, has_relative_position_bias: bool) -> None:
        super().__init__()
        dim = config.hidden_size
        self.config = config
        self.num_heads = config.num_attention_heads
        self.head_dim = dim // self.num_heads
        self.query = nn.Linear(dim, dim)
        self.key = nn.Linear(dim, dim, bias=False)
        self.value = nn.Linear(dim, dim)
        self.dropout_prob = config.attention_probs_dropout_prob
        self.relative_position_bias = (
            BeitRelativePositionBias(config.window_size, self.num_heads) if has_relative_position_bias else None
        )

    def forward(
        self,
        hidden_states: torch.Tensor,
        grid: tuple[int, int],
        shared_bias: torch.Tensor | None = None,
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        qkv = fused_linear(hidden_states, (self.query, self.key, self.value))  # one GEMM for q, k and v
        attn_bias = shared_bias
        if self.relative_position_bias is not None:
            layer_bias = self.relative_position_bias(grid)
            attn_bias = layer_bias if attn_bias is None else attn_bias + layer_bias
        if attn_bias is not None:
            attn_bias = attn_bias.to(qkv.dtype).unsqueeze(0)
        dropout = self.dropout_prob if self.training else 0.0
        if self.config._attn_implementation == "sdpa" and not output_attentions:
            return attend(qkv, attn_bias, self.num_heads, dropout), None
        batch, tokens, dim = hidden_states.shape
        q, k, v = qkv.reshape(batch, tokens, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        scores = (q * self.head_dim**-0.5) @ k.transpose(-2, -1)
        if attn_bias is not None:
            scores = scores + attn_bias
        probs = scores.softmax(dim=-1)
        context = F.dropout(probs, dropout, self.training) @ v
        context = context.transpose(1, 2).reshape(batch, tokens, dim)
        return context, probs


class BeitSelfOutput(nn.Module):
    """Attention output projection (``attention.output.dense``)."""

    def __init__(self, config: BeitConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.dropout(fused_linear(hidden_states, self.dense))


class BeitAttention(nn.Module):
    """Self-attention followed by its output projection."""

    def __init__(self, config: BeitConfig, has_relative_position_bias: bool) -> None:
        super().__init__()
        self.attention = BeitSelfAttention(config, has_relative_position_bias)
        self.output = BeitSelfOutput(config)

    def forward(self, hidden_states, grid, shared_bias=None, output_attentions=False):
        context, probs = self.attention(hidden_states, grid, shared_bias, output_attentions)
        return self.output(context), probs


class BeitIntermediate(nn.Module):
    """First MLP layer with its activation."""

    def __init__(self, config: BeitConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)
        self.activation = config.hidden_act

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return fused_linear(hidden_states, self.dense, activation=self.activation)  # GELU fused into the GEMM


class BeitOutput(nn.Module):
    """Second MLP layer."""

    def __init__(self, config: BeitConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.intermediate_size, config.hidden_size)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.dropout(fused_linear(hidden_states, self.dense))


class BeitLayer(GradientCheckpointingLayer):
    """Pre-norm transformer block with layer scale (``lambda_1/2``) and stochastic depth."""

    def __init__(self, config: BeitConfig, drop_path_rate: float, has_relative_position_bias: bool) -> None:
        super().__init__()
        dim = config.hidden_size
        self.attention = BeitAttention(config, has_relative_position_bias)
        self.intermediate = BeitIntermediate(config)
        self.output = BeitOutput(config)
        self.layernorm_before = nn.LayerNorm(dim, eps=config.layer_norm_eps)
        self.layernorm_after = nn.LayerNorm(dim, eps=config.layer_norm_eps)
        self.drop_path_rate = drop_path_rate
        scale = config.layer_scale_init_value
        self.lambda_1 = nn.Parameter(scale * torch.ones(dim)) if scale > 0 else None
        self.lambda_2 = nn.Parameter(scale * torch.ones(dim)) if scale > 0 else None

    def forward(self, hidden_states, grid, shared_bias=None, output_attentions=False):
        attended, probs = self.attention(self.layernorm_before(hidden_states), grid, shared_bias, output_attentions)
        if self.lambda_1 is not None:
            attended = self.lambda_1 * attended
        hidden_states = hidden_states + drop_path(attended, self.drop_path_rate, self.training)
        mlp = self.output(self.intermediate(self.layernorm_after(hidden_states)))
        if self.lambda_2 is not None:
            mlp = self.lambda_2 * mlp
        return hidden_states + drop_path(mlp, self.drop_path_rate, self.training), probs


class BeitEncoder(nn.Module):
    """The stack of blocks plus the optional relative-position bias shared by all of them."""

    def __init__(self, config: BeitConfig) -> None:
        super().__init__()
        self.relative_position_bias = (
            BeitRelativePositionBias(config.window_size, config.num_attention_heads)
            if config.use_shared_relative_position_bias
            else None
        )
        depth = config.num_hidden_layers
        rates = [config.drop_path_rate * i / max(depth - 1, 1) for i in range(depth)]
        self.layer = nn.ModuleList(
            BeitLayer(config, rates[i], config.use_relative_position_bias) for i in range(depth)
        )

    def forward(self, hidden_states, grid, output_attentions=False, output_hidden_states=False):
        shared_bias = self.relative_position_bias(grid) if self.relative_position_bias is not None else None
        all_hidden = [hidden_states] if output_hidden_states else None
        all_attentions = [] if output_attentions else None
        for block in self.layer:
            hidden_states, probs = block(hidden_states, grid, shared_bias, output_attentions)
            if output_hidden_states:
                all_hidden.append(hidden_states)
            if output_attentions:
                all_attentions.append(probs)
        return hidden_states, _as_tuple(all_hidden), _as_tuple(all_attentions)


def _as_tuple(items: list | None) -> tuple | None:
    return tuple(items) if items is not None else None


class BeitPooler(nn.Module):
    """Mean of the patch tokens followed by LayerNorm, or the CLS token."""

    def __init__(self, config: BeitConfig) -> None:
        super().__init__()
        self.layernorm = (
            nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps) if config.use_mean_pooling else None
        )

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        if self.layernorm is not None:
            return self.layernorm(hidden_states[:, 1:].mean(dim=1))
        return hidden_states[:, 0]


class BeitPreTrainedModel(PreTrainedModel):
    """Weight initialisation and loading conventions shared by all BEiT models."""

    config_class = BeitConfig
    base_model_prefix = "beit"
    main_input_name = "pixel_values"
    input_modalities = ("image",)
    supports_gradient_checkpointing = True
    _no_split_modules: ClassVar[list[str]] = ["BeitLayer"]
    _supports_sdpa = True
    _supports_flash_attn = False
    _supports_flex_attn = False
    _keys_to_ignore_on_load_unexpected: ClassVar[list[str]] = [r".*relative_position_index.*"]

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        """unilm's initialisation: truncated normal(0.02) weights, zero relative tables, layer scale constant."""
        std = self.config.initializer_range
        if isinstance(module, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            init.trunc_normal_(module.weight, std=std)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, (nn.LayerNorm, nn.BatchNorm2d)):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, BeitEmbeddings):
            init.trunc_normal_(module.cls_token, std=std)
            if module.mask_token is not None:
                init.trunc_normal_(module.mask_token, std=std)
            if module.position_embeddings is not None:
                init.trunc_normal_(module.position_embeddings, std=std)
        elif isinstance(module, BeitRelativePositionBias):
            init.zeros_(module.relative_position_bias_table)
        elif isinstance(module, BeitLayer) and module.lambda_1 is not None:
            init.constant_(module.lambda_1, self.config.layer_scale_init_value)
            init.constant_(module.lambda_2, self.config.layer_scale_init_value)


class BeitModel(BeitPreTrainedModel):
    """The bare BEiT encoder: ``last_hidden_state`` (B, 1+N, D) and a pooled output (B, D)."""

    def __init__(self, config: BeitConfig, add_pooling_layer: bool = True) -> None:
        super().__init__(config)
        self.embeddings = BeitEmbeddings(config)
        self.encoder = BeitEncoder(config)
        self.layernorm = (
            nn.Identity() if config.use_mean_pooling else nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        )
        self.pooler = BeitPooler(config) if add_pooling_layer else None
        self.post_init()
        self._rescale_residual_branches()

    @torch.no_grad()
    def _rescale_residual_branches(self) -> None:
        """unilm's ``fix_init_weight``: divide each block's output projections by sqrt(2 * (layer + 1))."""
        for index, block in enumerate(self.encoder.layer):
            for linear in (block.attention.output.dense, block.output.dense):
                if not getattr(linear.weight, "_is_hf_initialized", False):
                    linear.weight.div_(math.sqrt(2.0 * (index + 1)))

    def get_input_embeddings(self) -> nn.Module:
        return self.embeddings.patch_embeddings

    def forward(
        self,
        pixel_values: torch.Tensor,
        bool_masked_pos: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        interpolate_pos_encoding: bool = False,
        return_dict: bool | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPooling | tuple:
        output_attentions, output_hidden_states, return_dict = _resolve_flags(
            self.config, output_attentions, output_hidden_states, return_dict
        )
        embeddings, grid = self.embeddings(pixel_values, bool_masked_pos)
        if grid != self.embeddings.window_size and not interpolate_pos_encoding and _has_positions(self.config):
            raise ValueError(
                f"Input image gives a {grid[0]}x{grid[1]} patch grid but the model was configured for "
                f"{self.embeddings.window_size[0]}x{self.embeddings.window_size[1]} (image_size={self.config.image_size}). "
                "Resize the image, or pass interpolate_pos_encoding=True to resize the position embeddings."
            )
        hidden, all_hidden, all_attentions = self.encoder(
            embeddings, grid, output_attentions=output_attentions, output_hidden_states=output_hidden_states
        )
        sequence_output = self.layernorm(hidden)
        pooled = self.pooler(sequence_output) if self.pooler is not None else None
        output = BaseModelOutputWithPooling(
            last_hidden_state=sequence_output,
            pooler_output=pooled,
            hidden_states=all_hidden,
            attentions=all_attentions,
        )
        return output if return_dict else output.to_tuple()


def _has_positions(config: BeitConfig) -> bool:
    return bool(
        config.use_absolute_position_embeddings
        or config.use_relative_position_bias
        or config.use_shared_relative_position_bias
    )


def _resolve_flags(config, output_attentions, output_hidden_states, return_dict):
    return (
        config.output_attentions if output_attentions is None else output_attentions,
        config.output_hidden_states if output_hidden_states is None else output_hidden_states,
        config.return_dict if return_dict is None else return_dict,
    )


class BeitForMaskedImageModeling(BeitPreTrainedModel):
    """BEiT pre-training head: predicts the visual token (of ``vocab_size``) of every patch.

    ``labels`` are the tokenizer ids of the masked patches, either 1-D (only the masked positions, in order, as in
    transformers) or ``(batch, num_patches)`` with ``-100`` where nothing is predicted.
    """

    def __init__(self, config: BeitConfig) -> None:
        super().__init__(config)
        self.beit = BeitModel(config, add_pooling_layer=False)
        self.layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size)
        self.post_init()

    def forward(
        self,
        pixel_values: torch.Tensor,
        bool_masked_pos: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        interpolate_pos_encoding: bool = False,
        return_dict: bool | None = None,
        **kwargs,
    ) -> MaskedLMOutput | tuple:
        return_dict = self.config.return_dict if return_dict is None else return_dict
        outputs = self.beit(
            pixel_values,
            bool_masked_pos=bool_masked_pos,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            interpolate_pos_encoding=interpolate_pos_encoding,
            return_dict=True,
        )
        logits = self.lm_head(self.layernorm(outputs.last_hidden_state[:, 1:]))
        loss = None
        if labels is not None:
            loss = masked_image_modeling_loss(logits, labels, bool_masked_pos)
        output = MaskedLMOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )
        return output if return_dict else output.to_tuple()


class BeitForImageClassification(BeitPreTrainedModel):
    """BEiT with a linear head on the pooled output; ``labels`` give single-, multi-label or regression losses."""

    def __init__(self, config: BeitConfig) -> None:
        super().__init__(config)
        self.num_labels = config.num_labels
        self.beit = BeitModel(config, add_pooling_layer=True)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels) if config.num_labels > 0 else nn.Identity()
        self.post_init()

    def forward(
        self,
        pixel_values: torch.Tensor,
        labels: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        interpolate_pos_encoding: bool = False,
        return_dict: bool | None = None,
        **kwargs,
    ) -> ImageClassifierOutput | tuple:
        return_dict = self.config.return_dict if return_dict is None else return_dict
        outputs = self.beit(
            pixel_values,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            interpolate_pos_encoding=interpolate_pos_encoding,
            return_dict=True,
        )
        logits = self.classifier(outputs.pooler_output)
        loss = classification_loss(logits, labels, self.config) if labels is not None else None
        output = ImageClassifierOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )
        return output if return_dict else output.to_tuple()
