"""Sliding-window segmentation (mmseg slide_inference semantics) and `hf-beit segment`."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from test_inference_utils import random_image, save_repo, tiny_processor, tiny_segmenter, write_images

from hf_beit.cli import main
from hf_beit.inference.segment import mask_image, palette, segment_image
from hf_beit.inference.sliding_window import sliding_window_logits, window_starts


@pytest.fixture(scope="module")
def segmenter():
    return tiny_segmenter(num_labels=5)


def _upsampled_logits(model, pixel_values):
    with torch.no_grad():
        logits = model(pixel_values=pixel_values, interpolate_pos_encoding=True).logits
    return F.interpolate(logits, size=pixel_values.shape[-2:], mode="bilinear", align_corners=False)


def test_window_starts_by_hand():
    # 80 px, crop 32, stride 21: ceil((80-32)/21) + 1 = 4 windows, the last one clamped to 80-32 = 48
    assert window_starts(80, 32, 21) == [0, 21, 42, 48]
    assert window_starts(53, 32, 21) == [0, 21]  # 21 + 32 = 53 reaches the border exactly
    assert window_starts(32, 32, 21) == [0]
    assert window_starts(20, 32, 21) == [0]  # smaller than the crop: one window of the image's own size
    # ADE20k: 640x854 after keep-ratio resize, crop 640 stride 426 -> 1 x 2 windows
    assert window_starts(640, 640, 426) == [0] and window_starts(854, 640, 426) == [0, 214]


def test_single_window_equals_whole_image(segmenter):
    torch.manual_seed(1)
    for height, width, crop in [(32, 32, 32), (32, 48, 64), (24, 40, 40)]:
        pixel_values = torch.randn(2, 3, height, width)
        slid = sliding_window_logits(segmenter, pixel_values, crop_size=crop, stride=crop // 2)
        torch.testing.assert_close(slid, _upsampled_logits(segmenter, pixel_values), rtol=0, atol=1e-6)


def _naive_slide(model, pixel_values, crop, stride):
    """Independent reference: explicit window list, one forward per window, per-window padding and a count map."""
    _, _, height, width = pixel_values.shape
    ys = list(range(0, height - crop, stride)) + [height - crop]
    xs = list(range(0, width - crop, stride)) + [width - crop]
    total, count = 0, torch.zeros(height, width)
    for y in ys:
        for x in xs:
            logits = _upsampled_logits(model, pixel_values[:, :, y:y + crop, x:x + crop])
            total = total + F.pad(logits, (x, width - x - crop, y, height - y - crop))
            count[y:y + crop, x:x + crop] += 1
    return total / count, count


def test_sliding_window_matches_naive_loop_on_large_image(segmenter):
    torch.manual_seed(2)
    pixel_values = torch.randn(1, 3, 56, 80)
    expected, count = _naive_slide(segmenter, pixel_values, crop=32, stride=21)
    # rows 24..31 lie in 3 row windows (0, 21, 24) and columns 48..52 in 3 column windows (21, 42, 48)
    assert count.min() == 1 and count.max() == 9
    for window_batch_size in (1, 3, 16):
        slid = sliding_window_logits(segmenter, pixel_values, 32, 21, window_batch_size=window_batch_size)
        torch.testing.assert_close(slid, expected, rtol=1e-5, atol=1e-5)
    # a real difference from the single-window answer, so the test cannot pass by accident
    assert (slid - _upsampled_logits(segmenter, pixel_values)).abs().max() > 1e-2


class _IdentitySegmenter(torch.nn.Module):
    """'Logits' = the input itself: averaging correctly placed windows must give the input back exactly."""

    def forward(self, pixel_values, interpolate_pos_encoding=False):
        return SimpleNamespace(logits=pixel_values * 1.0)


def test_sliding_window_places_and_averages_windows_exactly():
    pixel_values = torch.randn(2, 3, 45, 70)
    for crop, stride in [(16, 5), (20, 20), ((16, 30), (7, 11))]:
        out = sliding_window_logits(_IdentitySegmenter(), pixel_values, crop, stride)
        torch.testing.assert_close(out, pixel_values, rtol=0, atol=1e-6)


def test_sliding_window_rejects_bad_arguments(segmenter):
    with pytest.raises(ValueError, match="exceeds crop_size"):
        sliding_window_logits(segmenter, torch.randn(1, 3, 32, 32), 16, 20)
    with pytest.raises(ValueError, match="positive int"):
        sliding_window_logits(segmenter, torch.randn(1, 3, 32, 32), 0, 0)
    with pytest.raises(ValueError, match="batch, channels"):
        sliding_window_logits(segmenter, torch.randn(3, 32, 32), 16, 8)


def test_segment_image_resizes_slides_and_returns_original_size(segmenter):
    processor = tiny_processor()
    image = random_image(50, 30, seed=3)
    # keep-ratio resize to fit (128, 32): factor min(128/50, 32/30) = 32/30 -> 53x32, then 32-px windows, stride 21
    resized = image.resize((53, 32), Image.Resampling.BILINEAR)
    pixel_values = processor(images=resized, do_resize=False, return_tensors="pt")["pixel_values"]
    expected, _ = _naive_slide(segmenter, pixel_values, crop=32, stride=21)
    expected = F.interpolate(expected, size=(30, 50), mode="bilinear", align_corners=False)[0].argmax(0)
    class_ids = segment_image(segmenter, processor, image)
    assert class_ids.shape == (30, 50)
    assert torch.equal(class_ids, expected)
    assert len(class_ids.unique()) > 1


def test_segment_cli_writes_masks_and_overlays(segmenter, tmp_path):
    repo = save_repo(segmenter, tmp_path / "model")
    images = write_images(tmp_path / "images", 2, size=(45, 35))
    out = tmp_path / "masks"
    assert main(["segment", str(repo), str(tmp_path / "images"), "--output", str(out), "--crop", "32",
                 "--stride", "16", "--no-resize", "--quiet"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["img0_mask.png", "img0_overlay.png", "img1_mask.png",
                                                     "img1_overlay.png"]
    expected = segment_image(segmenter, tiny_processor(), Image.open(images[0]), crop_size=32, stride=16,
                             resize_scale=None)
    mask = Image.open(out / "img0_mask.png")
    assert mask.size == (45, 35) and mask.mode == "L"
    assert np.array_equal(np.asarray(mask), expected.numpy())
    overlay = np.asarray(Image.open(out / "img0_overlay.png")).astype(int)[:35, :45]  # right of it: the legend
    blend = (np.asarray(Image.open(images[0])).astype(int) + palette(5)[expected.numpy()]) / 2
    assert np.abs(overlay - blend).max() <= 1
    # existing output is protected; nothing half-written is left beside it
    assert main(["segment", str(repo), str(images[0]), "--output", str(out), "--quiet"]) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images", "masks", "model"]


def test_mask_image_uses_16_bit_for_many_classes():
    ids = np.array([[0, 299], [150, 7]])
    assert mask_image(ids, 300).mode == "I;16"
    assert np.array_equal(np.asarray(mask_image(ids, 300)), ids)
