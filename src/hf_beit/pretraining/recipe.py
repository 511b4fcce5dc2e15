"""The whole pre-training run: views, tokenizer (given or k-means fitted on the data), masks, Trainer, atomic save."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torchvision.transforms import InterpolationMode

from hf_beit import BeitForMaskedImageModeling
from hf_beit.pretraining.collator import INCEPTION_MEAN, INCEPTION_STD, DataCollatorForBeitPretraining, TwoViewTransform
from hf_beit.pretraining.trainer import (
    DEFAULT_PRESET,
    PRETRAINING_DEFAULTS,
    BeitPretrainingTrainer,
    build_mask_generator,
    build_pretraining_config,
    pretraining_arguments,
    save_pretrained_mim,
)
from hf_beit.tokenizers import KMeansPatchTokenizer, VisualTokenizer

__all__ = ["PretrainingOptions", "fit_kmeans_tokenizer", "run_pretraining"]


@dataclass
class PretrainingOptions:
    """Settings of one pre-training run; defaults are unilm's (base model, 224/16, IN-1k style warmup)."""

    output_dir: str
    checkpoint_dir: str | None = None  # default: "<output_dir>.checkpoints"
    overwrite: bool = False
    resume: bool = False
    preset: str = DEFAULT_PRESET
    model_overrides: dict[str, Any] = field(default_factory=dict)
    # k-means tokenizer (used when no tokenizer is given)
    kmeans_vocab_size: int = 1024
    kmeans_patch_size: int | None = None  # default: half the model patch (DALL-E's 8 px cells at 224/16)
    kmeans_fit_images: int = 2000
    kmeans_steps: int = 300
    tokenizer_image_size: int | None = None  # default: model grid x tokenizer downsampling (112 at 224/16)
    # masking and augmentation
    num_masking_patches: int | None = None
    min_mask_patches_per_block: int | None = None
    crop_min_scale: float = 0.08
    color_jitter: float = 0.4
    hflip: bool = True
    image_mean: Sequence[float] = INCEPTION_MEAN
    image_std: Sequence[float] = INCEPTION_STD
    # optimisation
    epochs: float = 800
    max_steps: int = -1
    batch_size: int = 64
    learning_rate: float = PRETRAINING_DEFAULTS["learning_rate"]
    min_lr: float = PRETRAINING_DEFAULTS["lr_scheduler_kwargs"]["min_lr"]
    weight_decay: float = PRETRAINING_DEFAULTS["weight_decay"]
    clip_grad: float = PRETRAINING_DEFAULTS["max_grad_norm"]
    warmup_epochs: float = 10
    warmup_steps: int | None = None
    seed: int = 0
    num_workers: int = 0
    logging_steps: int = 50
    save_steps: int = 1000
    disable_tqdm: bool = False


def fit_kmeans_tokenizer(
    dataset: Sequence[Any], transform: TwoViewTransform, options: PretrainingOptions, patch_size: int
) -> KMeansPatchTokenizer:
    """Fit a k-means codebook on tokenizer views of ``options.kmeans_fit_images`` random crops of ``dataset``."""
    generator = torch.Generator().manual_seed(options.seed)
    indices = torch.randint(len(dataset), (options.kmeans_fit_images,), generator=generator).tolist()
    views = []
    for index in indices:
        item = dataset[index]
        views.append(transform(item["image"] if isinstance(item, dict) else item)[1])
    return KMeansPatchTokenizer.fit(
        torch.stack(views), vocab_size=options.kmeans_vocab_size, patch_size=patch_size, steps=options.kmeans_steps,
        seed=options.seed, progress=not options.disable_tqdm,
    )


def _image_processor(image_size: int, mean: Sequence[float], std: Sequence[float]):
    """A matching image processor (bicubic squash to the model size, same normalisation) for fine-tuning."""
    from hf_beit import BeitImageProcessor

    return BeitImageProcessor(
        size={"height": image_size, "width": image_size}, do_center_crop=False,
        resample=Image.Resampling.BICUBIC, image_mean=list(mean), image_std=list(std),
    )


