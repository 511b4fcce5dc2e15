"""BEiT backbone and its image-classification and masked-image-modeling heads.

Module and parameter names follow transformers' on-disk ("classic") BEiT layout, so Hub checkpoints and repos
written by stock transformers load with plain names, and our ``save_pretrained`` output loads in stock transformers.
Inside, the computation is timm-like: one fused qkv GEMM, relative-position bias built once per forward (and
cached without autograd), SDPA with the bias as an additive mask (two batched GEMMs for bf16 inference on CPU).
The GEMM kernels are chosen per call in ``acceleration``; linears that are wrapped, hooked or replaced (PEFT,
accelerate, quantisation tools) are always called as modules.
"""

from __future__ import annotations

import math
from typing import ClassVar, TypedDict

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutputWithPooling, ImageClassifierOutput, MaskedLMOutput
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from typing_extensions import Unpack

from .acceleration import UsesFusedLinears, attend, fused_linear
from .acceleration.recording import record_attention
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
                raise ValueError(
                    f"bool_masked_pos must have shape {tuple(x.shape[:2])}, got {tuple(bool_masked_pos.shape)}."
                )
            w = bool_masked_pos.unsqueeze(-1).to(x.dtype)
            x = x * (1.0 - w) + self.mask_token.to(x.dtype) * w
        x = torch.cat([self.cls_token.to(x.dtype).expand(x.shape[0], -1, -1), x], dim=1)
        if self.position_embeddings is not None:
            x = x + self._positions_for(grid).to(x.dtype)
        return self.dropout(x), grid

    def _positions_for(self, grid: tuple[int, int]) -> torch.Tensor:
        return resize_absolute_position_embeddings(self.position_embeddings, self.window_size, grid)


def resize_absolute_position_embeddings(
    position_embeddings: torch.Tensor, src_grid: tuple[int, int], dst_grid: tuple[int, int]
) -> torch.Tensor:
    """Bicubic resize (``align_corners=False``, as unilm and transformers) of ``(1, 1 + Hs*Ws, D)`` embeddings to a
    ``dst_grid`` patch grid, keeping the CLS row. Used at run time and by ``retargeting`` at load time."""
    src_grid, dst_grid = tuple(src_grid), tuple(dst_grid)
    if position_embeddings.ndim != 3 or position_embeddings.shape[1] != 1 + src_grid[0] * src_grid[1]:
        raise ValueError(
            f"Position embeddings of shape {tuple(position_embeddings.shape)} do not match a "
            f"{src_grid[0]}x{src_grid[1]} patch grid plus the CLS token."
        )
    # A symbolic (exported) grid takes the resize, which is exactly the identity at the same size: comparing it
    # would pin the exported resolution.
    if all(isinstance(side, int) for side in dst_grid) and src_grid == dst_grid:
        return position_embeddings
    cls_pos, patch_pos = position_embeddings[:, :1], position_embeddings[:, 1:]
    dim = patch_pos.shape[-1]
    patch_pos = patch_pos.reshape(1, *src_grid, dim).permute(0, 3, 1, 2)
    patch_pos = F.interpolate(patch_pos.float(), size=dst_grid, mode="bicubic", align_corners=False)
    patch_pos = patch_pos.to(cls_pos.dtype).permute(0, 2, 3, 1).reshape(1, -1, dim)
    return torch.cat([cls_pos, patch_pos], dim=1)


