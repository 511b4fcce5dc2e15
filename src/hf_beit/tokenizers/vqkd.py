"""BEiT v2's VQ-KD visual tokenizer (the encoder half: image -> codebook ids), in plain hf_beit modules.

Facts of unilm ``beit2/modeling_vqkd.py`` and ``norm_ema_quantizer.py`` (the released
``vqkd_encoder_base_decoder_3x768x12_clip``): the encoder is a ViT-B/16 at 224 (absolute position embeddings, no
relative bias, no layer scale, LayerNorm eps 1e-6, mean-pooling ``fc_norm`` applied to every patch token); its
patch tokens go through ``encode_task_layer`` (Linear -> Tanh -> Linear to the 32-d code space, in float32), are
l2-normalised, and each takes the id of the nearest entry of the 8192 x 32 codebook (squared Euclidean distance to
the stored entries, which the EMA update keeps l2-normalised, so this is the entry of highest cosine). Inputs are
[0, 1] views mapped to [-1, 1] (the ``default`` process type). The decoder and the CLIP teacher only train the
tokenizer and are not needed to use it, so they are not built (their weights are skipped when loading).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from hf_beit.configuration_beit import BeitConfig
from hf_beit.modeling_beit import BeitModel
from hf_beit.tokenizers.base import WEIGHTS_NAME, VisualTokenizer

__all__ = ["VQKD_RELEASE_URL", "VQKDTokenizer", "convert_vqkd_state_dict", "load_vqkd_tokenizer"]

VQKD_RELEASE_URL = (
    "https://github.com/addf400/files/releases/download/BEiT-v2/vqkd_encoder_base_decoder_3x768x12_clip-d5036aa7.pth"
)
# Parts of a released VQ-KD file that only train the tokenizer (decoder, EMA statistics, teacher, loss).
_TRAINING_ONLY = re.compile(
    r"^(decoder\.|decode_task_layer\.|teacher_model\.|scaling_layer\.|loss\.|quantize\.cluster_size$|"
    r"quantize\.embedding\.(cluster_size|embed_avg|initted)$)"
)
_CODEBOOK_KEY = "quantize.embedding.weight"


class VQKDTokenizer(VisualTokenizer):
    """VQ-KD encoder + codebook. Defaults are the released tokenizer's (ViT-B/16 at 224, 8192 codes of 32 dims)."""

    tokenizer_type = "vqkd"
    view_interpolation: ClassVar[str] = "bicubic"  # unilm beit2: --second_interpolation bicubic

    def __init__(
        self,
        image_size: int = 224,
        patch_size: int = 16,
        hidden_size: int = 768,
        num_hidden_layers: int = 12,
        num_attention_heads: int = 12,
        intermediate_size: int = 3072,
        codebook_size: int = 8192,
        codebook_dim: int = 32,
        num_channels: int = 3,
    ) -> None:
        super().__init__()
        self.image_size, self.downsample, self.num_channels = image_size, patch_size, num_channels
        self.vocab_size, self.codebook_dim = codebook_size, codebook_dim
        self.encoder_config = BeitConfig(
            image_size=image_size, patch_size=patch_size, num_channels=num_channels, hidden_size=hidden_size,
            num_hidden_layers=num_hidden_layers, num_attention_heads=num_attention_heads,
            intermediate_size=intermediate_size, layer_norm_eps=1e-6, use_absolute_position_embeddings=True,
            use_relative_position_bias=False, use_shared_relative_position_bias=False, layer_scale_init_value=0.0,
            use_mean_pooling=True, drop_path_rate=0.0,
        )
        self.encoder = BeitModel(self.encoder_config, add_pooling_layer=True)  # pooler.layernorm is unilm's fc_norm
        self.encode_task_layer = nn.Sequential(
            nn.Linear(hidden_size, hidden_size), nn.Tanh(), nn.Linear(hidden_size, codebook_dim)
        )
        self.register_buffer("codebook", torch.zeros(codebook_size, codebook_dim))
        self.requires_grad_(False)
        self.eval()

    def get_config(self) -> dict[str, Any]:
        config = self.encoder_config
        return {
            "image_size": self.image_size, "patch_size": self.downsample, "hidden_size": config.hidden_size,
            "num_hidden_layers": config.num_hidden_layers, "num_attention_heads": config.num_attention_heads,
            "intermediate_size": config.intermediate_size, "codebook_size": self.vocab_size,
            "codebook_dim": self.codebook_dim, "num_channels": self.num_channels,
        }

    def preprocess(self, pixels: torch.Tensor) -> torch.Tensor:
        """[0, 1] views -> [-1, 1] (unilm's ``x * 255 / 127.5 - 1``)."""
        return pixels.float() * 2.0 - 1.0

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """l2-normalised code-space features ``(B, h * w, codebook_dim)`` of preprocessed views."""
        self._check_images(images)
        grid_matches = tuple(images.shape[-2:]) == (self.image_size, self.image_size)
        hidden = self.encoder.encode(images, interpolate_pos_encoding=not grid_matches)[0]
        tokens = self.encoder.pooler.layernorm(hidden[:, 1:])
        return F.normalize(self.encode_task_layer(tokens.float()), dim=-1)

    @torch.no_grad()
    def get_codebook_indices(self, images: torch.Tensor) -> torch.LongTensor:
        features = self.encode(images)
        batch, length, dim = features.shape
        flat, codebook = features.reshape(-1, dim), self.codebook.float()
        distances = flat.pow(2).sum(1, keepdim=True) + codebook.pow(2).sum(1) - 2 * flat @ codebook.T
        return distances.argmin(dim=1).reshape(batch, length)

    @classmethod
    def from_vqkd_state_dict(
        cls, state_dict: dict[str, torch.Tensor], num_attention_heads: int = 12
    ) -> VQKDTokenizer:
        """Build the tokenizer from the state dict of unilm's ``VQKD`` (sizes read from the tensors).

        The head count cannot be read from the weights (no relative-position table); the default is the released
        tokenizer's 12.
        """
        converted, config = convert_vqkd_state_dict(state_dict)
        tokenizer = cls(**config, num_attention_heads=num_attention_heads)
        tokenizer.load_state_dict(converted, strict=True)
        return tokenizer.eval()


