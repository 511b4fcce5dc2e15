"""MIM collator (two views of one crop, masks, labels) and the pre-training Trainer recipe."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader
from torchvision.transforms import functional as TF

from hf_beit import BeitForMaskedImageModeling
from hf_beit.masking import MaskingGenerator
from hf_beit.pretraining import (
    BeitPretrainingTrainer,
    DataCollatorForBeitPretraining,
    ImageFolderDataset,
    TwoViewTransform,
    build_mask_generator,
    build_pretraining_config,
    load_digits_images,
    pretraining_arguments,
)
from hf_beit.tokenizers import KMeansPatchTokenizer


def _random_images(count: int, size: int = 40, seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)) for _ in range(count)]


def _tokenizer(vocab: int = 16, patch: int = 4, size: int = 16, seed: int = 0) -> KMeansPatchTokenizer:
    views = torch.rand(8, 3, size, size, generator=torch.Generator().manual_seed(seed))
    return KMeansPatchTokenizer.fit(views, vocab_size=vocab, patch_size=patch, steps=5, progress=False)


def test_collator_outputs_match_independent_views_tokens_and_masks():
    images = _random_images(3)
    tokenizer = _tokenizer()
    # No augmentation: the crop is the whole image, so both views are plain resizes that we can rebuild.
    transform = TwoViewTransform(32, 16, scale=(1.0, 1.0), ratio=(1.0, 1.0), hflip_prob=0.0, color_jitter=0.0)
    collator = DataCollatorForBeitPretraining(tokenizer, MaskingGenerator(4, 6, min_num_patches=2, seed=5), transform)
    batch = collator([{"image": image} for image in images])
    assert set(batch) == {"pixel_values", "bool_masked_pos", "labels"}
    assert batch["pixel_values"].shape == (3, 3, 32, 32) and batch["bool_masked_pos"].dtype == torch.bool
    assert batch["labels"].shape == (3, 16) and batch["labels"].dtype == torch.long

    expected_pixels = torch.stack(
        [
            TF.normalize(TF.to_tensor(im.resize((32, 32), Image.Resampling.BICUBIC)), [0.5] * 3, [0.5] * 3)
            for im in images
        ]
    )
    torch.testing.assert_close(batch["pixel_values"], expected_pixels)
    tokenizer_views = torch.stack([TF.to_tensor(im.resize((16, 16), Image.Resampling.LANCZOS)) for im in images])
    tokens = tokenizer.get_codebook_indices(tokenizer_views)
    masks = MaskingGenerator(4, 6, min_num_patches=2, seed=5).batch(3)
    assert torch.equal(batch["bool_masked_pos"], masks)
    assert torch.equal(batch["labels"][masks], tokens[masks])
    assert (batch["labels"][~masks] == -100).all()


def test_two_views_come_from_the_same_random_crop():
    # A smooth image: the model view, downsampled to the tokenizer size, must agree with the tokenizer view.
    y, x = np.mgrid[0:96, 0:96]
    array = np.stack([x * 255 / 95, y * 255 / 95, (x + y) * 255 / 190], axis=-1).astype(np.uint8)
    transform = TwoViewTransform(32, 16, hflip_prob=0.5, color_jitter=0.0)
    torch.manual_seed(0)
    for _ in range(10):
        model_view, tokenizer_view = transform(Image.fromarray(array))
        assert model_view.shape == (3, 32, 32) and tokenizer_view.shape == (3, 16, 16)
        assert tokenizer_view.min() >= 0 and tokenizer_view.max() <= 1
        small = torch.nn.functional.avg_pool2d(model_view[None] * 0.5 + 0.5, 2)[0]
        assert (small - tokenizer_view).abs().max() < 0.05


def test_collator_rejects_mismatched_grid_and_bad_images():
    transform = TwoViewTransform(32, 16)
    with pytest.raises(ValueError, match="token grid"):
        DataCollatorForBeitPretraining(_tokenizer(), MaskingGenerator(8, 10), transform)
    collator = DataCollatorForBeitPretraining(_tokenizer(), MaskingGenerator(4, 6, min_num_patches=2), transform)
    with pytest.raises(TypeError, match="PIL image"):
        collator([torch.rand(3, 32, 32)])


def test_dataloader_workers_draw_different_masks():
    transform = TwoViewTransform(32, 16, color_jitter=0.0)
    collator = DataCollatorForBeitPretraining(
        _tokenizer(), MaskingGenerator(4, 6, min_num_patches=2, seed=0), transform
    )
    loader = DataLoader(_random_images(2), batch_size=1, num_workers=2, collate_fn=collator)
    first, second = (batch["bool_masked_pos"] for batch in loader)
    assert not torch.equal(first, second)


def test_recipe_defaults_and_weight_decay_groups(tmp_path):
    args = pretraining_arguments(tmp_path)
    assert (args.learning_rate, args.weight_decay, args.max_grad_norm) == (1.5e-3, 0.05, 3.0)
    assert (args.adam_beta1, args.adam_beta2, args.adam_epsilon) == (0.9, 0.999, 1e-8)
    assert args.lr_scheduler_type == "cosine_with_min_lr" and args.lr_scheduler_kwargs == {"min_lr": 1e-5}
    config = build_pretraining_config(16, image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2,
                                      num_attention_heads=2, intermediate_size=64)
    assert config.use_mask_token and config.use_shared_relative_position_bias and config.vocab_size == 16
    assert (config.drop_path_rate, config.layer_scale_init_value) == (0.1, 0.1)
    generator = build_mask_generator(config)
    assert (generator.height, generator.num_masking_patches, generator.min_num_patches) == (4, 6, 1)
    assert build_pretraining_config(8192).window_size == (14, 14)
    assert build_mask_generator(build_pretraining_config(8192)).num_masking_patches == 75

    model = BeitForMaskedImageModeling(config)
    trainer = BeitPretrainingTrainer(model=model, args=args)
    decay = set(trainer.get_decay_parameter_names(model))
    assert "beit.embeddings.mask_token" in decay  # 3-D, decayed in unilm too
    assert "beit.encoder.relative_position_bias.relative_position_bias_table" in decay
    assert "beit.encoder.layer.0.attention.attention.query.weight" in decay and "lm_head.weight" in decay
    for name in ("beit.embeddings.cls_token", "beit.encoder.layer.0.lambda_1", "lm_head.bias", "layernorm.weight",
                 "beit.encoder.layer.1.layernorm_before.weight"):
        assert name not in decay


def test_mim_loss_falls_in_a_few_steps(tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # far faster for this tiny model on a shared 2-core machine
    try:
        torch.manual_seed(0)
        images = load_digits_images(32)[0][:16]
        transform = TwoViewTransform(32, 16, scale=(1.0, 1.0), ratio=(1.0, 1.0), hflip_prob=0.0, color_jitter=0.0)
        views = torch.stack([transform(image)[1] for image in images])
        tokenizer = KMeansPatchTokenizer.fit(views, vocab_size=16, patch_size=4, steps=20, progress=False)
        config = build_pretraining_config(16, image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2,
                                          num_attention_heads=2, intermediate_size=64, drop_path_rate=0.0)
        collator = DataCollatorForBeitPretraining(tokenizer, build_mask_generator(config, seed=0), transform)
        args = pretraining_arguments(tmp_path, max_steps=40, per_device_train_batch_size=16, warmup_steps=2,
                                     learning_rate=3e-3, logging_steps=1, save_strategy="no", seed=0,
                                     disable_tqdm=True, dataloader_pin_memory=False)
        trainer = BeitPretrainingTrainer(model=BeitForMaskedImageModeling(config), args=args, train_dataset=images,
                                         data_collator=collator)
        trainer.train()
    finally:
        torch.set_num_threads(threads)
    losses = [log["loss"] for log in trainer.state.log_history if "loss" in log]
    assert len(losses) == 40
    assert abs(np.mean(losses[:3]) - np.log(16)) < 0.15  # starts at chance level
    assert np.mean(losses[-10:]) < np.mean(losses[:3]) - 0.1
    assert any("mlm_acc" in log for log in trainer.state.log_history)


def test_image_folder_dataset(tmp_path):
    (tmp_path / "a").mkdir()
    for index, image in enumerate(_random_images(2, size=8)):
        image.save(tmp_path / "a" / f"{index}.png")
    (tmp_path / "notes.txt").write_text("not an image")
    dataset = ImageFolderDataset(tmp_path)
    assert len(dataset) == 2 and dataset[0]["image"].mode == "RGB" and dataset[0]["image"].size == (8, 8)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="No images"):
        ImageFolderDataset(tmp_path / "empty")
    with pytest.raises(FileNotFoundError):
        ImageFolderDataset(tmp_path / "missing")
