"""OpenAI's DALL-E dVAE encoder as a visual tokenizer (BEiT's pre-training targets), in plain torch.

Architecture (facts of OpenAI's ``dall_e.Encoder``): a 7x7 input convolution to ``n_hid`` channels, then
``group_count`` groups of ``n_blk_per_group`` residual blocks with widths ``n_hid * 2**g``, a 2x2 max-pool after
every group but the last (8x downsampling for 4 groups), and ReLU + 1x1 convolution to ``vocab_size`` logits.
A residual block is ``id_path(x) + (1 / n_layers**2) * res_path(x)`` with ``n_layers = group_count *
n_blk_per_group``; ``id_path`` is a 1x1 convolution when the width changes, and ``res_path`` is
ReLU-conv3x3-ReLU-conv3x3-ReLU-conv3x3-ReLU-conv1x1 through ``width / 4`` hidden channels.
The tokens of an image are the argmax over the logits; inputs are ``map_pixels``-mapped [0, 1] images, float32.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import nn

from hf_beit.tokenizers.base import WEIGHTS_NAME, VisualTokenizer

LOGIT_LAPLACE_EPS = 0.1

__all__ = ["DalleEncoder", "convert_dall_e_state_dict", "load_dalle_encoder", "map_pixels", "unmap_pixels"]


def map_pixels(x: torch.Tensor, eps: float = LOGIT_LAPLACE_EPS) -> torch.Tensor:
    """Map [0, 1] pixels to [eps, 1 - eps] (the logit-Laplace input range of the dVAE)."""
    if x.ndim != 4:
        raise ValueError(f"map_pixels expects a 4-D (batch, channels, height, width) tensor, got {x.ndim}-D.")
    if not x.is_floating_point():
        raise TypeError(f"map_pixels expects a float tensor with values in [0, 1], got {x.dtype}.")
    return (1 - 2 * eps) * x + eps


def unmap_pixels(x: torch.Tensor, eps: float = LOGIT_LAPLACE_EPS) -> torch.Tensor:
    """Inverse of :func:`map_pixels`, clamped to [0, 1]."""
    return ((x - eps) / (1 - 2 * eps)).clamp(0, 1)


class _DalleResidualBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, post_gain: float) -> None:
        super().__init__()
        if out_channels % 4:
            raise ValueError(f"Block width must be a multiple of 4, got {out_channels}.")
        hidden = out_channels // 4
        self.post_gain = post_gain
        self.id_path = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()
        self.conv_1 = nn.Conv2d(in_channels, hidden, 3, padding=1)
        self.conv_2 = nn.Conv2d(hidden, hidden, 3, padding=1)
        self.conv_3 = nn.Conv2d(hidden, hidden, 3, padding=1)
        self.conv_4 = nn.Conv2d(hidden, out_channels, 1)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x
        for conv in (self.conv_1, self.conv_2, self.conv_3, self.conv_4):
            residual = conv(self.act(residual))
        return self.id_path(x) + self.post_gain * residual


class DalleEncoder(VisualTokenizer):
    """DALL-E dVAE encoder. Defaults are OpenAI's released encoder (8192 tokens, 112 view -> 14x14 tokens)."""

    tokenizer_type = "dall_e"

    def __init__(
        self,
        n_hid: int = 256,
        n_blk_per_group: int = 2,
        group_count: int = 4,
        input_channels: int = 3,
        vocab_size: int = 8192,
        image_size: int = 112,
    ) -> None:
        super().__init__()
        if min(n_hid, n_blk_per_group, group_count, input_channels, vocab_size, image_size) < 1:
            raise ValueError("All DalleEncoder sizes must be positive integers.")
        self.n_hid, self.n_blk_per_group, self.group_count = n_hid, n_blk_per_group, group_count
        self.num_channels = input_channels
        self.vocab_size = vocab_size
        self.image_size = image_size
        self.downsample = 2 ** (group_count - 1)
        post_gain = 1.0 / (group_count * n_blk_per_group) ** 2
        self.input_conv = nn.Conv2d(input_channels, n_hid, 7, padding=3)
        self.groups = nn.ModuleList()
        width = n_hid
        for group in range(group_count):
            out_width = n_hid * 2**group
            blocks = [
                _DalleResidualBlock(width if index == 0 else out_width, out_width, post_gain)
                for index in range(n_blk_per_group)
            ]
            width = out_width
            self.groups.append(nn.Sequential(*blocks))
        self.pool = nn.MaxPool2d(kernel_size=2)
        self.output_act = nn.ReLU()
        self.output_conv = nn.Conv2d(width, vocab_size, 1)
        self.requires_grad_(False)
        self.eval()

    def get_config(self) -> dict[str, Any]:
        return {
            "n_hid": self.n_hid,
            "n_blk_per_group": self.n_blk_per_group,
            "group_count": self.group_count,
            "input_channels": self.num_channels,
            "vocab_size": self.vocab_size,
            "image_size": self.image_size,
        }

    def preprocess(self, pixels: torch.Tensor) -> torch.Tensor:
        return map_pixels(pixels.float())

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, vocab_size, H / downsample, W / downsample)`` for ``map_pixels``-mapped images."""
        self._check_images(images)
        x = self.input_conv(images.float())
        for index, group in enumerate(self.groups):
            x = group(x)
            if index < len(self.groups) - 1:
                x = self.pool(x)
        return self.output_conv(self.output_act(x))

    @torch.no_grad()
    def get_codebook_indices(self, images: torch.Tensor) -> torch.LongTensor:
        return self(images).argmax(dim=1).flatten(1)

    @classmethod
    def from_dall_e_state_dict(cls, state_dict: dict[str, torch.Tensor], image_size: int = 112) -> DalleEncoder:
        """Build an encoder from the ``state_dict()`` of ``dall_e.Encoder`` (sizes inferred from the tensors)."""
        converted, config = convert_dall_e_state_dict(state_dict)
        encoder = cls(**config, image_size=image_size)
        encoder.load_state_dict(converted)
        return encoder


_DALL_E_BLOCK = re.compile(r"^blocks\.group_(\d+)\.block_(\d+)\.(id_path|res_path\.conv_\d)\.([wb])$")
_PARAM_NAMES = {"w": "weight", "b": "bias"}


def convert_dall_e_state_dict(state_dict: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, int]]:
    """Rename ``dall_e.Encoder`` keys to :class:`DalleEncoder` keys and infer the constructor sizes.

    Returns ``(converted_state_dict, config)``; raises ``ValueError`` on keys that are not a DALL-E encoder's.
    """
    if "blocks.input.w" not in state_dict or "blocks.output.conv.w" not in state_dict:
        raise ValueError(
            "Not a dall_e.Encoder state dict: expected keys 'blocks.input.w' and 'blocks.output.conv.w' "
            f"(got e.g. {sorted(state_dict)[:3]}). A decoder.pkl cannot be used as a tokenizer."
        )
    converted: dict[str, torch.Tensor] = {}
    groups: dict[int, set[int]] = {}
    for key, tensor in state_dict.items():
        tensor = tensor.detach()
        if key.startswith("blocks.input."):
            converted[f"input_conv.{_PARAM_NAMES[key[-1]]}"] = tensor
        elif key.startswith("blocks.output.conv."):
            converted[f"output_conv.{_PARAM_NAMES[key[-1]]}"] = tensor
        else:
            match = _DALL_E_BLOCK.match(key)
            if match is None:
                raise ValueError(f"Unexpected key {key!r} in a dall_e.Encoder state dict.")
            group, block, part, kind = match.groups()
            groups.setdefault(int(group), set()).add(int(block))
            name = part.replace("res_path.", "")
            converted[f"groups.{int(group) - 1}.{int(block) - 1}.{name}.{_PARAM_NAMES[kind]}"] = tensor
    input_weight = state_dict["blocks.input.w"]
    config = {
        "n_hid": int(input_weight.shape[0]),
        "input_channels": int(input_weight.shape[1]),
        "vocab_size": int(state_dict["blocks.output.conv.w"].shape[0]),
        "group_count": len(groups),
        "n_blk_per_group": len(groups.get(1, ())),
    }
    return converted, config


def _read_state_dict(path: Path, trust_pickle: bool) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        return load_file(str(path))
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a pickled module cannot be read with weights_only=True
        if not trust_pickle:
            raise ValueError(
                f"{path} is not a plain tensor checkpoint (torch.load with weights_only=True failed: "
                f"{type(error).__name__}). OpenAI's encoder.pkl is a pickled dall_e.Encoder module, and unpickling "
                "runs arbitrary code: only for a file from a source you trust, pass trust_pickle=True "
                "(CLI: --trust-pickle) with the `dall_e` package installed (pip install dall-e). Then save it "
                "with save_pretrained to get a safe safetensors copy."
            ) from error
        try:
            import dall_e  # noqa: F401  (the pickle refers to dall_e.encoder classes)
        except ImportError as import_error:
            raise ImportError(
                "Reading a pickled dall_e.Encoder needs the `dall_e` package: pip install dall-e."
            ) from import_error
        loaded = torch.load(path, map_location="cpu", weights_only=False)
    if isinstance(loaded, nn.Module):
        loaded = loaded.state_dict()
    if not isinstance(loaded, dict):
        raise TypeError(f"{path} holds a {type(loaded).__name__}, not a dall_e.Encoder or its state dict.")
    return loaded


def load_dalle_encoder(path: str | os.PathLike, trust_pickle: bool = False, image_size: int = 112) -> DalleEncoder:
    """Load a DALL-E encoder from a saved tokenizer folder, a ``.safetensors`` file, a state-dict checkpoint or
    (with ``trust_pickle=True``) OpenAI's pickled ``encoder.pkl``.

    ``trust_pickle``: ``torch.load`` of a whole pickled module needs ``weights_only=False``, which can execute
    code hidden in the file; it is only used when you opt in, for files from a source you trust.
    """
    path = Path(path)
    if path.is_dir():
        if (path / WEIGHTS_NAME).is_file() and not (path / "tokenizer_config.json").is_file():
            path = path / WEIGHTS_NAME
        else:
            return DalleEncoder.from_pretrained(path)
    if not path.is_file():
        raise FileNotFoundError(f"DALL-E encoder weights not found at {path}.")
    state_dict = _read_state_dict(path, trust_pickle)
    if "input_conv.weight" in state_dict:  # already in our layout
        raise ValueError(
            f"{path} holds DalleEncoder weights without a config; load the folder written by save_pretrained."
        )
    return DalleEncoder.from_dall_e_state_dict(state_dict, image_size=image_size)
