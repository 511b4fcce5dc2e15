"""Block-wise masking for masked image modeling, as in the BEiT paper (Bao et al., 2021, Algorithm 1).

The generator places random rectangles ("blocks") on the patch grid until the masking budget is spent:

* each block placement makes up to 10 attempts; an attempt draws a target area uniformly in
  ``[min_num_patches, budget]`` (Python-``uniform`` semantics: in ``[budget, min_num_patches]`` once the budget is
  smaller), an aspect ratio log-uniformly in ``[min_aspect, max_aspect]``, rounds ``h = sqrt(area * aspect)`` and
  ``w = sqrt(area / aspect)``, and, if the block fits strictly inside the grid, a uniformly random position;
* the attempt is accepted when the number of *new* cells is in ``(0, budget]``; a placement that adds nothing
  ends the mask, so a mask may end slightly below ``num_masking_patches`` but never above it.

Defaults are the pre-training ones: 75 of 196 patches on a 14x14 grid, blocks of at least 16 patches, aspect
0.3 .. 1/0.3. :meth:`MaskingGenerator.for_grid` scales the budget and the minimum block to other grids.
Randomness comes from a :class:`numpy.random.Generator`, drawn in the same order as the original loop, so a
seed gives the same masks whatever the batch split.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["DEFAULT_GRID", "DEFAULT_MIN_PATCHES", "DEFAULT_NUM_MASKING_PATCHES", "BlockPlacement", "MaskingGenerator"]

DEFAULT_GRID = 14
DEFAULT_NUM_MASKING_PATCHES = 75
DEFAULT_MIN_PATCHES = 16
_MAX_ATTEMPTS = 10


@dataclass(frozen=True)
class BlockPlacement:
    """One accepted block: its rectangle on the grid and how many cells it newly masked."""

    top: int
    left: int
    height: int
    width: int
    added: int


class MaskingGenerator:
    """Seeded block-wise mask generator for a patch grid of any size.

    Args:
        input_size: grid size ``(height, width)`` in patches, or one int for a square grid.
        num_masking_patches: masking budget per image (75 for 14x14).
        min_num_patches: smallest target area of one block (16 in BEiT pre-training).
        max_num_patches: largest budget of one block; ``None`` means ``num_masking_patches``.
        min_aspect: smallest aspect ratio; ``max_aspect`` defaults to ``1 / min_aspect``.
        seed: seed or :class:`numpy.random.Generator` for reproducible masks.
    """

    def __init__(
        self,
        input_size: int | tuple[int, int] = DEFAULT_GRID,
        num_masking_patches: int = DEFAULT_NUM_MASKING_PATCHES,
        min_num_patches: int = DEFAULT_MIN_PATCHES,
        max_num_patches: int | None = None,
        min_aspect: float = 0.3,
        max_aspect: float | None = None,
        seed: int | np.random.Generator | None = None,
    ) -> None:
        height, width = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
        if height < 1 or width < 1:
            raise ValueError(f"input_size must be positive, got {input_size!r}.")
        num_patches = height * width
        if not 0 < num_masking_patches <= num_patches:
            raise ValueError(
                f"num_masking_patches must be in [1, {num_patches}] for a {height}x{width} grid, "
                f"got {num_masking_patches}."
            )
        if min_num_patches < 1:
            raise ValueError(f"min_num_patches must be >= 1, got {min_num_patches}.")
        if min_aspect <= 0:
            raise ValueError(f"min_aspect must be > 0, got {min_aspect}.")
        max_aspect = max_aspect or 1.0 / min_aspect
        self.height, self.width = int(height), int(width)
        self.num_patches = num_patches
        self.num_masking_patches = int(num_masking_patches)
        self.min_num_patches = int(min_num_patches)
        self.max_num_patches = self.num_masking_patches if max_num_patches is None else int(max_num_patches)
        self.log_aspect_ratio = (math.log(min_aspect), math.log(max_aspect))
        self.rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)

    @classmethod
    def for_grid(
        cls,
        input_size: int | tuple[int, int],
        mask_ratio: float = DEFAULT_NUM_MASKING_PATCHES / DEFAULT_GRID**2,
        min_block_ratio: float = DEFAULT_MIN_PATCHES / DEFAULT_GRID**2,
        **kwargs,
    ) -> MaskingGenerator:
        """Scale the 224 defaults (75 and 16 of 196 patches) to another grid: 14x14 gives exactly 75 / 16."""
        height, width = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
        num_patches = height * width
        budget = max(1, round(mask_ratio * num_patches))
        min_block = max(1, round(min_block_ratio * num_patches))
        return cls((height, width), num_masking_patches=budget, min_num_patches=min_block, **kwargs)

    def get_shape(self) -> tuple[int, int]:
        return self.height, self.width

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(grid={self.height}x{self.width}, num_masking_patches={self.num_masking_patches}, "
            f"min_num_patches={self.min_num_patches}, max_num_patches={self.max_num_patches}, "
            f"aspect=[{math.exp(self.log_aspect_ratio[0]):.3f}, {math.exp(self.log_aspect_ratio[1]):.3f}])"
        )

    def _uniform(self, low: float, high: float) -> float:
        # Same formula as Python's random.uniform: also valid when high < low.
        return low + (high - low) * self.rng.random()

    def _place_block(self, mask: np.ndarray, budget: int) -> BlockPlacement | None:
        for _ in range(_MAX_ATTEMPTS):
            target_area = self._uniform(self.min_num_patches, budget)
            aspect = math.exp(self._uniform(*self.log_aspect_ratio))
            h = round(math.sqrt(target_area * aspect))
            w = round(math.sqrt(target_area / aspect))
            if w < self.width and h < self.height:
                top = int(self.rng.integers(0, self.height - h + 1))
                left = int(self.rng.integers(0, self.width - w + 1))
                window = mask[top : top + h, left : left + w]
                added = h * w - int(window.sum())
                if 0 < added <= budget:
                    window[...] = True
                    return BlockPlacement(top, left, h, w, added)
        return None

    def sample_with_blocks(self) -> tuple[np.ndarray, list[BlockPlacement]]:
        """One ``(height, width)`` bool mask and the blocks that made it, in placement order."""
        mask = np.zeros((self.height, self.width), dtype=bool)
        blocks: list[BlockPlacement] = []
        count = 0
        while count < self.num_masking_patches:
            budget = min(self.num_masking_patches - count, self.max_num_patches)
            block = self._place_block(mask, budget)
            if block is None:
                break
            blocks.append(block)
            count += block.added
        return mask, blocks

    def sample(self) -> np.ndarray:
        """One ``(height, width)`` bool mask."""
        return self.sample_with_blocks()[0]

    def __call__(self, batch_size: int | None = None) -> np.ndarray | torch.Tensor:
        """Without arguments: one ``(height, width)`` numpy mask (like the original). With ``batch_size``:
        a bool tensor ``(batch_size, height * width)`` flattened row-major, i.e. ``bool_masked_pos``."""
        if batch_size is None:
            return self.sample()
        return self.batch(batch_size)

    def batch(self, batch_size: int) -> torch.Tensor:
        """``bool_masked_pos`` for a batch: bool tensor of shape ``(batch_size, height * width)``."""
        if batch_size < 0:
            raise ValueError(f"batch_size must be >= 0, got {batch_size}.")
        masks = np.zeros((batch_size, self.num_patches), dtype=bool)
        for index in range(batch_size):
            masks[index] = self.sample().reshape(-1)
        return torch.from_numpy(masks)
