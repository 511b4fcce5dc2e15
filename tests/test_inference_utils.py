"""Shared tiny-model helpers for the inference tests, and tests of the small inference utilities."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import hf_beit
from hf_beit.atomic_io import atomic_output_dir, atomic_write_text
from hf_beit.inference._images import expand_image_paths, open_rgb
from hf_beit.inference.segment import default_crop_and_stride, keep_ratio_size, palette

LABELS = ["cat", "dog", "bird"]


def tiny_config(**overrides) -> hf_beit.BeitConfig:
    values = {
        "hidden_size": 32, "num_hidden_layers": 4, "num_attention_heads": 4, "intermediate_size": 37,
        "image_size": 32, "patch_size": 8, "use_relative_position_bias": True, "layer_norm_eps": 1e-6,
        "auxiliary_channels": 16, "pool_scales": [1, 2], "drop_path_rate": 0.0, **overrides,
    }
    values.setdefault("out_indices", list(range(values["num_hidden_layers"])))
    return hf_beit.BeitConfig(**values)


def _randomise(model: torch.nn.Module) -> torch.nn.Module:
    """Non-trivial weights everywhere (zero-initialised bias tables and heads would hide mistakes)."""
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "relative_position_bias_table" in name or name.endswith("bias") or "classifier" in name:
                parameter.normal_(0.0, 0.5)
    return model.eval()


def tiny_classifier(multi_label: bool = False, seed: int = 0) -> hf_beit.BeitForImageClassification:
    torch.manual_seed(seed)
    config = tiny_config(num_hidden_layers=2, num_labels=len(LABELS), id2label=dict(enumerate(LABELS)),
                         label2id={name: i for i, name in enumerate(LABELS)},
                         problem_type="multi_label_classification" if multi_label else None)
    return _randomise(hf_beit.BeitForImageClassification(config))


def tiny_segmenter(num_labels: int = 5, seed: int = 0, **overrides) -> hf_beit.BeitForSemanticSegmentation:
    """Random segmenter whose classes all occur: the classifier bias cancels each class's mean logit."""
    torch.manual_seed(seed)
    model = _randomise(hf_beit.BeitForSemanticSegmentation(tiny_config(num_labels=num_labels, **overrides)))
    with torch.no_grad():
        logits = model(pixel_values=torch.randn(2, 3, 64, 64), interpolate_pos_encoding=True).logits
        model.decode_head.classifier.bias -= logits.mean(dim=(0, 2, 3))
    return model


def tiny_processor(size: int = 32):
    return hf_beit.BeitImageProcessor(size={"height": size, "width": size}, do_center_crop=False)


def random_image(width: int = 40, height: int = 30, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def save_repo(model: torch.nn.Module, path: Path, processor=None) -> Path:
    model.save_pretrained(path)
    (processor or tiny_processor(model.config.image_size)).save_pretrained(path)
    return path


def write_images(folder: Path, count: int, size: tuple[int, int] = (40, 30), prefix: str = "img") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        paths.append(folder / f"{prefix}{i}.png")
        random_image(*size, seed=i).save(paths[-1])
    return paths


# ---------------------------------------------------------------------------------------------- utility tests


def test_expand_image_paths_files_folders_globs(tmp_path):
    images = write_images(tmp_path / "a", 3)
    nested = write_images(tmp_path / "a" / "sub", 1, prefix="deep")
    (tmp_path / "a" / "notes.txt").write_text("not an image")
    assert expand_image_paths([tmp_path / "a"]) == images
    assert expand_image_paths([tmp_path / "a"], recursive=True) == sorted(images + nested)
    assert expand_image_paths([str(tmp_path / "a" / "img[12].png")]) == images[1:]
    # duplicates dropped, order of inputs kept
    assert expand_image_paths([images[2], str(tmp_path / "a" / "*.png")]) == [images[2], images[0], images[1]]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        expand_image_paths([tmp_path / "missing.png"])
    with pytest.raises(FileNotFoundError, match="matched no image files"):
        expand_image_paths([str(tmp_path / "a" / "*.jpg")])


def test_open_rgb_rejects_non_images(tmp_path):
    bad = tmp_path / "fake.png"
    bad.write_bytes(b"definitely not a png")
    with pytest.raises(ValueError, match="Cannot read image"):
        open_rgb(bad)
    grey = tmp_path / "grey.png"
    Image.new("L", (5, 4), 7).save(grey)
    assert open_rgb(grey).mode == "RGB"
    rotated = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: the camera was turned 90 degrees
    Image.new("RGB", (40, 30)).save(rotated, exif=exif)
    assert open_rgb(rotated).size == (30, 40)  # shown upright, like transformers' load_image


def test_atomic_output_dir_all_or_nothing(tmp_path):
    target = tmp_path / "out"
    with pytest.raises(RuntimeError), atomic_output_dir(target) as tmp:
        (tmp / "half.png").write_bytes(b"x")
        raise RuntimeError("interrupted")
    assert not target.exists() and list(tmp_path.iterdir()) == []
    with atomic_output_dir(target) as tmp:
        (tmp / "a.txt").write_text("1")
    assert (target / "a.txt").read_text() == "1"
    with pytest.raises(FileExistsError, match="--overwrite"), atomic_output_dir(target):
        pass
    with atomic_output_dir(target, overwrite=True) as tmp:
        (tmp / "b.txt").write_text("2")
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temp or backup folders left
    atomic_write_text(tmp_path / "r.json", "[]")
    assert (tmp_path / "r.json").read_text() == "[]" and len(list(tmp_path.iterdir())) == 2


def test_keep_ratio_size_matches_mmcv_rule():
    # 683x512 (ADE-like) to fit (2560, 640): factor min(2560/683, 640/512) = 1.25 -> 854x640
    assert keep_ratio_size(683, 512, (2560, 640)) == (854, 640)
    # a very wide image is limited by the long side: 4000x500 -> factor 2560/4000 = 0.64 -> 2560x320
    assert keep_ratio_size(4000, 500, (2560, 640)) == (2560, 320)
    assert keep_ratio_size(500, 4000, (640, 2560)) == (320, 2560)


def test_default_crop_and_stride_are_mmseg_values():
    assert default_crop_and_stride(tiny_config(image_size=640)) == ((640, 640), (426, 426))
    assert default_crop_and_stride(tiny_config(image_size=512)) == ((512, 512), (341, 341))


def test_palette_colours_distinct():
    colours = palette(150)
    assert colours.shape == (150, 3) and colours.dtype == np.uint8
    assert len({tuple(c) for c in colours}) == 150
