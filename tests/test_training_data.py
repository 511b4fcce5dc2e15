"""Training data: loaders, label schemas, transforms, collation and mixup."""

from __future__ import annotations

import datasets
import numpy as np
import pytest
import torch
import transformers
from PIL import Image
from torchvision import tv_tensors

import hf_beit
from hf_beit.segmentation_labels import reduce_labels
from hf_beit.training.augment import (
    AugmentConfig,
    Mixup,
    build_eval_transform,
    build_segmentation_transform,
    build_train_transform,
    smooth_one_hot,
)
from hf_beit.training.collators import collate_pixel_batch
from hf_beit.training.datasets import (
    DataError,
    LabelSchema,
    infer_label_schema,
    load_digits_dataset,
    load_image_folder,
    load_segmentation_folder,
    load_source,
    segmentation_schema,
    with_validation_split,
)
from hf_beit.training.preprocess import (
    ClassificationExample,
    SegmentationExample,
    TransformedDataset,
)
from hf_beit.training.synthetic import make_multilabel_folder, make_segmentation_folder


def test_digits_dataset_is_stratified_rgb():
    data = load_digits_dataset(image_size=32, validation_fraction=0.1, test_fraction=0.1, seed=0)
    sizes = {name: len(split) for name, split in data.items()}
    assert sum(sizes.values()) == 1797 and sizes["validation"] == sizes["test"] == 180
    image = data["validation"][0]["image"]
    assert image.size == (32, 32) and image.mode == "RGB"
    for split in ("validation", "test"):
        counts = np.bincount(data[split]["label"], minlength=10)
        assert counts.min() >= 17 and counts.max() <= 19  # ~18 per class
    assert infer_label_schema(data["train"], "label").id2label == {i: str(i) for i in range(10)}
    assert list(with_validation_split(data, 0.1, 0)) == ["train", "validation", "test"]


def test_class_folder_and_holdout_split(tmp_path):
    for name in ("cat", "dog"):
        (tmp_path / name).mkdir()
        for i in range(5):
            Image.new("RGB", (8, 8), (i * 40, 0, 0)).save(tmp_path / name / f"{i}.png")
    data = with_validation_split(load_image_folder(tmp_path), validation_fraction=0.2, seed=0)
    assert (len(data["train"]), len(data["validation"])) == (8, 2)
    schema = infer_label_schema(data["train"], "label")
    assert schema == LabelSchema({0: "cat", 1: "dog"}, multi_label=False)
    with pytest.raises(DataError, match="validation_fraction"):
        with_validation_split(load_image_folder(tmp_path), validation_fraction=0.0, seed=0)


def test_multilabel_metadata_schema_and_encoding(tmp_path):
    make_multilabel_folder(tmp_path, num_images=12)
    data = load_source(tmp_path, "classification")
    schema = infer_label_schema(data["train"], "labels")
    assert schema.multi_label and schema.id2label == {0: "blue", 1: "green", 2: "red"}
    assert schema.encode(["red", "blue"]) == [1.0, 0.0, 1.0]
    assert schema.encode([]) == [0.0, 0.0, 0.0]
    with pytest.raises(DataError, match="Unknown label"):
        schema.encode(["purple"])
    with pytest.raises(DataError, match="list of labels"):
        schema.encode("red")
    example_fn = ClassificationExample(build_eval_transform(16), schema, label_column="labels")
    example = TransformedDataset(data["train"], example_fn)[0]
    assert example["pixel_values"].shape == (3, 16, 16)
    batch = collate_pixel_batch([example, example])
    assert batch["labels"].dtype == torch.float32 and batch["labels"].shape == (2, 3)


def test_segmentation_folder_pairs_schema_and_errors(tmp_path):
    make_segmentation_folder(tmp_path / "seg", num_images=6)
    data = load_segmentation_folder(tmp_path / "seg")
    assert list(data) == ["train"] and len(data["train"]) == 6
    assert segmentation_schema(data["train"]).num_labels == 3  # ids 0..2, 255 ignored
    (tmp_path / "seg" / "masks" / "0003.png").unlink()
    with pytest.raises(DataError, match="no mask"):
        load_segmentation_folder(tmp_path / "seg")
    with pytest.raises(DataError, match="images/ and masks/"):
        load_segmentation_folder(tmp_path)


