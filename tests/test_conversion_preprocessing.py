"""A converted repo preprocesses as the original evaluated: unilm's ImageNet eval transform for classification, mmseg's
test-time resize for ADE20k. References: torchvision's transforms as unilm's ``build_transform`` composes them, and
mmcv's keep-ratio rule with OpenCV's bilinear resize, on real photographs of odd sizes."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data
import torch
import torchvision.transforms as T
from PIL import Image
from sklearn.datasets import load_sample_images
from test_conversion_reference import make_backbone, make_upernet_checkpoint

import hf_beit
from hf_beit.conversion import convert_checkpoint

cv2 = pytest.importorskip("cv2")

INCEPTION = [0.5, 0.5, 0.5]
IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def _photographs() -> list[Image.Image]:
    """Real photographs cropped to odd sizes (portrait, landscape, odd excess on both sides)."""
    china, flower = load_sample_images().images  # 427 x 640
    return [
        Image.fromarray(china[:401, :600]),
        Image.fromarray(flower[:333, :517]),
        Image.fromarray(skimage.data.coffee()[:385, :577]),
        Image.fromarray(skimage.data.astronaut()[:511, :297]),
    ]


def _convert(tmp_path, state, name: str) -> hf_beit.BeitImageProcessor:
    torch.save({"model": state}, tmp_path / f"{name}.pth")
    result = convert_checkpoint(tmp_path / f"{name}.pth", tmp_path / name, progress=False, log=lambda _: None)
    return hf_beit.BeitImageProcessor.from_pretrained(result.output)


@pytest.mark.parametrize("image_size", [96, 224, 384])
def test_converted_classifier_reproduces_unilm_eval_transform(tmp_path, image_size):
    torch.manual_seed(0)
    state = make_backbone(dim=16, depth=1, heads=2, window=image_size // 16, patch=16) | {
        "fc_norm.weight": torch.ones(16), "fc_norm.bias": torch.zeros(16),
        "head.weight": torch.zeros(3, 16), "head.bias": torch.zeros(3),
    }  # fmt: skip
    processor = _convert(tmp_path, state, "classifier")
    crop_pct = 224 / 256 if image_size < 384 else 1.0  # unilm datasets.build_transform
    unilm_eval = T.Compose([
        T.Resize(int(image_size / crop_pct), interpolation=T.InterpolationMode.BICUBIC),
        T.CenterCrop(image_size),
        T.ToTensor(),
        T.Normalize(INCEPTION, INCEPTION),
    ])  # fmt: skip
    for photo in _photographs():
        ours = processor(photo, return_tensors="pt").pixel_values[0]
        expected = unilm_eval(photo)
        assert ours.shape == expected.shape == (3, image_size, image_size)
        difference = (ours - expected).abs()
        if image_size < 384:  # shrinking (224, 96): within one 8-bit level (2/255 = 0.0078)
            assert difference.max().item() <= 1e-2, photo.size
        else:  # enlarging the short side to 384: torch's and Pillow's bicubic round apart by up to 2 levels, rarely
            assert difference.max().item() <= 2 / 127.5 + 1e-6 and (difference > 1e-2).float().mean() < 1e-3


def _mmseg_test_resize(image: np.ndarray, scale: tuple[int, int] = (2560, 640)) -> np.ndarray:
    """mmseg's ``Resize(img_scale=(2560, 640), keep_ratio=True)``: mmcv.imrescale's size rule, cv2 bilinear."""
    height, width = image.shape[:2]
    factor = min(max(scale) / max(height, width), min(scale) / min(height, width))
    size = (int(width * factor + 0.5), int(height * factor + 0.5))
    return cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)


def test_converted_ade20k_repo_reproduces_mmseg_test_resize(tmp_path):
    torch.manual_seed(0)
    state = make_upernet_checkpoint(num_classes=150, aux_channels=8, dim=16, depth=4, heads=2, window=40, patch=16)
    processor = _convert(tmp_path, state, "ade")
    assert processor.do_reduce_labels and processor.size == {"shortest_edge": 640, "longest_edge": 2560}
    china = load_sample_images().images[0]
    panorama = np.concatenate([china[:300]] * 3, axis=1)  # 300 x 1920: the long side caps the scale
    for image in [np.asarray(photo) for photo in _photographs()] + [china, panorama]:
        ours = processor(Image.fromarray(image), return_tensors="pt").pixel_values[0]
        expected = _mmseg_test_resize(image)
        assert ours.shape[1:] == expected.shape[:2], image.shape
        # back to 8-bit levels: OpenCV's fixed-point bilinear may differ from float bilinear by one level
        levels = ours.permute(1, 2, 0).numpy() * np.array(IMAGENET_STD) + np.array(IMAGENET_MEAN)
        difference = np.abs(levels * 255 - expected)
        assert difference.max() <= 1.01 and difference.mean() < 0.3, image.shape
