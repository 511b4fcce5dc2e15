"""The shape of ``pixel_values`` in an exported graph: which axes are fixed, which are dynamic, and the example.

* Batch: dynamic by default. The example traced has batch 2 on purpose: ``torch.export`` specialises an axis whose
  example size is 0 or 1 to a constant, even when it is declared dynamic (with batch-1 examples the exported
  graphs had a fixed batch of 1).
* Resolution: fixed by default (the configured ``image_size``, or any ``image_size`` given; positions are
  interpolated for it). ``image_size="dynamic"`` is possible only for models without relative-position tables:
  those are resized to a new patch grid with unilm's geometric interpolation, computed with scipy at trace time,
  so their bias can only be baked in for one size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch.export import Dim

from ..configuration_beit import BeitConfig
from .errors import UnsupportedExportError

DYNAMIC = "dynamic"
EXAMPLE_BATCH = 2
# Smallest patch grid side of a dynamic resolution: a side of 1 would be specialised like a batch of 1, and in
# segmentation the coarsest pyramid level (grid / 2, after max-pooling) must not be 1 either.
MIN_DYNAMIC_GRID = {"image-segmentation": 4}
DEFAULT_MIN_DYNAMIC_GRID = 2


@dataclass(frozen=True)
class InputSpec:
    """``pixel_values`` of an export: an int per fixed axis, ``None`` per dynamic one."""

    batch: int | None
    height: int | None
    width: int | None
    num_channels: int
    native_size: tuple[int, int]
    patch_size: tuple[int, int]
    min_grid: int = DEFAULT_MIN_DYNAMIC_GRID

    @property
    def dynamic_resolution(self) -> bool:
        return self.height is None

    def example(self, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu") -> torch.Tensor:
        """A random input with these fixed sizes (dynamic resolution: a rectangle, so height and width stay apart)."""
        height, width = self.native_size
        if self.dynamic_resolution:
            width += self.patch_size[1]
        else:
            height, width = self.height, self.width
        generator = torch.Generator().manual_seed(0)
        shape = (self.batch or EXAMPLE_BATCH, self.num_channels, height, width)
        return torch.randn(shape, generator=generator).to(device=device, dtype=dtype)

    def dynamic_shapes(self) -> dict[int, Dim]:
        """``torch.export`` dynamic-shape spec of ``pixel_values`` (axis -> Dim) for the dynamic axes."""
        axes = {}
        if self.batch is None:
            axes[0] = Dim("batch", min=1)
        if self.dynamic_resolution:
            # multiples of the patch size: with plain Dims, torch 2.14 cannot prove the stride guards of the
            # channels-last convolutions in the segmentation head (e.g. ``1 % (128 * (W // 8)) != 0``)
            axes[2] = self.patch_size[0] * Dim("grid_height", min=self.min_grid)
            axes[3] = self.patch_size[1] * Dim("grid_width", min=self.min_grid)
        return axes

    def describe(self) -> str:
        """E.g. ``"(batch, 3, 224, 224)"``."""
        sizes = (self.batch or "batch", self.num_channels, self.height or "height", self.width or "width")
        return "(" + ", ".join(str(size) for size in sizes) + ")"


def has_relative_position_tables(config: BeitConfig) -> bool:
    return bool(config.use_relative_position_bias or config.use_shared_relative_position_bias)


def resolve_input_spec(
    config: BeitConfig,
    task: str,
    batch: int | str = DYNAMIC,
    image_size: int | Sequence[int] | str | None = None,
) -> InputSpec:
    """Check ``batch`` (``"dynamic"`` or N) and ``image_size`` (None: the config's; H, (H, W) or ``"dynamic"``)."""
    height, width = _resolution(config, image_size)
    min_grid = MIN_DYNAMIC_GRID.get(task, DEFAULT_MIN_DYNAMIC_GRID)
    return InputSpec(
        _batch(batch), height, width, config.num_channels, config.image_size_2d, config.patch_size_2d, min_grid
    )


def _batch(batch: int | str) -> int | None:
    if batch == DYNAMIC:
        return None
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise UnsupportedExportError(f"batch must be 'dynamic' or a positive integer; got {batch!r}.")
    return batch


def _resolution(config: BeitConfig, image_size: int | Sequence[int] | str | None) -> tuple[int | None, int | None]:
    if image_size == DYNAMIC:
        if has_relative_position_tables(config):
            raise UnsupportedExportError(
                "Dynamic resolution is not possible for this model: it has relative-position bias tables, which are "
                "resized to a new patch grid with unilm's geometric interpolation computed with scipy at export "
                "time, so the bias can only be baked in for one resolution. Export at a fixed resolution instead "
                "with --image-size H [W] (image_size=(H, W)); any size works, e.g. the configured "
                f"{config.image_size_2d[0]} {config.image_size_2d[1]}."
            )
        return None, None
    if image_size is None:
        return config.image_size_2d
    sizes = (image_size,) if isinstance(image_size, int) else image_size
    if (
        not isinstance(sizes, (list, tuple))
        or len(sizes) not in (1, 2)
        or not all(isinstance(size, int) and not isinstance(size, bool) for size in sizes)
    ):
        raise UnsupportedExportError(f"image_size must be None, 'dynamic', H or (H, W); got {image_size!r}.")
    height, width = sizes[0], sizes[-1]
    patch = config.patch_size_2d
    if height < patch[0] or width < patch[1]:
        raise UnsupportedExportError(f"image_size {height}x{width} is smaller than one {patch[0]}x{patch[1]} patch.")
    return height, width