@pytest.mark.parametrize("processor_class", [hf_beit.BeitImageProcessor, transformers.BeitImageProcessor])
def test_eval_transform_equals_the_saved_image_processor(processor_class):
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 50, 3), dtype=np.uint8))
    ours = build_eval_transform(32)(image)
    processor = processor_class(
        size={"height": 32, "width": 32}, do_center_crop=False, resample=Image.Resampling.BICUBIC,
        image_mean=[0.5] * 3, image_std=[0.5] * 3,
    )  # fmt: skip
    reference = processor(image, return_tensors="pt")["pixel_values"][0]
    assert torch.allclose(ours, reference, atol=1.01 / 127.5)  # at most one uint8 step of rounding


def test_train_transform_output_and_config_validation():
    torch.manual_seed(0)
    transform = build_train_transform(24, AugmentConfig())
    out = transform(Image.new("RGB", (40, 30), (200, 10, 10)))
    assert out.shape == (3, 24, 24) and out.dtype == torch.float32
    with pytest.raises(ValueError, match="crop_scale"):
        AugmentConfig(crop_scale=(0.0, 1.0))


def test_segmentation_transform_keeps_class_ids_and_geometry():
    torch.manual_seed(0)
    mask = np.zeros((40, 40), dtype=np.uint8)
    mask[:, 20:] = 7  # right half class 7
    mask[0] = 255
    image = np.zeros((40, 40, 3), dtype=np.uint8)
    image[:, 20:] = 255  # right half white
    transform = build_segmentation_transform(32, train=True, augment=AugmentConfig(color_jitter=0.0))
    for _ in range(5):
        pixels, labels = transform(Image.fromarray(image), tv_tensors.Mask(torch.from_numpy(mask).long()))
        assert set(torch.unique(labels).tolist()) <= {0, 7, 255}  # nearest: no invented ids
        white = pixels.mean(0) > 0.9
        assert (labels[white] != 0).all() and (labels[pixels.mean(0) < -0.9] != 7).all()


def test_reduce_labels_and_segmentation_preprocessing():
    mask = torch.tensor([[0, 1, 2], [3, 255, 1]])
    assert reduce_labels(mask.clone()).tolist() == [[255, 0, 1], [2, 255, 0]]
    example_fn = SegmentationExample(build_segmentation_transform(8, False, AugmentConfig()), num_labels=2)
    image = Image.new("RGB", (8, 8))
    ok = example_fn({"image": image, "annotation": Image.fromarray(np.ones((8, 8), np.uint8))})
    assert ok["labels"].dtype == torch.long and ok["labels"].shape == (8, 8)
    with pytest.raises(DataError, match="class id 5"):
        example_fn({"image": image, "annotation": Image.fromarray(np.full((8, 8), 5, np.uint8))})
    with pytest.raises(DataError, match="differs from image size"):
        example_fn({"image": image, "annotation": Image.fromarray(np.ones((4, 8), np.uint8))})


def test_seeded_augmentation_depends_on_epoch_and_index_only():
    images = [
        {"image": Image.fromarray(np.random.default_rng(i).integers(0, 255, (20, 20, 3), np.uint8)), "label": 0}
        for i in range(3)
    ]
    example_fn = ClassificationExample(build_train_transform(16, AugmentConfig()), LabelSchema({0: "a"}))
    first, second = TransformedDataset(images, example_fn, seed=1), TransformedDataset(images, example_fn, seed=1)
    torch.manual_seed(0)
    reference = first[2]["pixel_values"]
    state = torch.get_rng_state()
    torch.manual_seed(123)  # a different global RNG state must not matter
    assert torch.equal(second[2]["pixel_values"], reference)
    torch.manual_seed(0)
    first[2]
    assert torch.equal(torch.get_rng_state(), state)  # the global stream is not consumed
    second.set_epoch(1)
    assert not torch.equal(second[2]["pixel_values"], reference)
    assert not torch.equal(first[1]["pixel_values"], reference)