def convert_vqkd_state_dict(state_dict: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, int]]:
    """unilm ``VQKD`` names -> :class:`VQKDTokenizer` names, and the constructor sizes read from the tensors.

    Raises ``ValueError`` for a state dict that is not a VQ-KD tokenizer's, or that has weights this encoder
    cannot place (training-only parts are skipped).
    """
    from hf_beit.conversion.config_inference import inspect_state_dict
    from hf_beit.conversion.key_mapping import convert_state_dict

    if _CODEBOOK_KEY not in state_dict or "encode_task_layer.2.weight" not in state_dict:
        raise ValueError(
            f"Not a VQ-KD tokenizer state dict: expected {_CODEBOOK_KEY!r} and 'encode_task_layer.2.weight' "
            f"(got e.g. {sorted(state_dict)[:3]})."
        )
    encoder = {k.removeprefix("encoder."): v for k, v in state_dict.items() if k.startswith("encoder.")}
    facts = inspect_state_dict(encoder)
    if not facts.use_absolute_position_embeddings or facts.use_layer_scale or facts.image_size is None:
        raise ValueError("The VQ-KD encoder must have absolute position embeddings and no layer scale.")
    converted = {
        "encoder." + key.removeprefix("beit."): value
        for key, value in convert_state_dict(encoder, "embeddings").items()
    }
    converted |= {k: v for k, v in state_dict.items() if k.startswith("encode_task_layer.")}
    converted["codebook"] = state_dict[_CODEBOOK_KEY]
    leftover = [k for k in state_dict if not k.startswith(("encoder.", "encode_task_layer.", _CODEBOOK_KEY))]
    unknown = [k for k in leftover if not _TRAINING_ONLY.match(k)]
    if unknown:
        raise ValueError(f"{len(unknown)} weight(s) are not part of a VQ-KD tokenizer: {', '.join(unknown[:8])}.")
    codebook_size, codebook_dim = state_dict[_CODEBOOK_KEY].shape
    config = {
        "image_size": facts.image_size, "patch_size": facts.patch_size, "hidden_size": facts.hidden_size,
        "num_hidden_layers": facts.num_hidden_layers, "intermediate_size": facts.intermediate_size,
        "codebook_size": int(codebook_size), "codebook_dim": int(codebook_dim), "num_channels": facts.num_channels,
    }
    return converted, config


def load_vqkd_tokenizer(path: str | os.PathLike, num_attention_heads: int = 12) -> VQKDTokenizer:
    """Load a VQ-KD tokenizer from a saved tokenizer folder, a ``.safetensors`` state dict, or unilm's released
    ``.pth`` (read with ``torch.load(weights_only=True)``: weights under ``model`` or ``state_dict``)."""
    from hf_beit.conversion.checkpoint import load_original_checkpoint

    path = Path(path)
    if path.is_dir():
        if (path / WEIGHTS_NAME).is_file() and not (path / "tokenizer_config.json").is_file():
            path = path / WEIGHTS_NAME
        else:
            return VQKDTokenizer.from_pretrained(path)
    if not path.is_file():
        raise FileNotFoundError(f"VQ-KD tokenizer weights not found at {path}.")
    state_dict = load_file(str(path)) if path.suffix == ".safetensors" else load_original_checkpoint(path).state_dict
    return VQKDTokenizer.from_vqkd_state_dict(state_dict, num_attention_heads=num_attention_heads)