def eager_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax attention on ``(batch, heads, tokens, head_dim)`` inputs with an additive bias.

    Same signature and outputs as transformers' attention functions: ``(batch, tokens, heads, head_dim)`` context
    and the ``(batch, heads, tokens, tokens)`` attention probabilities.
    """
    scores = (query * scaling) @ key.transpose(-2, -1)
    if attention_mask is not None:
        scores = scores + attention_mask
    probs = scores.softmax(dim=-1)
    context = F.dropout(probs, dropout, module.training) @ value
    return context.transpose(1, 2), probs


def combined_attention_bias(
    relative_position_bias: nn.Module | None, grid: tuple[int, int], shared_bias: torch.Tensor | None
) -> torch.Tensor | None:
    """The ``(heads, tokens, tokens)`` bias one attention layer adds: the shared bias plus its own, either or none."""
    if relative_position_bias is None:
        return shared_bias
    layer_bias = relative_position_bias(grid)
    return layer_bias if shared_bias is None else shared_bias + layer_bias


class BeitSelfAttention(UsesFusedLinears, nn.Module):
    """Multi-head self-attention with q/v biases (no k bias) and an optional per-layer relative-position bias.

    ``config._attn_implementation`` picks the attention: ``"sdpa"`` (default; ``acceleration.attend``),
    ``"eager"``, or any function registered in transformers' ``AttentionInterface``. ``output_attentions`` runs
    eager attention for that call, since fused kernels do not form the probabilities.
    """

    is_causal = False

    def __init__(self, config: BeitConfig, has_relative_position_bias: bool) -> None:
        super().__init__()
        dim = config.hidden_size
        if dim % config.num_attention_heads != 0:
            raise ValueError(
                f"hidden_size ({dim}) must be a multiple of num_attention_heads ({config.num_attention_heads})."
            )
        self.config = config
        self.num_heads = config.num_attention_heads
        self.head_dim = dim // self.num_heads
        self.scaling = self.head_dim**-0.5
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
        qkv = fused_linear(hidden_states, (self.query, self.key, self.value), owner=self)  # one GEMM for q, k, v
        attn_bias = combined_attention_bias(self.relative_position_bias, grid, shared_bias)
        if attn_bias is not None:
            attn_bias = attn_bias.to(qkv.dtype).unsqueeze(0)
        dropout = self.dropout_prob if self.training else 0.0
        implementation = "eager" if output_attentions else self.config._attn_implementation
        if implementation == "sdpa":
            return attend(qkv, attn_bias, self.num_heads, dropout, owner=self), None
        batch, tokens, _ = qkv.shape
        q, k, v = qkv.reshape(batch, tokens, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        attention = ALL_ATTENTION_FUNCTIONS.get_interface(implementation, eager_attention_forward)
        record_attention(self, implementation)
        context, probs = attention(self, q, k, v, attn_bias, scaling=self.scaling, dropout=dropout)
        return context.reshape(batch, tokens, -1), probs


class BeitOutputProjection(UsesFusedLinears, nn.Module):
    """A residual branch's output projection and dropout: ``attention.output`` (hidden -> hidden) and the MLP's
    ``output`` (intermediate -> hidden); the linear is ``dense`` in both, as in transformers' classic layout."""

    def __init__(self, config: BeitConfig, in_features: int) -> None:
        super().__init__()
        self.dense = nn.Linear(in_features, config.hidden_size)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.dropout(fused_linear(hidden_states, self.dense, owner=self))


class BeitAttention(nn.Module):
    """Self-attention followed by its output projection."""

    def __init__(self, config: BeitConfig, has_relative_position_bias: bool) -> None:
        super().__init__()
        self.attention = BeitSelfAttention(config, has_relative_position_bias)
        self.output = BeitOutputProjection(config, config.hidden_size)

    def forward(self, hidden_states, grid, shared_bias=None, output_attentions=False):
        context, probs = self.attention(hidden_states, grid, shared_bias, output_attentions)
        return self.output(context), probs


class BeitIntermediate(UsesFusedLinears, nn.Module):
    """First MLP layer with its activation."""

    def __init__(self, config: BeitConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)
        self.activation = config.hidden_act

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return fused_linear(hidden_states, self.dense, self.activation, owner=self)  # GELU fused into the GEMM


class BeitLayer(GradientCheckpointingLayer):
    """Pre-norm transformer block with layer scale (``lambda_1/2``) and stochastic depth."""

    def __init__(
        self, config: BeitConfig, layer_index: int, drop_path_rate: float, has_relative_position_bias: bool
    ) -> None:
        super().__init__()
        dim = config.hidden_size
        self.layer_index = layer_index
        self.attention = BeitAttention(config, has_relative_position_bias)
        self.intermediate = BeitIntermediate(config)
        self.output = BeitOutputProjection(config, config.intermediate_size)
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
            BeitLayer(config, i, rates[i], config.use_relative_position_bias) for i in range(depth)
        )

    def forward(
        self,
        hidden_states: torch.Tensor,
        grid: tuple[int, int],
        output_attentions: bool = False,
        output_hidden_states: bool | int | list[int] = False,
        num_blocks: int | None = None,
    ) -> tuple[torch.Tensor, tuple | None, tuple | None]:
        """Run the first ``num_blocks`` blocks (all by default).

        Returns the last hidden state, the hidden states selected by ``output_hidden_states`` (``True``: all
        ``num_blocks + 1``, index 0 being the embeddings; an index or list of indices, negative from the end: those,
        ``None`` elsewhere) and the attention probabilities when ``output_attentions``.
        """
        blocks = self.layer if num_blocks is None else self.layer[:num_blocks]
        keep = selected_hidden_states(output_hidden_states, len(blocks) + 1)
        shared_bias = self.relative_position_bias(grid) if self.relative_position_bias is not None else None
        all_hidden = [hidden_states if 0 in keep else None] if keep is not None else None
        all_attentions = [] if output_attentions else None
        for index, block in enumerate(blocks, start=1):
            hidden_states, probs = block(hidden_states, grid, shared_bias, output_attentions)
            if all_hidden is not None:
                all_hidden.append(hidden_states if index in keep else None)
            if output_attentions:
                all_attentions.append(probs)
        return hidden_states, _as_tuple(all_hidden), _as_tuple(all_attentions)


