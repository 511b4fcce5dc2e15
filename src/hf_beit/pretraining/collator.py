"""Inputs of BEiT masked image modeling: two views of one random crop, block-wise masks and visual-token labels.

Following unilm's ``DataAugmentationForBEiT``: colour jitter (0.4, 0.4, 0.4) and a horizontal flip are applied to
the image, then ONE random-resized crop (scale 0.08-1, ratio 3/4-4/3) is resampled twice: bicubic at the model's
size (normalised with mean = std = 0.5 by default) and Lanczos at the tokenizer's size (values in [0, 1], then the
tokenizer's own ``preprocess``, e.g. ``map_pixels`` for DALL-E).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import get_worker_info
from torchvision.transforms import ColorJitter, InterpolationMode, RandomResizedCrop
from torchvision.transforms import functional as TF

from hf_beit.image_loading import as_rgb
from hf_beit.masking import MaskingGenerator
from hf_beit.tokenizers.base import VisualTokenizer

IGNORE_INDEX = -100
INCEPTION_MEAN = (0.5, 0.5, 0.5)
INCEPTION_STD = (0.5, 0.5, 0.5)

__all__ = ["IGNORE_INDEX", "DataCollatorForBeitPretraining", "TwoViewTransform"]


def _to_pil(image: Any) -> Image.Image:
    if isinstance(image, Image.Image):
        return as_rgb(image)
    if isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim in (2, 3):
        return Image.fromarray(image).convert("RGB")
    raise TypeError(
        f"Expected a PIL image or an (H, W[, C]) uint8 array, got {type(image).__name__}"
        f"{' of dtype ' + str(image.dtype) if isinstance(image, np.ndarray) else ''}."
    )


class TwoViewTransform:
    """One augmented crop, two resamplings: ``(model_view, tokenizer_view)`` tensors ``(3, S, S)`` and ``(3, s, s)``.

    The model view is normalised with ``image_mean``/``image_std``; the tokenizer view has values in [0, 1].
    Randomness comes from torch's global generator (seeded per DataLoader worker by torch).
    """

    def __init__(
        self,
        image_size: int = 224,
        tokenizer_image_size: int = 112,
        scale: tuple[float, float] = (0.08, 1.0),
        ratio: tuple[float, float] = (3 / 4, 4 / 3),
        hflip_prob: float = 0.5,
        color_jitter: float = 0.4,
        interpolation: InterpolationMode = InterpolationMode.BICUBIC,
        tokenizer_interpolation: InterpolationMode = InterpolationMode.LANCZOS,
        image_mean: Sequence[float] = INCEPTION_MEAN,
        image_std: Sequence[float] = INCEPTION_STD,
    ) -> None:
        if not 0 < scale[0] <= scale[1] <= 1:
            raise ValueError(f"scale must satisfy 0 < min <= max <= 1, got {scale}.")
        if not 0 <= hflip_prob <= 1:
            raise ValueError(f"hflip_prob must be in [0, 1], got {hflip_prob}.")
        self.image_size, self.tokenizer_image_size = image_size, tokenizer_image_size
        self.scale, self.ratio, self.hflip_prob = tuple(scale), tuple(ratio), hflip_prob
        self.jitter = ColorJitter(color_jitter, color_jitter, color_jitter) if color_jitter > 0 else None
        self.interpolation, self.tokenizer_interpolation = interpolation, tokenizer_interpolation
        self.image_mean, self.image_std = list(image_mean), list(image_std)

    def __call__(self, image: Any) -> tuple[torch.Tensor, torch.Tensor]:
        image = _to_pil(image)
        if self.jitter is not None:
            image = self.jitter(image)
        if self.hflip_prob > 0 and torch.rand(()) < self.hflip_prob:
            image = TF.hflip(image)
        top, left, height, width = RandomResizedCrop.get_params(image, list(self.scale), list(self.ratio))
        model_view = TF.resized_crop(image, top, left, height, width, [self.image_size] * 2, self.interpolation)
        tokenizer_view = TF.resized_crop(
            image, top, left, height, width, [self.tokenizer_image_size] * 2, self.tokenizer_interpolation
        )
        model_tensor = TF.normalize(TF.to_tensor(model_view), self.image_mean, self.image_std)
        return model_tensor, TF.to_tensor(tokenizer_view)


class DataCollatorForBeitPretraining:
    """Turn a list of images (or dicts with an ``image_key`` entry) into a MIM batch.

    Returns ``pixel_values`` ``(B, 3, S, S)``, ``bool_masked_pos`` ``(B, N)`` bool and ``labels`` ``(B, N)`` long
    holding the tokenizer's ids at masked patches and ``-100`` elsewhere (N = patches of the model view). hf_beit's
    ``BeitForMaskedImageModeling`` accepts this form directly; stock transformers wants the 1-D masked-only form
    ``labels[bool_masked_pos]``.
    The tokenizer runs here, on CPU, under ``torch.no_grad`` (in every DataLoader worker when ``num_workers > 0``).
    """

    def __init__(
        self,
        tokenizer: VisualTokenizer,
        mask_generator: MaskingGenerator,
        transform: TwoViewTransform,
        image_key: str = "image",
    ) -> None:
        token_side = transform.tokenizer_image_size // tokenizer.downsample
        if transform.tokenizer_image_size % tokenizer.downsample or (token_side, token_side) != (
            mask_generator.height,
            mask_generator.width,
        ):
            raise ValueError(
                f"The tokenizer view ({transform.tokenizer_image_size} px, {tokenizer.downsample}x downsampling) "
                f"gives a {token_side}x{token_side} token grid but the masks are "
                f"{mask_generator.height}x{mask_generator.width}: set the tokenizer view to "
                f"{mask_generator.height * tokenizer.downsample} px or change the model's patch grid."
            )
        self.tokenizer = tokenizer.eval()
        self.mask_generator = mask_generator
        self.transform = transform
        self.image_key = image_key
        self._worker_seed: int | None = None

    def _reseed_in_worker(self) -> None:
        # Forked DataLoader workers start from copies of one numpy generator: give each its own stream,
        # derived from the per-worker seed torch draws from the (Trainer-seeded) main process.
        info = get_worker_info()
        if info is not None and info.seed != self._worker_seed:
            self._worker_seed = info.seed
            self.mask_generator.rng = np.random.default_rng(info.seed)

    def __call__(self, examples: Sequence[Any]) -> dict[str, torch.Tensor]:
        if len(examples) == 0:
            raise ValueError("Cannot collate an empty list of examples.")
        self._reseed_in_worker()
        images = [e[self.image_key] if isinstance(e, dict) else e for e in examples]
        views = [self.transform(image) for image in images]
        pixel_values = torch.stack([model_view for model_view, _ in views])
        tokenizer_views = torch.stack([tokenizer_view for _, tokenizer_view in views])
        bool_masked_pos = self.mask_generator.batch(len(examples))
        with torch.no_grad():
            tokens = self.tokenizer.get_codebook_indices(self.tokenizer.preprocess(tokenizer_views))
        labels = tokens.masked_fill(~bool_masked_pos, IGNORE_INDEX)
        return {"pixel_values": pixel_values, "bool_masked_pos": bool_masked_pos, "labels": labels}
