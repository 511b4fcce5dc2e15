"""Training/evaluation image transforms (torchvision v2) and batch-level mixup / cutmix."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.transforms import InterpolationMode, v2

from .augment_settings import AugmentConfig

BEIT_MEAN = (0.5, 0.5, 0.5)
BEIT_STD = (0.5, 0.5, 0.5)
__all__ = ["BEIT_MEAN", "BEIT_STD", "AugmentConfig", "Mixup", "build_eval_transform", "build_train_transform"]


def _to_normalized_tensor(mean, std) -> list:
    return [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean=list(mean), std=list(std))]


def build_train_transform(image_size: int, augment: AugmentConfig, mean=BEIT_MEAN, std=BEIT_STD) -> v2.Compose:
    """Random resized crop, flip, RandAugment, colour jitter, normalise, random erasing (for PIL/tensor images)."""
    steps: list = [
        v2.RandomResizedCrop(
            image_size, scale=augment.crop_scale, ratio=augment.crop_ratio, interpolation=InterpolationMode.BICUBIC
        )
    ]
    if augment.hflip > 0:
        steps.append(v2.RandomHorizontalFlip(augment.hflip))
    if augment.rand_augment is not None:
        num_ops, magnitude = augment.rand_augment
        steps.append(v2.RandAugment(num_ops=num_ops, magnitude=magnitude, interpolation=InterpolationMode.BICUBIC))
    elif augment.color_jitter > 0:  # as in timm/unilm: colour jitter only when RandAugment is off
        steps.append(v2.ColorJitter(*(augment.color_jitter,) * 3))
    steps += _to_normalized_tensor(mean, std)
    if augment.random_erasing > 0:
        steps.append(v2.RandomErasing(p=augment.random_erasing, value=0))
    return v2.Compose(steps)


def build_eval_transform(image_size: int, mean=BEIT_MEAN, std=BEIT_STD) -> v2.Compose:
    """Resize to ``image_size`` x ``image_size`` (bicubic) and normalise: what the saved image processor does."""
    return v2.Compose(
        [v2.Resize((image_size, image_size), interpolation=InterpolationMode.BICUBIC, antialias=True)]
        + _to_normalized_tensor(mean, std)
    )


def build_segmentation_transform(
    image_size: int, train: bool, augment: AugmentConfig, mean=BEIT_MEAN, std=BEIT_STD
) -> v2.Compose:
    """Joint image/mask transform: masks always use nearest-neighbour resampling, photometric ops touch the image only.

    Call it as ``transform(image, tv_tensors.Mask(mask))``.
    """
    if train:
        geometric: list = [
            v2.RandomResizedCrop(image_size, scale=augment.crop_scale, ratio=augment.crop_ratio, antialias=True)
        ]
        if augment.hflip > 0:
            geometric.append(v2.RandomHorizontalFlip(augment.hflip))
        if augment.color_jitter > 0:
            geometric.append(v2.ColorJitter(*(augment.color_jitter,) * 3))
    else:
        geometric = [v2.Resize((image_size, image_size), antialias=True)]
    return v2.Compose(geometric + _to_normalized_tensor(mean, std))


def as_mask(label_map) -> tv_tensors.Mask:
    """A (H, W) label map (PIL or array) as an int64 ``tv_tensors.Mask``."""
    array = np.asarray(label_map)
    if array.ndim == 3:
        raise ValueError(f"Segmentation masks must be single-channel label maps, got shape {array.shape}.")
    return tv_tensors.Mask(torch.from_numpy(array.astype(np.int64)))


def smooth_one_hot(labels: torch.Tensor, num_classes: int, smoothing: float = 0.0) -> torch.Tensor:
    """One-hot targets with label smoothing: ``1 - smoothing + smoothing / C`` on the label,
    ``smoothing / C`` off it."""
    off = smoothing / num_classes
    targets = torch.full((labels.shape[0], num_classes), off, device=labels.device)
    return targets.scatter_(1, labels.long().view(-1, 1), 1.0 - smoothing + off)


@dataclass
class Mixup:
    """Batch mixup / cutmix with soft targets (label smoothing folded in), as in unilm/timm fine-tuning.

    With both ``mixup_alpha`` and ``cutmix_alpha`` > 0, each batch uses cutmix with probability ``switch_prob``.
    ``prob`` is the probability of mixing a batch at all.
    """

    num_classes: int
    mixup_alpha: float = 0.8
    cutmix_alpha: float = 1.0
    prob: float = 1.0
    switch_prob: float = 0.5
    label_smoothing: float = 0.1

    def __post_init__(self):
        if self.mixup_alpha <= 0 and self.cutmix_alpha <= 0:
            raise ValueError("Mixup needs mixup_alpha > 0 or cutmix_alpha > 0.")

    def __call__(self, pixel_values: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return mixed ``pixel_values`` and soft targets (B, num_classes); the batch is mixed with its flip."""
        targets = smooth_one_hot(labels, self.num_classes, self.label_smoothing)
        if float(torch.rand(())) >= self.prob:
            return pixel_values, targets
        use_cutmix = self.cutmix_alpha > 0 and (self.mixup_alpha <= 0 or float(torch.rand(())) < self.switch_prob)
        alpha = self.cutmix_alpha if use_cutmix else self.mixup_alpha
        lam = float(torch.distributions.Beta(alpha, alpha).sample())
        flipped = pixel_values.flip(0)
        if use_cutmix:
            pixel_values, lam = _paste_box(pixel_values, flipped, lam)
        else:
            pixel_values = pixel_values * lam + flipped * (1.0 - lam)
        return pixel_values, targets * lam + targets.flip(0) * (1.0 - lam)


def _paste_box(images: torch.Tensor, source: torch.Tensor, lam: float) -> tuple[torch.Tensor, float]:
    """Paste a random box covering about ``1 - lam`` of the area; return the images and the exact kept fraction."""
    height, width = images.shape[-2:]
    cut = math.sqrt(1.0 - lam)
    box_h, box_w = int(height * cut), int(width * cut)
    cy, cx = int(torch.randint(height, ())), int(torch.randint(width, ()))
    top, bottom = max(cy - box_h // 2, 0), min(cy + box_h // 2, height)
    left, right = max(cx - box_w // 2, 0), min(cx + box_w // 2, width)
    mixed = images.clone()
    mixed[..., top:bottom, left:right] = source[..., top:bottom, left:right]
    return mixed, 1.0 - (bottom - top) * (right - left) / (height * width)
