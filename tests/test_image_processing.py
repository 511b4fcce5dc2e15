"""hf_beit.BeitImageProcessor against transformers' BeitImageProcessor, hand-built pipelines and hand-derived labels."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import skimage.data
import torch
import transformers
from packaging.version import Version
from PIL import Image
from sklearn.datasets import load_sample_images
from torchvision import transforms as T
from transformers.modeling_outputs import SemanticSegmenterOutput

from hf_beit.image_processing_beit import PRESETS, BeitImageProcessor

ATOL = 1e-4  # observed differences are ~1e-7 (float32 rounding of the fused rescale/normalise)
# transformers 5.21 made do_convert_rgb composite transparency onto white and convert (H, W, 1) / RGBA arrays; older
# versions drop the alpha channel and leave arrays alone. There the stock reference gets the input converted by hand.
STOCK_CONVERTS_LIKE_US = Version(transformers.__version__) >= Version("5.21")


@pytest.fixture(scope="module")
def photos() -> list[Image.Image]:
    """Real photographs of different sizes bundled with scikit-learn and scikit-image."""
    arrays = list(load_sample_images().images)  # china.jpg, flower.jpg: 427x640
    arrays += [skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea(), skimage.data.rocket()]
    return [Image.fromarray(array) for array in arrays]


def stock(**kwargs) -> transformers.BeitImageProcessor:
    return transformers.BeitImageProcessor(**kwargs)


def max_diff(ours: torch.Tensor, reference: torch.Tensor) -> float:
    assert ours.shape == reference.shape
    return (ours - reference).abs().max().item()


SETTINGS = {
    "class-defaults": {},
    "hub-224": {"size": 224, "resample": 2, "do_center_crop": False},
    "short-side-256-crop-224": {
        "size": {"shortest_edge": 256},
        "resample": 3,
        "do_center_crop": True,
        "crop_size": 224,
    },
    "squash-384-imagenet-stats": {"size": 384, "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]},
    "rescale-only": {"do_normalize": False, "size": 96, "resample": 0},
    "short-and-long-edge": {"size": {"shortest_edge": 200, "longest_edge": 260}, "resample": 2},
}


@pytest.mark.parametrize("name", list(SETTINGS))
def test_matches_stock_on_photographs(photos, name):
    kwargs = SETTINGS[name]
    reference = [stock(**kwargs)(photo, return_tensors="pt").pixel_values[0] for photo in photos]
    same_size = all(r.shape == reference[0].shape for r in reference)
    ours = BeitImageProcessor(**kwargs)(photos, return_tensors="pt" if same_size else None).pixel_values
    if same_size:
        assert isinstance(ours, torch.Tensor) and ours.dtype == torch.float32 and ours.is_contiguous()
    for index, ref in enumerate(reference):
        assert max_diff(ours[index], ref) < ATOL


def test_numpy_and_torch_inputs_match_stock(photos):
    photo = photos[2]
    hwc = np.array(photo)
    inputs = {
        "numpy-hwc": hwc,
        "torch-chw": torch.from_numpy(hwc).permute(2, 0, 1).contiguous(),
        "numpy-float-0-255": hwc.astype(np.float32),
        "numpy-grey-hw1": np.array(photo.convert("L"))[:, :, None],
        "numpy-rgba": np.dstack([hwc, np.linspace(0, 255, hwc.shape[1], dtype=np.uint8)[None].repeat(512, 0)]),
        "batched-numpy": np.stack([hwc, hwc[::-1]]),
    }
    ours_processor, reference_processor = BeitImageProcessor(), stock(do_convert_rgb=True)
    grey = inputs["numpy-grey-hw1"]
    if not STOCK_CONVERTS_LIKE_US:
        inputs.pop("numpy-rgba")  # no exact hand-made reference for stock's float compositing of arrays
    for name, image in inputs.items():
        ours = ours_processor(image, return_tensors="pt").pixel_values
        stock_input = image if STOCK_CONVERTS_LIKE_US or image is not grey else np.repeat(grey, 3, axis=2)
        reference = reference_processor(stock_input, return_tensors="pt").pixel_values
        assert max_diff(ours, reference) < ATOL, name
    # stock cannot take 2D greyscale arrays at all; ours treats them as (H, W, 1)
    expected = reference_processor(grey if STOCK_CONVERTS_LIKE_US else np.repeat(grey, 3, axis=2), return_tensors="pt")
    expected = expected.pixel_values
    assert max_diff(ours_processor(grey[:, :, 0], return_tensors="pt").pixel_values, expected) < ATOL
    assert max_diff(ours_processor([grey[:, :, 0]] * 2, return_tensors="pt").pixel_values[1:], expected) < ATOL


def _odd_modes(photo: Image.Image) -> dict[str, Image.Image]:
    rgba = photo.copy()
    rgba.putalpha(Image.linear_gradient("L").resize(photo.size))
    palette_with_transparency = photo.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    palette_with_transparency.info["transparency"] = 3
    return {
        "L": photo.convert("L"),
        "LA": rgba.convert("LA"),
        "P": photo.convert("P", palette=Image.Palette.ADAPTIVE, colors=64),
        "P+transparency": palette_with_transparency,
        "RGBA": rgba,
        "CMYK": photo.convert("CMYK"),
        "1": photo.convert("1"),
        "YCbCr": photo.convert("YCbCr"),
        "I (8-bit range)": photo.convert("L").convert("I"),
    }


def _composited_on_white(image: Image.Image) -> Image.Image:
    """Transparency composited onto white with PIL, what stock's do_convert_rgb does since transformers 5.21."""
    if "A" not in image.getbands() and image.info.get("transparency") is None:
        return image
    white = Image.new("RGBA", image.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, image.convert("RGBA")).convert("RGB")


