"""Kernels of the fast path (crop placement, padded-RGB resize, resize geometry, interpolation, RGB conversion)
against independent references: torchvision and transformers' own processor."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import transformers
from packaging.version import Version
from torchvision import transforms as T
from torchvision.transforms.v2 import functional as tvF
from transformers.image_utils import SizeDict

from hf_beit.image_kernels import center_crop


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
    from hf_beit.image_kernels import padded_rgb

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


SIZES = [
    {"height": 5, "width": 9},
    {"shortest_edge": 13},
    {"shortest_edge": 13, "longest_edge": 20},
    {"shortest_edge": 13, "longest_edge": 13},
    {"max_height": 17, "max_width": 9},
]


def test_output_size_matches_the_shapes_of_stock_outputs():
    """Resize geometry of every size layout against the shapes transformers' processor produces."""
    from hf_beit.resize_geometry import output_size

    dims = [1, 2, 3, 4, 7, 12, 13, 14, 19, 20, 26, 39, 40]
    large = [(427, 640), (640, 427), (100, 2000), (2000, 100), (50, 3000), (641, 2561), (7, 4097), (2560, 640)]
    shapes = [(height, width) for height in dims for width in dims] + large
    cases = [(shape, size) for shape in shapes for size in SIZES]
    cases += [(shape, {"shortest_edge": 640, "longest_edge": 2560}) for shape in large]  # the ade20k-640 preset
    for (height, width), size in cases:
        image = torch.zeros((3, height, width), dtype=torch.uint8)
        reference = transformers.BeitImageProcessor(size=size, do_normalize=False, do_rescale=False)
        ours = output_size(height, width, size)
        if 0 in ours:  # e.g. 1x12 into max 17x9: both sides round down to an empty image, which torch refuses
            with pytest.raises(RuntimeError, match="greater than 0"):
                reference(image, input_data_format="channels_first")
            continue
        expected = reference(image, input_data_format="channels_first", return_tensors="pt").pixel_values.shape[-2:]
        assert ours == tuple(expected), (height, width, size)
    with pytest.raises(ValueError, match="size must have the keys"):
        output_size(10, 10, {"longest_edge": 5})


def test_interpolation_modes_match_stock():
    from hf_beit.image_kernels import interpolation_mode

    image = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (3, 30, 41), dtype=np.uint8))
    for resample in [0, 1, 2, 3]:
        reference = transformers.BeitImageProcessor(size=17, resample=resample, do_normalize=False, do_rescale=False)
        expected = reference(image, return_tensors="pt").pixel_values[0]
        mode = interpolation_mode(resample)
        assert interpolation_mode(mode) is mode
        assert torch.equal(tvF.resize(image, [17, 17], interpolation=mode, antialias=True), expected), resample
    for resample in [4, 5, "bicubic"]:
        with pytest.raises(ValueError, match="resample must be"):
            interpolation_mode(resample)


@pytest.mark.skipif(
    Version(transformers.__version__) < Version("5.21"), reason="stock converts arrays to RGB since 5.21 only"
)
def test_rgb_conversion_of_arrays_matches_stock():
    """Greyscale repeated, RGBA composited onto white (uint8 and float in [0, 1]), RGB unchanged."""
    from hf_beit.image_kernels import to_rgb

    rng = np.random.default_rng(0)
    for channels in [1, 3, 4]:
        array = rng.integers(0, 256, (30, 41, channels), dtype=np.uint8)
        for data in [array, array.astype(np.float32) / 255]:
            expected = transformers.BeitImageProcessor(do_resize=False, do_rescale=False, do_normalize=False)(
                data, do_convert_rgb=True, return_tensors="pt"
            )
            ours = to_rgb(torch.from_numpy(data).permute(2, 0, 1))
            assert torch.equal(ours, expected.pixel_values[0]), (channels, data.dtype)
    with pytest.raises(ValueError, match=r"must hold values in \[0, 1\]"):
        to_rgb(torch.full((4, 2, 2), 3.0))