def selected_hidden_states(request: bool | int | list[int] | None, count: int) -> set[int] | None:
    """The indices (of ``count`` hidden states) that ``output_hidden_states=request`` keeps; None: keep none.

    ``True`` keeps all, an int or a list of ints keeps those (negative ones count from the end), as in transformers.
    """
    if request is None or request is False:
        return None
    if request is True:
        return set(range(count))
    indices = [request] if isinstance(request, int) else list(request)
    return {index % count for index in indices if -count <= index < count}


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
    _supports_attention_backend = True
    _can_compile_fullgraph = True
    # Where transformers' output-capture hooks find hidden states and attentions when an hf_beit model is a
    # sub-model of a composite model; hf_beit's own forward collects them itself (BeitEncoder.forward).
    _can_record_outputs: ClassVar[dict] = {"hidden_states": BeitLayer, "attentions": BeitSelfAttention}
    _keys_to_ignore_on_load_unexpected: ClassVar[list[str]] = [r".*relative_position_index.*"]
    # Our heads return per-batch mean losses and ignore Trainer's ``num_items_in_batch``; this tells Trainer to
    # scale the loss for gradient accumulation itself.
    accepts_loss_kwargs = False

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        """unilm's initialisation: truncated normal(0.02) weights, zero relative tables, layer scale constant,
        each block's output projections divided by sqrt(2 * (layer + 1)) (``fix_init_weight``), and fresh
        BatchNorm statistics. Tensors loaded from a checkpoint are left alone."""
        std = self.config.initializer_range
        if isinstance(module, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            init.trunc_normal_(module.weight, std=std)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, (nn.LayerNorm, nn.BatchNorm2d)):
            init.ones_(module.weight)
            init.zeros_(module.bias)
            if isinstance(module, nn.BatchNorm2d):
                init.zeros_(module.running_mean)
                init.ones_(module.running_var)
                init.zeros_(module.num_batches_tracked)
        elif isinstance(module, BeitEmbeddings):
            init.trunc_normal_(module.cls_token, std=std)
            if module.mask_token is not None:
                init.trunc_normal_(module.mask_token, std=std)
            if module.position_embeddings is not None:
                init.trunc_normal_(module.position_embeddings, std=std)
        elif isinstance(module, BeitRelativePositionBias):
            init.zeros_(module.relative_position_bias_table)
        elif isinstance(module, BeitLayer):
            self._init_layer(module)

    def _init_layer(self, block: BeitLayer) -> None:
        # Children are initialised before their parent, so the projections already hold their fresh weights.
        for linear in (block.attention.output.dense, block.output.dense):
            if not getattr(linear.weight, "_is_hf_initialized", False):
                linear.weight.div_(math.sqrt(2.0 * (block.layer_index + 1)))
        if block.lambda_1 is not None:
            init.constant_(block.lambda_1, self.config.layer_scale_init_value)
            init.constant_(block.lambda_2, self.config.layer_scale_init_value)


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

    def get_input_embeddings(self) -> nn.Module:
        return self.embeddings.patch_embeddings

    def forward(
        self,
        pixel_values: torch.Tensor,
        bool_masked_pos: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | int | list[int] | None = None,
        interpolate_pos_encoding: bool = False,
        return_dict: bool | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPooling | tuple:
        output_attentions, output_hidden_states, return_dict = _resolve_flags(
            self.config, output_attentions, output_hidden_states, return_dict
        )
        hidden, all_hidden, all_attentions, _ = self.encode(
            pixel_values,
            bool_masked_pos,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            interpolate_pos_encoding=interpolate_pos_encoding,
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

    def encode(
        self,
        pixel_values: torch.Tensor,
        bool_masked_pos: torch.Tensor | None = None,
        output_attentions: bool = False,
        output_hidden_states: bool | int | list[int] = False,
        num_blocks: int | None = None,
        interpolate_pos_encoding: bool = False,
    ) -> tuple[torch.Tensor, tuple | None, tuple | None, tuple[int, int]]:
        """Embeddings and the first ``num_blocks`` blocks (all by default), before the final ``layernorm``.

        Returns the last hidden state, the hidden states ``output_hidden_states`` selects (index 0 is the embedding
        output, index ``i`` the output of block ``i - 1``), the attentions if requested, and the patch grid.
        """
        embeddings, grid = self.embeddings(pixel_values, bool_masked_pos)
        window = self.embeddings.window_size
        # the flags first: while exporting with a symbolic resolution, comparing the grid would become a guard
        if not interpolate_pos_encoding and _has_positions(self.config) and grid != window:
            raise ValueError(
                f"Input image gives a {grid[0]}x{grid[1]} patch grid but the model was configured for "
                f"{window[0]}x{window[1]} (image_size={self.config.image_size}). "
                "Resize the image, or pass interpolate_pos_encoding=True to resize the position embeddings."
            )
        hidden, all_hidden, all_attentions = self.encoder(
            embeddings, grid, output_attentions, output_hidden_states, num_blocks=num_blocks
        )
        return hidden, all_hidden, all_attentions, grid

    def forward_intermediates(
        self,
        pixel_values: torch.Tensor,
        indices: int | list[int] | None = None,
        norm: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
        stop_early: bool = False,
        return_prefix_tokens: bool = False,
        interpolate_pos_encoding: bool = False,
    ) -> list | tuple[torch.Tensor, list]:
        """Features after chosen blocks, with timm's ``forward_intermediates`` arguments and results.

        Args:
            indices: 0-based blocks (negative from the end; ``None``: all), or an int ``n`` for the last ``n``.
            norm: apply the final ``layernorm`` (an identity with mean pooling) to the intermediates.
            output_fmt: ``"NCHW"`` (``(B, C, H, W)`` patch maps) or ``"NLC"`` (``(B, H*W, C)`` patch tokens).
            intermediates_only: return only the list of intermediates.
            stop_early: run no block after the last one asked for (the final tokens are then that block's).
            return_prefix_tokens: each intermediate becomes ``(patches, cls_token)`` with ``cls_token`` ``(B, 1, C)``.
            interpolate_pos_encoding: allow another input resolution (resizes the position encodings).

        Returns:
            ``intermediates`` (in block order) or ``(final_tokens, intermediates)`` with ``final_tokens``
            ``(B, 1 + H*W, C)`` after ``layernorm``.
        """
        from .modeling_backbone import intermediate_blocks, tokens_to_map  # it builds on this module

        if output_fmt not in ("NCHW", "NLC"):
            raise ValueError(f"output_fmt must be 'NCHW' or 'NLC', got {output_fmt!r}.")
        positions = [block + 1 for block in intermediate_blocks(indices, self.config.num_hidden_layers)]
        last, states, _, grid = self.encode(
            pixel_values,
            output_hidden_states=positions,
            num_blocks=positions[-1] if stop_early else None,
            interpolate_pos_encoding=interpolate_pos_encoding,
        )
        tokens = [self.layernorm(states[i]) if norm else states[i] for i in positions]
        patches = [tokens_to_map(t, grid) if output_fmt == "NCHW" else t[:, 1:] for t in tokens]
        intermediates = [(p, t[:, :1]) for p, t in zip(patches, tokens)] if return_prefix_tokens else patches
        return intermediates if intermediates_only else (self.layernorm(last), intermediates)


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


class BeitForwardOptions(TypedDict, total=False):
    """Keyword arguments every hf_beit head forwards to its ``BeitModel`` (transformers' meanings)."""

    output_attentions: bool | None
    output_hidden_states: bool | int | list[int] | None  # True, or the indices of the states to keep
    interpolate_pos_encoding: bool  # allow another input resolution (resizes the position encodings)
    return_dict: bool | None


def as_requested(config: BeitConfig, output, return_dict: bool | None):
    """``output`` as a ``ModelOutput``, or as a tuple (without ``None`` fields) when ``return_dict`` says so."""
    return output if (config.return_dict if return_dict is None else return_dict) else output.to_tuple()


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
        **kwargs: Unpack[BeitForwardOptions],
    ) -> MaskedLMOutput | tuple:
        return_dict = kwargs.pop("return_dict", None)
        outputs = self.beit(pixel_values, bool_masked_pos=bool_masked_pos, **kwargs, return_dict=True)
        logits = self.lm_head(self.layernorm(outputs.last_hidden_state[:, 1:]))
        loss = None
        if labels is not None:
            loss = masked_image_modeling_loss(logits, labels, bool_masked_pos)
        output = MaskedLMOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )
        return as_requested(self.config, output, return_dict)


class BeitForImageClassification(BeitPreTrainedModel):
    """BEiT with a linear head on the pooled output; ``labels`` give single-, multi-label or regression losses."""

    def __init__(self, config: BeitConfig) -> None:
        super().__init__(config)
        self.num_labels = config.num_labels
        self.beit = BeitModel(config, add_pooling_layer=True)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels) if config.num_labels > 0 else nn.Identity()
        self.post_init()

    def forward(
        self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None, **kwargs: Unpack[BeitForwardOptions]
    ) -> ImageClassifierOutput | tuple:
        return_dict = kwargs.pop("return_dict", None)
        outputs = self.beit(pixel_values, **kwargs, return_dict=True)
        logits = self.classifier(outputs.pooler_output)
        loss = classification_loss(logits, labels, self.config) if labels is not None else None
        output = ImageClassifierOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )
        return as_requested(self.config, output, return_dict)