def test_odd_pil_modes_match_stock_with_rgb_conversion(photos):
    # Stock needs do_convert_rgb=True for these modes (its default None fails on L/RGBA/P/CMYK); ours defaults to it.
    with pytest.raises((RuntimeError, ValueError)):
        stock()(photos[4].convert("L"), return_tensors="pt")
    ours_processor, reference_processor = BeitImageProcessor(), stock(do_convert_rgb=True)
    for mode, image in _odd_modes(photos[4]).items():
        ours = ours_processor(image, return_tensors="pt").pixel_values
        stock_input = image if STOCK_CONVERTS_LIKE_US else _composited_on_white(image)
        reference = reference_processor(stock_input, return_tensors="pt").pixel_values
        if STOCK_CONVERTS_LIKE_US:  # the hand-made conversion used for older versions is what stock does now
            by_hand = reference_processor(_composited_on_white(image), return_tensors="pt").pixel_values
            assert max_diff(by_hand, reference) < ATOL, mode
        assert ours.shape == (1, 3, 224, 224), mode
        assert max_diff(ours, reference) < ATOL, mode


def test_large_image_without_zero_copy_view_matches_stock(photos):
    large = photos[3].resize((2600, 2000))  # several Pillow memory blocks: the copying path is used
    for kwargs in [SETTINGS["hub-224"], SETTINGS["short-side-256-crop-224"]]:
        expected = stock(**kwargs)(large, return_tensors="pt").pixel_values
        assert max_diff(BeitImageProcessor(**kwargs)(large, return_tensors="pt").pixel_values, expected) < ATOL


def test_tiny_and_very_wide_images_match_stock():
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for h, w in [(1, 1), (3, 5), (20, 2000)]]
    for kwargs in [{}, SETTINGS["short-side-256-crop-224"], {"size": 64, "do_center_crop": True, "crop_size": 100}]:
        ours = BeitImageProcessor(**kwargs)(images, return_tensors="pt").pixel_values
        for index, image in enumerate(images):
            assert max_diff(ours[index], stock(**kwargs)(image, return_tensors="pt").pixel_values[0]) < ATOL


def test_sixteen_bit_png_is_scaled_not_clipped(photos):
    """Deliberate difference: stock clips 16-bit greyscale at 255 (an almost white image); we scale it by 1/257."""
    grey8 = np.array(photos[0].convert("L"))
    noise = np.random.default_rng(0).integers(-100, 101, grey8.shape)
    grey16 = np.clip(grey8.astype(np.int64) * 257 + noise, 0, 65535).astype(np.uint16)
    buffer = io.BytesIO()
    Image.fromarray(grey16).save(buffer, format="PNG")
    png16 = Image.open(io.BytesIO(buffer.getvalue()))
    assert png16.mode == "I;16"
    expected8 = Image.fromarray(np.round(grey16 / 257).astype(np.uint8))
    reference = stock(do_convert_rgb=True)(expected8, return_tensors="pt").pixel_values
    processor = BeitImageProcessor()
    assert max_diff(processor(png16, return_tensors="pt").pixel_values, reference) < ATOL
    assert max_diff(processor(grey16, return_tensors="pt").pixel_values, reference) < ATOL  # uint16 array
    clipped = stock(do_convert_rgb=True)(png16, return_tensors="pt").pixel_values
    assert (clipped == 1.0).float().mean().item() > 0.9  # stock: every value above 255 becomes white