def run_pretraining(
    dataset: Sequence[Any], options: PretrainingOptions, tokenizer: VisualTokenizer | None = None
) -> dict[str, Any]:
    """Pre-train on ``dataset`` (PIL images or ``{"image": ...}`` items); returns the run summary.

    Without ``tokenizer`` a k-means patch codebook is fitted on the data first. The model, its tokenizer
    (``visual_tokenizer/``), an image processor and ``pretraining_config.json`` are written to ``output_dir``.
    """
    torch.manual_seed(options.seed)
    output_dir = Path(options.output_dir)
    if output_dir.is_dir() and any(output_dir.iterdir()) and not options.overwrite:
        raise FileExistsError(f"Output folder {str(output_dir)!r} is not empty; pass --overwrite to replace it.")
    if len(dataset) == 0:
        raise ValueError("The pre-training dataset is empty.")
    config = build_pretraining_config(
        tokenizer.vocab_size if tokenizer else 2, options.preset, **options.model_overrides
    )
    grid = config.window_size
    if grid[0] != grid[1]:
        raise ValueError(f"Pre-training needs a square patch grid, got {grid}.")
    downsample = (
        tokenizer.downsample if tokenizer else options.kmeans_patch_size or max(1, config.patch_size_2d[0] // 2)
    )
    transform = TwoViewTransform(
        image_size=config.image_size_2d[0], tokenizer_image_size=options.tokenizer_image_size or grid[0] * downsample,
        scale=(options.crop_min_scale, 1.0), hflip_prob=0.5 if options.hflip else 0.0,
        color_jitter=options.color_jitter, image_mean=options.image_mean, image_std=options.image_std,
        tokenizer_interpolation=InterpolationMode(tokenizer.view_interpolation if tokenizer else "lanczos"),
    )
    if tokenizer is None:
        tokenizer = fit_kmeans_tokenizer(dataset, transform, options, downsample)
        config = build_pretraining_config(tokenizer.vocab_size, options.preset, **options.model_overrides)
    mask_generator = build_mask_generator(
        config, options.num_masking_patches, options.min_mask_patches_per_block, options.seed
    )
    collator = DataCollatorForBeitPretraining(tokenizer, mask_generator, transform)
    steps_per_epoch = max(1, math.ceil(len(dataset) / options.batch_size))
    warmup = options.warmup_steps if options.warmup_steps is not None else int(options.warmup_epochs * steps_per_epoch)
    training_args = pretraining_arguments(
        options.checkpoint_dir or f"{output_dir}.checkpoints", num_train_epochs=options.epochs,
        max_steps=options.max_steps, per_device_train_batch_size=options.batch_size,
        learning_rate=options.learning_rate, lr_scheduler_kwargs={"min_lr": options.min_lr},
        weight_decay=options.weight_decay, max_grad_norm=options.clip_grad, warmup_steps=warmup, seed=options.seed,
        dataloader_num_workers=options.num_workers, dataloader_pin_memory=torch.cuda.is_available(),
        logging_steps=options.logging_steps, save_steps=options.save_steps, save_total_limit=2,
        disable_tqdm=options.disable_tqdm,
    )
    trainer = BeitPretrainingTrainer(
        model=BeitForMaskedImageModeling(config), args=training_args, train_dataset=dataset, data_collator=collator
    )
    trainer.train(resume_from_checkpoint=True if options.resume else None)
    losses = [log["loss"] for log in trainer.state.log_history if "loss" in log]
    summary = {
        **{k: v for k, v in asdict(options).items() if k not in ("output_dir", "checkpoint_dir", "overwrite")},
        "image_mean": list(options.image_mean), "image_std": list(options.image_std),
        "num_masking_patches": mask_generator.num_masking_patches,
        "min_mask_patches_per_block": mask_generator.min_num_patches,
        "tokenizer_image_size": transform.tokenizer_image_size,
        "tokenizer_type": tokenizer.tokenizer_type, "vocab_size": tokenizer.vocab_size,
        "global_step": trainer.state.global_step, "losses": losses,
        "mlm_acc": [log["mlm_acc"] for log in trainer.state.log_history if "mlm_acc" in log],
    }
    processor = _image_processor(config.image_size_2d[0], options.image_mean, options.image_std)
    save_pretrained_mim(output_dir, trainer.model, tokenizer, summary, processor, overwrite=options.overwrite)
    return summary