def test_mixup_soft_targets():
    torch.manual_seed(0)
    labels = torch.tensor([0, 1, 2, 3])
    targets = smooth_one_hot(labels, 5, smoothing=0.1)
    assert torch.allclose(targets.sum(1), torch.ones(4)) and targets[0, 0] == pytest.approx(0.92)
    pixels = torch.stack([torch.full((3, 4, 4), float(i)) for i in range(4)])
    for mixup_alpha, cutmix_alpha in ((0.8, 0.0), (0.0, 1.0)):
        mixed, soft = Mixup(5, mixup_alpha, cutmix_alpha, label_smoothing=0.0)(pixels, labels)
        assert torch.allclose(soft.sum(1), torch.ones(4))
        lam = float(soft[0, 0])  # sample 0 is mixed with sample 3 (the flipped batch)
        assert soft[0, 3] == pytest.approx(1 - lam)
        assert mixed[0].mean() == pytest.approx(3 * (1 - lam), abs=1e-5)
    with pytest.raises(ValueError, match="mixup_alpha"):
        Mixup(5, 0.0, 0.0)


def test_collate_single_label_and_masks():
    examples = [{"pixel_values": torch.zeros(3, 4, 4), "labels": 2}, {"pixel_values": torch.ones(3, 4, 4), "labels": 0}]
    batch = collate_pixel_batch(examples)
    assert batch["pixel_values"].shape == (2, 3, 4, 4) and batch["labels"].tolist() == [2, 0]
    masks = [{"pixel_values": torch.zeros(3, 4, 4), "labels": torch.zeros(4, 4, dtype=torch.long)}] * 2
    assert collate_pixel_batch(masks)["labels"].shape == (2, 4, 4)


def test_saved_dataset_source(tmp_path):
    dataset = datasets.Dataset.from_dict(
        {"image": [Image.new("RGB", (8, 8))] * 4, "label": [0, 1, 0, 1]},
        features=datasets.Features({"image": datasets.Image(), "label": datasets.Value("int64")}),
    )
    dataset.save_to_disk(str(tmp_path / "saved"))
    loaded = load_source(tmp_path / "saved", "classification")
    assert list(loaded) == ["train"] and infer_label_schema(loaded["train"], "label").num_labels == 2
    with pytest.raises(DataError, match="digits"):
        load_source("digits", "segmentation")


def test_an_image_folder_without_images_is_a_clear_data_error(tmp_path):
    from hf_beit.training.datasets import DataError, load_image_folder

    for label in ("cat", "dog"):
        (tmp_path / label).mkdir()
        (tmp_path / label / "notes.txt").write_text("not an image")
    with pytest.raises(DataError, match=r"No images \(\.bmp, .*\) found in .*one sub-folder of images per class"):
        load_image_folder(tmp_path)
    Image.new("RGB", (8, 8)).save(tmp_path / "cat" / "a.png")
    Image.new("RGB", (8, 8)).save(tmp_path / "dog" / "b.png")
    assert load_image_folder(tmp_path)["train"].num_rows == 2


def test_training_pretraining_and_prediction_take_the_same_image_files(tmp_path):
    """A folder of .ppm / .gif images (decodable by Pillow and datasets) was "No images" for fine-tuning only."""
    from hf_beit.inference._images import expand_image_paths
    from hf_beit.pretraining.data import ImageFolderDataset

    for label, suffix in (("cat", ".ppm"), ("dog", ".gif")):
        (tmp_path / label).mkdir()
        Image.new("RGB", (8, 8), (200, 10, 10)).save(tmp_path / label / f"x{suffix}")
    assert load_image_folder(tmp_path)["train"].num_rows == 2
    assert len(ImageFolderDataset(tmp_path)) == 2
    assert len(expand_image_paths([tmp_path], recursive=True)) == 2