def _label_map(shape: tuple[int, int], classes: list[int], seed: int = 0) -> np.ndarray:
    """Blocky random class map (like a real annotation: large regions, sharp borders)."""
    rng = np.random.default_rng(seed)
    coarse = rng.choice(classes, size=(shape[0] // 16 + 1, shape[1] // 16 + 1)).astype(np.uint8)
    return np.kron(coarse, np.ones((16, 16), dtype=np.uint8))[: shape[0], : shape[1]]


def test_segmentation_maps_keep_class_ids(photos):
    classes = [0, 3, 17, 150, 255]
    photo = photos[0]
    segmentation = Image.fromarray(_label_map((photo.height, photo.width), classes))
    kwargs = SETTINGS["short-side-256-crop-224"]
    ours = BeitImageProcessor(**kwargs)(photo, segmentation_maps=segmentation, return_tensors="pt")
    labels = ours["labels"]
    assert labels.dtype == torch.int64 and labels.shape == (1, 224, 224)
    assert set(labels.unique().tolist()) <= set(classes)
    # Stock 5.23 resizes label maps with the image resample (bicubic) and invents ids ...
    stock_labels = stock(**kwargs)(photo, segmentation_maps=segmentation, return_tensors="pt")["labels"]
    assert len(set(stock_labels.unique().tolist()) - set(classes)) > 10
    # ... and with resample=NEAREST it gives exactly our labels (torch/cv2 "nearest").
    nearest = stock(**{**kwargs, "resample": 0})(photo, segmentation_maps=segmentation, return_tensors="pt")
    assert torch.equal(labels, nearest["labels"])
    assert max_diff(ours.pixel_values, stock(**kwargs)(photo, return_tensors="pt").pixel_values) < ATOL


def test_segmentation_map_input_types_and_batches():
    classes = [1, 2, 200]
    maps = [_label_map((40, 60), classes, seed) for seed in range(3)]
    images = [np.zeros((40, 60, 3), dtype=np.uint8)] * 3
    processor = BeitImageProcessor(size=32)
    as_pil = processor(images, segmentation_maps=[Image.fromarray(m) for m in maps], return_tensors="pt")["labels"]
    as_torch = processor(images, segmentation_maps=[torch.from_numpy(m).long() for m in maps], return_tensors="pt")
    as_numpy_batch = processor(images, segmentation_maps=np.stack(maps).astype(np.int32), return_tensors="pt")
    assert as_pil.shape == (3, 32, 32)
    assert torch.equal(as_pil, as_torch["labels"]) and torch.equal(as_pil, as_numpy_batch["labels"])
    palette = Image.fromarray(maps[0]).convert("P")  # palette indices are the class ids
    palette.putpalette([v for i in range(256) for v in (i, 255 - i, 7)])
    assert torch.equal(processor(images[0], segmentation_maps=palette, return_tensors="pt")["labels"], as_pil[:1])
    with pytest.raises(ValueError, match="single-channel"):
        processor(images[0], segmentation_maps=Image.fromarray(images[0]))  # colour mask instead of class ids
    with pytest.raises(ValueError, match="3 images but 2 segmentation maps"):
        processor(images, segmentation_maps=maps[:2])


def test_reduce_labels_semantics_by_hand():
    values = np.array([[0, 1, 2, 150], [151, 254, 255, 7]], dtype=np.uint8)
    expected = torch.tensor([[255, 0, 1, 149], [150, 253, 255, 6]])
    image = np.zeros((2, 4, 3), dtype=np.uint8)
    for processor in [
        BeitImageProcessor(do_reduce_labels=True, size={"height": 2, "width": 4}),
        BeitImageProcessor.from_preset("ade20k-640", do_resize=False),
    ]:
        labels = processor(image, segmentation_maps=values, return_tensors="pt")["labels"][0]
        assert labels.dtype == torch.int64 and torch.equal(labels, expected)
    kept = BeitImageProcessor(do_resize=False)(image, segmentation_maps=values, return_tensors="pt")["labels"][0]
    assert torch.equal(kept, torch.from_numpy(values).long())


def test_legacy_reduce_labels_is_honoured(tmp_path):
    assert not stock(reduce_labels=True).do_reduce_labels  # the 5.23 quirk we do not copy
    assert BeitImageProcessor(reduce_labels=True).do_reduce_labels
    assert BeitImageProcessor.from_dict({"reduce_labels": True, "size": 640}).do_reduce_labels
    assert BeitImageProcessor(reduce_labels=True, do_reduce_labels=False).do_reduce_labels is False  # explicit wins
    (tmp_path / "preprocessor_config.json").write_text(
        json.dumps({"image_processor_type": "BeitImageProcessor", "reduce_labels": True, "size": 640, "resample": 2})
    )
    loaded = BeitImageProcessor.from_pretrained(tmp_path)
    assert (
        loaded.do_reduce_labels
        and loaded.size == {"height": 640, "width": 640}
        and "reduce_labels" not in loaded.to_dict()
    )
    assert not BeitImageProcessor.from_pretrained(tmp_path, do_reduce_labels=False).do_reduce_labels
    assert (
        BeitImageProcessor.from_pretrained(
            tmp_path / "..", subfolder=tmp_path.name, reduce_labels=False
        ).do_reduce_labels
        is False
    )
    values = np.array([[0, 5]], dtype=np.uint8)
    call = BeitImageProcessor(do_resize=False)(
        np.zeros((1, 2, 3), np.uint8), segmentation_maps=values, reduce_labels=True
    )
    assert call["labels"][0].tolist() == [[255, 4]]


def test_save_pretrained_round_trip_with_stock(tmp_path, photos):
    ours = BeitImageProcessor(**SETTINGS["short-side-256-crop-224"], image_mean=[0.4, 0.5, 0.6], do_reduce_labels=True)
    ours.save_pretrained(tmp_path / "ours")
    loaded_by_stock = transformers.BeitImageProcessor.from_pretrained(tmp_path / "ours")
    keys = [
        "do_resize",
        "size",
        "resample",
        "do_center_crop",
        "crop_size",
        "do_rescale",
        "rescale_factor",
        "do_normalize",
        "image_mean",
        "image_std",
        "do_reduce_labels",
        "do_convert_rgb",
    ]
    for key in keys:
        assert getattr(loaded_by_stock, key) == getattr(ours, key), key
    assert (
        max_diff(
            ours(photos[:2], return_tensors="pt").pixel_values,
            loaded_by_stock(photos[:2], return_tensors="pt").pixel_values,
        )
        < ATOL
    )
    loaded_by_stock.save_pretrained(tmp_path / "stock")
    reloaded = BeitImageProcessor.from_pretrained(tmp_path / "stock")
    assert all(getattr(reloaded, key) == getattr(ours, key) for key in keys)
    BeitImageProcessor.from_preset("imagenet-eval-224").save_pretrained(tmp_path / "preset")
    assert BeitImageProcessor.from_pretrained(tmp_path / "preset").crop_rounding == "round"


def test_imagenet_eval_preset_equals_hand_built_pil_pipeline(photos):
    """unilm eval: PIL bicubic short side -> int(S / crop_pct), torchvision CenterCrop(S), ToTensor, 0.5/0.5."""
    for size, short_side in [(224, 256), (384, 384)]:
        reference = T.Compose(
            [
                T.Resize(short_side, interpolation=T.InterpolationMode.BICUBIC),
                T.CenterCrop(size),
                T.ToTensor(),
                T.Normalize([0.5] * 3, [0.5] * 3),
            ]
        )
        processor = BeitImageProcessor.from_preset(f"imagenet-eval-{size}")
        ours = processor(photos, return_tensors="pt").pixel_values
        for index, photo in enumerate(photos):
            difference = (ours[index] - reference(photo)).abs()
            # torch's antialiased uint8 bicubic differs from Pillow's by at most a few 8-bit levels, on few pixels
            assert difference.max().item() <= 2 / 127.5 + 1e-5
            assert (difference > 1e-4).float().mean().item() < 0.02
    # 640x427 -> 383x256: odd excess, so torchvision's crop placement ("round") differs from transformers' ("floor")
    faithful = BeitImageProcessor.from_preset("imagenet-eval-224")(photos[0], return_tensors="pt").pixel_values
    shifted = BeitImageProcessor.from_preset("imagenet-eval-224", crop_rounding="floor")(photos[0], return_tensors="pt")
    assert max_diff(shifted.pixel_values, faithful) > 0.1


def test_presets():
    assert set(PRESETS) == {
        "imagenet-eval-224",
        "imagenet-eval-384",
        "imagenet-eval-512",
        "ade20k-640",
        "hub-224",
        "hub-384",
        "hub-512",
    }
    hub = BeitImageProcessor.from_preset("hub-384")
    assert (hub.size, hub.resample, hub.do_center_crop, hub.image_mean) == (
        {"height": 384, "width": 384},
        2,
        False,
        (0.5, 0.5, 0.5),
    )
    photo = Image.fromarray(skimage.data.coffee())
    expected = stock(size=224, resample=2, do_center_crop=False)(photo, return_tensors="pt").pixel_values
    assert max_diff(BeitImageProcessor.from_preset("hub-224")(photo, return_tensors="pt").pixel_values, expected) < ATOL
    ade = BeitImageProcessor.from_preset("ade20k-640")
    assert ade.do_reduce_labels and ade.image_std == (0.229, 0.224, 0.225)
    output = ade(
        np.zeros((427, 640, 3), np.uint8), segmentation_maps=np.ones((427, 640), np.uint8), return_tensors="pt"
    )
    assert output.pixel_values.shape == (1, 3, 640, 959) and output["labels"].shape == (1, 640, 959)
    assert output["labels"].unique().tolist() == [0]
    assert BeitImageProcessor.from_preset("imagenet-eval-512", crop_size=500).crop_size == {"height": 500, "width": 500}
    with pytest.raises(ValueError, match="Available presets"):
        BeitImageProcessor.from_preset("coco-224")
    with pytest.raises(ValueError, match="needs an image size"):
        BeitImageProcessor.from_preset("imagenet-eval")
    # any size: unilm's crop_pct rule (224/256 below 384, 1 from 384 on)
    assert BeitImageProcessor.from_preset("imagenet-eval-96").size == {"shortest_edge": 109}
    assert BeitImageProcessor.from_preset("imagenet-eval", image_size=448).size == {"shortest_edge": 448}
    with pytest.raises(ValueError, match="crop_rounding"):
        BeitImageProcessor(crop_rounding="ceil")


def test_post_process_semantic_segmentation():
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 16, 16)
    processor = BeitImageProcessor()
    outputs = SemanticSegmenterOutput(logits=logits)
    maps = processor.post_process_semantic_segmentation(outputs, target_sizes=[(500, 300), (160, 160)])
    assert [m.shape for m in maps] == [(500, 300), (160, 160)]
    expected = torch.nn.functional.interpolate(logits[:1], size=(500, 300), mode="bilinear").argmax(1)[0]
    assert torch.equal(maps[0], expected) and maps[0].dtype == torch.int64
    default = processor.post_process_semantic_segmentation(outputs)
    assert [m.shape for m in default] == [(16, 16)] * 2 and torch.equal(default[1], logits[1].argmax(0))
    scored = processor.post_process_semantic_segmentation(
        outputs, target_sizes=[(8, 8)] * 2, return_segmentation_scores=True
    )
    assert scored[0].segmentation_scores.shape == (5, 8, 8)
    with pytest.raises(ValueError, match="target sizes"):
        processor.post_process_semantic_segmentation(outputs, target_sizes=[(8, 8)])


def test_return_lists_without_return_tensors_and_clear_channel_errors(photos):
    output = BeitImageProcessor()(photos[:2])
    assert isinstance(output.pixel_values, list) and output.pixel_values[0].shape == (3, 224, 224)
    with pytest.raises(ValueError, match="image_mean has 3 values"):
        BeitImageProcessor(do_convert_rgb=False)(photos[0].convert("L"), return_tensors="pt")


def test_pipelines_give_the_same_results_as_with_the_stock_processor():
    torch.manual_seed(0)
    config = transformers.BeitConfig(
        image_size=32,
        patch_size=8,
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=37,
        num_labels=3,
        out_indices=[1, 2, 3, 4],
    )
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8))
    for task, model_class in [
        ("image-classification", transformers.BeitForImageClassification),
        ("image-segmentation", transformers.BeitForSemanticSegmentation),
    ]:
        model = model_class(config).eval()
        ours = transformers.pipeline(task, model=model, image_processor=BeitImageProcessor(size=32))(image)
        reference = transformers.pipeline(task, model=model, image_processor=stock(size=32))(image)
        assert [r["label"] for r in ours] == [r["label"] for r in reference] and len(ours) > 0
        if task == "image-segmentation":
            assert all(np.array_equal(np.asarray(a["mask"]), np.asarray(b["mask"])) for a, b in zip(ours, reference))
        else:
            assert np.allclose([r["score"] for r in ours], [r["score"] for r in reference], atol=1e-5)
