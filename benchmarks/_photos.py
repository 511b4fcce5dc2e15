"""Real photographs bundled with scikit-learn and scikit-image, cut into 224x224 views for agreement checks."""

from __future__ import annotations

import numpy as np
import skimage.data
import torch
import torchvision.transforms.v2.functional as TF
from sklearn.datasets import load_sample_images

_COLOUR = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry", "retina", "cat")
_GREY = ("camera", "moon", "coins", "clock", "grass", "gravel", "brick")


def _arrays() -> list[np.ndarray]:
    arrays = list(load_sample_images().images)
    arrays += [getattr(skimage.data, name)() for name in _COLOUR]
    arrays += list(skimage.data.stereo_motorcycle()[:2])
    arrays += [np.repeat(getattr(skimage.data, name)()[..., None], 3, axis=2) for name in _GREY]
    return arrays


def photo_views(count: int, size: int = 224) -> torch.Tensor:
    """``count`` normalised views (mean = std = 0.5): per photo the centre crop, its mirror, then the 4 corners."""
    views = []
    for array in _arrays():
        image = torch.from_numpy(np.array(array[..., :3])).permute(2, 0, 1)
        image = TF.resize(image, round(size * 256 / 224), interpolation=TF.InterpolationMode.BICUBIC, antialias=True)
        top_left, top_right, bottom_left, bottom_right, centre = TF.five_crop(image, [size, size])
        views.append([centre, TF.horizontal_flip(centre), top_left, top_right, bottom_left, bottom_right])
    ordered = [per_photo[i] for i in range(6) for per_photo in views]  # all centres first, then mirrors, ...
    if count > len(ordered):
        raise ValueError(f"Only {len(ordered)} photo views are available, {count} were requested.")
    return _normalise(torch.stack(ordered[:count]))


def calibration_views(count: int, size: int = 224) -> torch.Tensor:
    """``count`` views of the same photos framed differently (zoomed out to the whole photo, or zoomed in 1.6x and
    cut at the four corners), for int8 activation calibration: none equals a view of :func:`photo_views`."""
    views = []
    for array in _arrays():
        image = torch.from_numpy(np.array(array[..., :3])).permute(2, 0, 1)
        whole = TF.resize(image, [size, size], interpolation=TF.InterpolationMode.BICUBIC, antialias=True)
        zoomed = TF.resize(image, round(size * 1.6), interpolation=TF.InterpolationMode.BICUBIC, antialias=True)
        views.append([whole, *TF.five_crop(zoomed, [size, size])[:4]])
    ordered = [per_photo[i] for i in range(5) for per_photo in views]
    if count > len(ordered):
        raise ValueError(f"Only {len(ordered)} calibration views are available, {count} were requested.")
    return _normalise(torch.stack(ordered[:count]))


def _normalise(batch: torch.Tensor) -> torch.Tensor:
    return (batch.float().div_(255.0) - 0.5) / 0.5
