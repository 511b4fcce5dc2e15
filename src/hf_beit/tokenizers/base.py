"""The visual-tokenizer interface used by masked image modeling, and saving/loading tokenizers as safetensors.

A visual tokenizer turns the *tokenizer view* of an image (a square crop of ``image_size`` pixels, values in
[0, 1] after :meth:`VisualTokenizer.preprocess`) into a grid of discrete token ids, one per ``downsample`` x
``downsample`` pixel cell, flattened row-major. The grid must match the model's patch grid: DALL-E's dVAE reads
a 112 view with 8x downsampling, giving the 14x14 ids for a 224 model with 16-pixel patches.

A saved tokenizer is a folder with ``tokenizer_config.json`` (with ``tokenizer_type``) and ``model.safetensors``.
"""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from hf_beit.atomic_io import atomic_output_dir

CONFIG_NAME = "tokenizer_config.json"
WEIGHTS_NAME = "model.safetensors"

_REGISTRY: dict[str, type[VisualTokenizer]] = {}


class VisualTokenizer(nn.Module, ABC):
    """Maps images to discrete visual tokens. Subclasses set ``tokenizer_type`` and implement the abstract parts."""

    tokenizer_type: ClassVar[str] = ""
    #: torchvision interpolation of the tokenizer view (unilm: Lanczos for DALL-E; BEiT v2 VQ-KD: bicubic)
    view_interpolation: ClassVar[str] = "lanczos"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.tokenizer_type:
            _REGISTRY[cls.tokenizer_type] = cls

    vocab_size: int
    image_size: int
    downsample: int
    num_channels: int

    @property
    def token_grid(self) -> tuple[int, int]:
        """Token grid ``(height, width)`` for an ``image_size`` view."""
        side = self.image_size // self.downsample
        return side, side

    def preprocess(self, pixels: torch.Tensor) -> torch.Tensor:
        """Map a float view with values in [0, 1], shape ``(B, C, H, W)``, to this tokenizer's input."""
        return pixels

    @abstractmethod
    def get_codebook_indices(self, images: torch.Tensor) -> torch.LongTensor:
        """Token ids ``(B, h * w)`` (row-major) for preprocessed views ``(B, C, H, W)``."""

    @abstractmethod
    def get_config(self) -> dict[str, Any]:
        """Constructor keyword arguments that rebuild this tokenizer (JSON-serialisable)."""

    def _check_images(self, images: torch.Tensor) -> None:
        if images.ndim != 4 or images.shape[1] != self.num_channels:
            raise ValueError(
                f"{type(self).__name__} expects images of shape (batch, {self.num_channels}, height, width), "
                f"got {tuple(images.shape)}."
            )
        if images.shape[-1] % self.downsample or images.shape[-2] % self.downsample:
            raise ValueError(
                f"Image size {tuple(images.shape[-2:])} is not a multiple of the tokenizer's downsampling factor "
                f"{self.downsample}; resize the tokenizer view (e.g. to {self.image_size})."
            )
        if not images.is_floating_point():
            raise TypeError(f"Images must be a float tensor (values in [0, 1] before preprocess), got {images.dtype}.")

    def save_pretrained(self, save_directory: str | os.PathLike, overwrite: bool = True) -> None:
        """Write ``tokenizer_config.json`` and ``model.safetensors`` to ``save_directory`` atomically."""
        config = {"tokenizer_type": self.tokenizer_type, **self.get_config()}
        tensors = {name: tensor.detach().contiguous().cpu() for name, tensor in self.state_dict().items()}
        with atomic_output_dir(save_directory, overwrite=overwrite) as tmp:
            (tmp / CONFIG_NAME).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
            save_file(tensors, str(tmp / WEIGHTS_NAME), metadata={"format": "pt"})

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike) -> VisualTokenizer:
        """Load a tokenizer folder written by :meth:`save_pretrained` (``cls`` may be the base class)."""
        config = read_tokenizer_config(directory)
        tokenizer_type = config.pop("tokenizer_type")
        target = _REGISTRY.get(tokenizer_type)
        if target is None:
            raise ValueError(
                f"Unknown tokenizer_type {tokenizer_type!r} in {directory}; known types: {sorted(_REGISTRY)}."
            )
        if cls is not VisualTokenizer and not issubclass(target, cls):
            raise ValueError(f"{directory} holds a {tokenizer_type!r} tokenizer, not a {cls.__name__}.")
        tokenizer = target(**config)
        tokenizer.load_state_dict(load_file(str(Path(directory) / WEIGHTS_NAME)))
        return tokenizer.eval()


def read_tokenizer_config(directory: str | os.PathLike) -> dict[str, Any]:
    """The ``tokenizer_config.json`` of a saved tokenizer folder, with a clear error when it is not one."""
    path = Path(directory) / CONFIG_NAME
    if not path.is_file() or not (Path(directory) / WEIGHTS_NAME).is_file():
        raise FileNotFoundError(
            f"{directory} is not a saved visual tokenizer: it needs {CONFIG_NAME} and {WEIGHTS_NAME} "
            "(written by VisualTokenizer.save_pretrained)."
        )
    config = json.loads(path.read_text(encoding="utf-8"))
    if "tokenizer_type" not in config:
        raise ValueError(f"{path} has no 'tokenizer_type' entry.")
    return config


def load_visual_tokenizer(directory: str | os.PathLike) -> VisualTokenizer:
    """Load any saved visual tokenizer (dispatching on ``tokenizer_type``)."""
    # Import the implementations so that they are registered.
    from hf_beit.tokenizers import dalle, kmeans, vqkd  # noqa: F401

    return VisualTokenizer.from_pretrained(directory)
