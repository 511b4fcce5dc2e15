"""What hf_beit.BeitImageProcessor takes from transformers, pinned down so that a new version changing it fails here.

The processor runs its own pipeline. From transformers it uses only: the base class (for ``isinstance``), its
constructor storing every setting as an attribute, ``valid_kwargs``, ``from_dict`` / ``to_dict`` /
``save_pretrained`` / ``from_pretrained``, ``BatchFeature`` and ``post_process_semantic_segmentation`` (tested in
test_image_processing.py). Nothing of the processing backends (``_preprocess``, ``process_image``, ``resize``, ...).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import transformers
from PIL import Image

from hf_beit.image_processing_beit import _NO_EFFECT, CALL_ARGUMENTS, SETTINGS, BeitImageProcessor, _Settings

STOCK_KEYS = set(transformers.BeitImageProcessor.valid_kwargs.__annotations__)

# One non-default value per setting, as a user or a preprocessor_config.json would give it.
NON_DEFAULTS = {
    "do_convert_rgb": False,
    "do_resize": False,
    "size": {"shortest_edge": 100, "longest_edge": 150},
    "default_to_square": False,
    "resample": 2,
    "do_center_crop": True,
    "crop_size": {"height": 50, "width": 60},
    "do_rescale": False,
    "rescale_factor": 0.5,
    "do_normalize": False,
    "image_mean": [0.1, 0.2, 0.3],
    "image_std": [0.4, 0.5, 0.6],
    "do_reduce_labels": True,
    "crop_rounding": "round",
    "resize_mode": "mmcv",
}
HF_BEIT_KEYS = {"crop_rounding", "resize_mode"}  # our own settings (stock ignores them in a saved config)


def _backend_classes() -> list[type]:
    """transformers' image-processor classes above ours: the stock BEiT processor and its processing backends."""
    return [
        cls
        for cls in transformers.BeitImageProcessor.__mro__
        if issubclass(cls, transformers.image_processing_utils.BaseImageProcessor)
    ]


def _inputs(tmp_path) -> list[tuple[object, object]]:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    rgba = Image.fromarray(np.dstack([rgb, rng.integers(0, 256, (37, 53), dtype=np.uint8)]))
    path = tmp_path / "photo.png"
    Image.fromarray(rgb).save(path)
    labels = rng.integers(0, 5, (37, 53), dtype=np.uint8)
    return [
        (Image.fromarray(rgb), labels),
        ([Image.fromarray(rgb).convert("L"), rgba], [labels, Image.fromarray(labels)]),
        (rgb, torch.from_numpy(labels)),
        (torch.from_numpy(rgb).permute(2, 0, 1), None),
        (np.stack([rgb, rgb[::-1]]), np.stack([labels, labels[::-1]])),
        (rgb[:, :, 0], None),
        (str(path), labels),
    ]


def _run_all(processors: list[BeitImageProcessor], tmp_path) -> list[dict]:
    return [
        dict(processor(images, segmentation_maps=maps, return_tensors=return_tensors))
        for processor in processors
        for images, maps in _inputs(tmp_path)
        for return_tensors in [None, "pt"]
    ]


