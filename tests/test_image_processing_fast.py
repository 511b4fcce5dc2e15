"""Kernels of the fast path: centre-crop placement and the padded-RGB resize against independent references."""

from __future__ import annotations

import torch
import transformers
from torchvision import transforms as T
from transformers.image_utils import SizeDict

from hf_beit.image_processing_fast import center_crop


def test_center_crop_placement_matches_transformers_and_torchvision():
    for height, width, crop_height, crop_width in [
        (256, 383, 224, 224),
        (256, 385, 224, 224),
        (10, 9, 14, 13),
        (9, 30, 12, 7),
        (7, 7, 7, 7),
    ]:
        image = torch.arange(3 * height * width, dtype=torch.int32).reshape(3, height, width)
        assert torch.equal(
            center_crop(image, crop_height, crop_width, "round"), T.CenterCrop((crop_height, crop_width))(image)
        )
        reference = transformers.BeitImageProcessor().center_crop(image, SizeDict(height=crop_height, width=crop_width))
        assert torch.equal(center_crop(image, crop_height, crop_width, "floor"), reference)


def test_padded_rgb_resize_equals_packed_rgb_resize():
    from torchvision.transforms.v2 import functional as tvF

    from hf_beit.image_processing_fast import padded_rgb

    torch.manual_seed(0)
    rgbx = torch.randint(0, 256, (37, 53, 4), dtype=torch.uint8)
    view = rgbx.permute(2, 0, 1)[:3]  # what the processor builds from Pillow's RGBX memory
    padded = padded_rgb(view)
    assert padded.shape == (4, 37, 53) and padded.data_ptr() == rgbx.data_ptr()
    packed = rgbx[..., :3].contiguous().permute(2, 0, 1)
    assert padded_rgb(packed) is None and padded_rgb(packed.contiguous()) is None
    for interpolation in [tvF.InterpolationMode.BILINEAR, tvF.InterpolationMode.BICUBIC]:
        expected = tvF.resize(packed.contiguous(), [20, 31], interpolation=interpolation, antialias=True)
        assert torch.equal(tvF.resize(padded, [20, 31], interpolation=interpolation, antialias=True)[:3], expected)
