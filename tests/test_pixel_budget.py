"""hf_beit.pixel_budget: the processor's geometry predicted from the header, and the limits it enforces."""

from __future__ import annotations

import io

import pytest
from PIL import Image

import hf_beit
from hf_beit.image_loading import ImageTooLargeError, InvalidImageError, load_image
from hf_beit.pixel_budget import PixelBudget, processor_geometry


@pytest.mark.parametrize("preset, size", [("imagenet-eval", 224), ("ade20k", 640), ("hub", 384)])
@pytest.mark.parametrize("width, height", [(640, 480), (301, 999), (2000, 37)])
def test_geometry_matches_what_the_processor_outputs(preset, size, width, height):
    processor = hf_beit.BeitImageProcessor.from_preset(preset, image_size=size)
    image = Image.new("RGB", (width, height), (10, 200, 30))
    (_, output) = processor_geometry(processor)(height, width)
    assert tuple(processor(images=image, return_tensors="pt")["pixel_values"].shape[-2:]) == output


def test_thin_images_are_refused_for_their_resized_size_in_both_orientations():
    geometry = processor_geometry(hf_beit.BeitImageProcessor.from_preset("imagenet-eval", image_size=224))
    budget = PixelBudget()
    for width, height in [(1, 20000), (20000, 1)]:
        with pytest.raises(ImageTooLargeError, match="would resize it to"):
            budget.cost(width, height, "L", geometry)
    cost = budget.cost(4000, 3000, "RGB", geometry)
    assert cost.resized_pixels == 341 * 256 and cost.output_pixels == 224 * 224
    assert cost.output_bytes == 224 * 224 * 12 < cost.work_bytes


def test_the_size_check_runs_before_any_pixel_is_decoded():
    buffer = io.BytesIO()
    Image.new("L", (1, 20000)).save(buffer, format="PNG")
    seen = []
    check = PixelBudget(max_resized_pixels=1000).size_check(None, "thin", seen.append)
    with pytest.raises(ImageTooLargeError, match="thin is 1x20000 = 20000 pixels"):
        PixelBudget(max_pixels=1000).size_check(None, "thin")(1, 20000, "L")
    with pytest.raises(ImageTooLargeError, match="at most 1000 resized pixels"):
        load_image(buffer.getvalue(), check_size=check)
    assert seen == []  # refused before its cost was even reported


def test_sides_resized_to_zero_and_empty_images_are_invalid():
    mmcv = processor_geometry(hf_beit.BeitImageProcessor.from_preset("ade20k", image_size=640))
    with pytest.raises(InvalidImageError, match="to 0 pixels"):
        PixelBudget(max_resized_pixels=10**9).cost(1, 20000, "RGB", mmcv)
    with pytest.raises(ImageTooLargeError, match="at least one pixel"):
        PixelBudget().cost(0, 5)