def _equal(a: object, b: object) -> bool:
    if isinstance(a, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    return torch.equal(a, b)


def test_pipeline_calls_no_method_of_the_transformers_processing_backends(monkeypatch, tmp_path):
    processors = [
        BeitImageProcessor(),
        BeitImageProcessor.from_preset("imagenet-eval-224"),
        BeitImageProcessor.from_preset("ade20k-640", size={"shortest_edge": 64, "longest_edge": 100}),
        BeitImageProcessor(size=40, do_center_crop=True, crop_size=32, resample=0, do_normalize=False),
    ]
    expected = _run_all(processors, tmp_path)

    def forbidden(name: str):
        def fail(*args, **kwargs):
            raise AssertionError(f"hf_beit's pipeline called transformers' {name}")

        return fail

    patched = []
    for cls in _backend_classes():
        for name, value in vars(cls).items():
            if (name.startswith("__") and name != "__call__") or not (callable(value) or hasattr(value, "__func__")):
                continue
            monkeypatch.setattr(cls, name, forbidden(f"{cls.__name__}.{name}"))
            patched.append(name)
    # the backend hooks that hf_beit used to override (and that changed signature within transformers 5.x)
    assert {"_preprocess", "_preprocess_image_like_inputs", "process_image", "resize", "convert_to_rgb"} <= set(patched)
    actual = _run_all(processors, tmp_path)
    for ours, reference in zip(actual, expected):
        assert ours.keys() == reference.keys()
        assert all(_equal(ours[key], reference[key]) for key in ours)


def test_every_transformers_image_kwarg_is_handled():
    """A key transformers adds to (or renames in) BEiT's image kwargs must be decided on here."""
    handled = set(SETTINGS) | set(CALL_ARGUMENTS) | _NO_EFFECT
    assert handled >= STOCK_KEYS, f"new transformers image kwargs: {sorted(STOCK_KEYS - handled)}"
    assert set(SETTINGS) - HF_BEIT_KEYS <= STOCK_KEYS, "a setting we save is no longer a transformers key"
    assert set(BeitImageProcessor.valid_kwargs.__annotations__) == STOCK_KEYS | HF_BEIT_KEYS


@pytest.mark.parametrize("key", SETTINGS)
def test_constructor_config_and_call_give_the_same_settings(key, tmp_path):
    """The stock constructor stores each setting so that our pipeline reads it back, through save/load too."""
    call = {key: NON_DEFAULTS[key]}
    if key == "default_to_square":  # it only decides what an int size means
        call["size"] = 77
    from_call = _Settings.resolve(BeitImageProcessor(), dict(call))
    built = BeitImageProcessor(**call)
    assert _Settings.resolve(built, {}) == from_call
    assert from_call != _Settings.resolve(BeitImageProcessor(**{k: v for k, v in call.items() if k != key}), {})
    built.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "preprocessor_config.json").read_text())
    assert config["image_processor_type"] == "BeitImageProcessor"
    assert _Settings.resolve(BeitImageProcessor.from_pretrained(tmp_path), {}) == from_call
    stock = transformers.BeitImageProcessor.from_pretrained(tmp_path)  # reads the same file with the same meaning
    assert _Settings.resolve(stock, {"crop_rounding": from_call.crop_rounding}) == from_call


def test_is_a_transformers_beit_image_processor_and_auto_loads_stock(tmp_path):
    processor = BeitImageProcessor.from_preset("hub-384")
    assert isinstance(processor, transformers.BeitImageProcessor)
    processor.save_pretrained(tmp_path)
    loaded = transformers.AutoImageProcessor.from_pretrained(tmp_path)
    assert type(loaded) is transformers.BeitImageProcessor and loaded.size == {"height": 384, "width": 384}


def test_keyword_arguments_outside_the_pipeline():
    image = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    processor = BeitImageProcessor(size=16)
    plain = processor(image, return_tensors="pt").pixel_values
    with pytest.raises(TypeError, match="unexpected keyword argument"):
        processor(image, sizes=32)
    with pytest.raises(ValueError, match="channels-first"):
        processor(image, data_format="channels_last")
    for harmless in [{"disable_grouping": True}, {"do_pad": True, "pad_size": 64}, {"data_format": "channels_first"}]:
        assert torch.equal(processor(image, return_tensors="pt", **harmless).pixel_values, plain), harmless
    as_numpy = processor(image, return_tensors="np").pixel_values
    assert isinstance(as_numpy, np.ndarray) and np.array_equal(as_numpy, plain.numpy())
    channels_first = processor(np.ascontiguousarray(image.transpose(2, 0, 1)), input_data_format="channels_first")
    assert torch.equal(channels_first.pixel_values[0], plain[0])
    processor.crop_size = None
    with pytest.raises(ValueError, match="do_center_crop=True needs crop_size"):
        processor(image, do_center_crop=True)
    with pytest.raises(ValueError, match="does not download"):
        processor("https://example.com/cat.jpg")
