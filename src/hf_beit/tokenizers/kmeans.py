"""A visual tokenizer that needs no downloaded weights: a k-means codebook of pixel patches.

Each ``patch_size`` x ``patch_size`` cell of the tokenizer view (values in [0, 1]) is flattened to a vector of
``num_channels * patch_size**2`` pixels and assigned the id of its nearest codebook vector (squared Euclidean
distance). The codebook is fitted on the user's own images with mini-batch k-means (Sculley, 2010) started from
k-means++ seeds, all in torch and seeded, so the whole pre-training pipeline runs anywhere.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from hf_beit.tokenizers.base import VisualTokenizer

__all__ = ["KMeansPatchTokenizer", "extract_patches"]


def extract_patches(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """``(B, C, H, W)`` -> ``(B, (H / p) * (W / p), C * p * p)``, patches in row-major order."""
    return F.unfold(images.float(), kernel_size=patch_size, stride=patch_size).transpose(1, 2)


def _squared_distances(points: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances ``(N, K)``."""
    distances = (points * points).sum(1, keepdim=True) - 2 * points @ centres.T + (centres * centres).sum(1)
    return distances.clamp_min_(0)


def _kmeans_plus_plus(points: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """k-means++ seeding: each new centre is drawn with probability proportional to its squared distance."""
    first = torch.randint(len(points), (1,), generator=generator)
    centres = [points[first]]
    closest = _squared_distances(points, centres[0]).squeeze(1)
    for _ in range(1, k):
        total = closest.sum()
        if total <= 0:  # fewer distinct points than centres: repeat random points
            index = torch.randint(len(points), (1,), generator=generator)
        else:
            index = torch.multinomial(closest / total, 1, generator=generator)
        centres.append(points[index])
        closest = torch.minimum(closest, _squared_distances(points, centres[-1]).squeeze(1))
    return torch.cat(centres)


class KMeansPatchTokenizer(VisualTokenizer):
    """Nearest-centre patch tokenizer. Build one with :meth:`fit`; ``codebook`` is a ``(vocab_size, dim)`` buffer."""

    tokenizer_type = "kmeans_patch"

    def __init__(self, vocab_size: int, patch_size: int, image_size: int, num_channels: int = 3) -> None:
        super().__init__()
        if min(vocab_size, patch_size, image_size, num_channels) < 1:
            raise ValueError("vocab_size, patch_size, image_size and num_channels must be positive.")
        if image_size % patch_size:
            raise ValueError(f"image_size ({image_size}) must be a multiple of patch_size ({patch_size}).")
        self.vocab_size = vocab_size
        self.downsample = patch_size
        self.image_size = image_size
        self.num_channels = num_channels
        self.register_buffer("codebook", torch.zeros(vocab_size, num_channels * patch_size**2))

    @property
    def patch_size(self) -> int:
        return self.downsample

    def get_config(self) -> dict[str, Any]:
        keys = ("vocab_size", "patch_size", "image_size", "num_channels")
        return {key: getattr(self, key) for key in keys}

    @torch.no_grad()
    def get_codebook_indices(self, images: torch.Tensor) -> torch.LongTensor:
        self._check_images(images)
        patches = extract_patches(images, self.patch_size)
        batch, length, dim = patches.shape
        distances = _squared_distances(patches.reshape(-1, dim), self.codebook.float())
        return distances.argmin(dim=1).reshape(batch, length)

    @classmethod
    def fit(
        cls,
        images: torch.Tensor | Iterable[torch.Tensor],
        vocab_size: int,
        patch_size: int,
        steps: int = 200,
        batch_size: int = 4096,
        init_samples: int = 20000,
        seed: int = 0,
        progress: bool = True,
    ) -> KMeansPatchTokenizer:
        """Fit the codebook on tokenizer views: a ``(N, C, S, S)`` tensor (or an iterable of such batches) with
        values in [0, 1], where ``S`` is the tokenizer's ``image_size``."""
        if isinstance(images, torch.Tensor):
            images = [images]
        batches = list(images)
        if not batches or any(batch.ndim != 4 for batch in batches):
            raise ValueError("fit expects one or more (N, C, S, S) float tensors of tokenizer views in [0, 1].")
        shapes = {tuple(batch.shape[1:]) for batch in batches}
        if len(shapes) != 1:
            raise ValueError(f"All views must have the same (C, S, S) shape, got {sorted(shapes)}.")
        channels, height, width = shapes.pop()
        if height != width:
            raise ValueError(f"Tokenizer views must be square, got {height}x{width}.")
        tokenizer = cls(vocab_size, patch_size, height, channels)
        points = torch.cat(
            [extract_patches(batch, patch_size).reshape(-1, channels * patch_size**2) for batch in batches]
        )
        if len(points) < vocab_size:
            raise ValueError(
                f"Only {len(points)} patches for {vocab_size} codebook entries: use more images or a smaller vocab."
            )
        generator = torch.Generator().manual_seed(seed)
        sample = points[torch.randperm(len(points), generator=generator)[:init_samples]]
        centres = _kmeans_plus_plus(sample, vocab_size, generator)
        counts = torch.zeros(vocab_size)
        for _ in tqdm(range(steps), desc="k-means codebook", disable=not progress):
            batch = points[torch.randint(len(points), (min(batch_size, len(points)),), generator=generator)]
            assignment = _squared_distances(batch, centres).argmin(1)
            # Per-centre learning rate 1 / (number of points it has seen): the centre is their running mean.
            batch_counts = torch.bincount(assignment, minlength=vocab_size).float()
            sums = torch.zeros_like(centres).index_add_(0, assignment, batch)
            counts += batch_counts
            seen = batch_counts > 0
            rate = (batch_counts[seen] / counts[seen]).unsqueeze(1)
            centres[seen] += rate * (sums[seen] / batch_counts[seen].unsqueeze(1) - centres[seen])
        tokenizer.codebook.copy_(centres)
        return tokenizer.eval()
