"""Multi-scale + flip test-time augmentation equals a reference loop over mmseg's aug_test steps.

The reference below re-derives each step from mmseg's description (``MultiScaleFlipAug`` scales
``int(side * ratio)``, mmcv's keep-ratio rescale, PIL bilinear resize, normalisation, horizontal flip, sliding-window
logits resized bilinearly to the original size, softmax, flip back, mean over views) without the module's helpers.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import randomize_, tiny_config
from PIL import Image

import hf_beit
from hf_beit.cli import main
from hf_beit.inference.segment import segment_image
from hf_beit.inference.sliding_window import sliding_window_logits
from hf_beit.inference.tta import MMSEG_RATIOS, tta_class_ids, tta_probabilities

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@pytest.fixture(scope="module")
def model():
    config = tiny_config(num_labels=5, out_indices=[0, 1, 2, 3], use_relative_position_bias=True, image_size=32)
    return randomize_(hf_beit.BeitForSemanticSegmentation(config), seed=4).eval()


@pytest.fixture(scope="module")
def processor():
    return hf_beit.BeitImageProcessor(do_resize=False, do_center_crop=False, image_mean=list(MEAN), image_std=list(STD))


def _image(width=45, height=37, seed=0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def reference_probabilities(model, image, ratios, flip, crop, stride, base_scale):
    views = []
    for ratio in ratios:
        long_side, short_side = int(base_scale[0] * ratio), int(base_scale[1] * ratio)
        factor = min(max(long_side, short_side) / max(image.size), min(long_side, short_side) / min(image.size))
        size = (int(image.width * factor + 0.5), int(image.height * factor + 0.5))
        pixels = torch.from_numpy(np.asarray(image.resize(size, Image.Resampling.BILINEAR), dtype=np.float32) / 255)
        pixels = ((pixels - torch.tensor(MEAN)) / torch.tensor(STD)).permute(2, 0, 1)[None]
        for flipped in (False, True) if flip else (False,):
            inputs = torch.flip(pixels, dims=[3]) if flipped else pixels
            with torch.no_grad():
                logits = sliding_window_logits(model, inputs, crop, stride, window_batch_size=3)
            logits = F.interpolate(logits, size=(image.height, image.width), mode="bilinear", align_corners=False)
            probs = torch.softmax(logits, dim=1)
            views.append(torch.flip(probs, dims=[3]) if flipped else probs)
    return torch.stack(views).mean(0)[0]


@pytest.mark.parametrize(("ratios", "flip"), [(MMSEG_RATIOS, True), ((0.75, 1.5), False)])
def test_equals_reference_loop(model, processor, ratios, flip):
    image = _image()
    actual = tta_probabilities(model, processor, image, ratios, flip=flip, crop_size=32, stride=21)
    expected = reference_probabilities(model, image, ratios, flip, (32, 32), (21, 21), base_scale=(128, 32))
    assert actual.shape == (5, 37, 45) and (actual - expected).abs().max() <= 1e-5
    assert torch.allclose(actual.sum(0), torch.ones(37, 45), atol=1e-5)


def test_one_scale_without_flip_is_the_single_scale_prediction(model, processor):
    image = _image(seed=1)
    single = segment_image(model, processor, image, crop_size=32, stride=21)
    assert torch.equal(tta_class_ids(model, processor, image, (1.0,), flip=False, crop_size=32, stride=21), single)
    assert torch.equal(segment_image(model, processor, image, crop_size=32, stride=21, tta_scales=(1.0,)),
                       tta_class_ids(model, processor, image, (1.0,), crop_size=32, stride=21))


def test_flip_averaging_makes_the_prediction_mirror_symmetric(model, processor):
    """With one window per view, averaging over flips gives a mirrored image exactly the mirrored probabilities."""
    image = _image(width=30, height=28, seed=2)
    kwargs = {"crop_size": 64, "stride": 64, "resize_scale": None}
    probs = tta_probabilities(model, processor, image, (0.8, 1.0), **kwargs)
    mirrored = tta_probabilities(
        model, processor, image.transpose(Image.Transpose.FLIP_LEFT_RIGHT), (0.8, 1.0), **kwargs
    )
    assert (mirrored - probs.flip(-1)).abs().max() <= 1e-5
    without_flip = tta_probabilities(model, processor, image, (0.8, 1.0), flip=False, **kwargs)
    assert (without_flip - probs).abs().max() > 1e-3  # the flipped views do change the result


def test_segment_command_tta_flag(model, processor, tmp_path):
    repo = tmp_path / "model"
    model.save_pretrained(repo)
    processor.save_pretrained(repo)
    _image().save(tmp_path / "scene.png")
    common = ["segment", str(repo), str(tmp_path / "scene.png"), "--crop", "32", "--stride", "21", "--quiet"]
    assert main([*common, "--output", str(tmp_path / "tta"), "--tta"]) == 0
    assert main([*common, "--output", str(tmp_path / "two"), "--tta", "0.75", "1.5"]) == 0
    mask = np.asarray(Image.open(tmp_path / "tta" / "scene_mask.png"))
    expected = tta_class_ids(hf_beit.BeitForSemanticSegmentation.from_pretrained(repo).eval(), processor, _image(),
                             crop_size=32, stride=21)
    assert mask.shape == (37, 45) and np.array_equal(mask, expected.numpy())
    two = np.asarray(Image.open(tmp_path / "two" / "scene_mask.png"))
    assert np.array_equal(two, tta_class_ids(model, processor, _image(), (0.75, 1.5), crop_size=32, stride=21).numpy())
