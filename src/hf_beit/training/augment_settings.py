"""Training augmentation settings: a plain dataclass, importable without torchvision (the CLI reads its defaults)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class AugmentConfig:
    """Training augmentation settings (unilm fine-tuning defaults, except where noted).

    ``rand_augment`` is ``(num_ops, magnitude)`` for torchvision's RandAugment (unilm: ``rand-m9`` = (2, 9)); ``None``
    switches it off. ``hflip`` is a probability. ``crop_scale`` is the area range of RandomResizedCrop.
    """

    crop_scale: tuple[float, float] = (0.08, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    hflip: float = 0.5
    rand_augment: tuple[int, int] | None = (2, 9)
    color_jitter: float = 0.4
    random_erasing: float = 0.25

    def __post_init__(self):
        low, high = self.crop_scale
        if not 0 < low <= high <= 1:
            raise ValueError(f"crop_scale must satisfy 0 < min <= max <= 1, got {self.crop_scale}.")
        for name in ("hflip", "random_erasing"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} is a probability in [0, 1], got {getattr(self, name)}.")
