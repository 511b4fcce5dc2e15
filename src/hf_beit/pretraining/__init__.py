"""BEiT masked-image-modeling pre-training: two-view collator, Trainer recipe and the `hf-beit pretrain` command."""

from hf_beit.pretraining.collator import IGNORE_INDEX, DataCollatorForBeitPretraining, TwoViewTransform
from hf_beit.pretraining.data import ImageFolderDataset, load_digits_images
from hf_beit.pretraining.recipe import PretrainingOptions, fit_kmeans_tokenizer, run_pretraining
from hf_beit.pretraining.trainer import (
    PRETRAINING_DEFAULTS,
    BeitPretrainingTrainer,
    build_mask_generator,
    build_pretraining_config,
    pretraining_arguments,
    save_pretrained_mim,
)

__all__ = [
    "IGNORE_INDEX",
    "PRETRAINING_DEFAULTS",
    "BeitPretrainingTrainer",
    "DataCollatorForBeitPretraining",
    "ImageFolderDataset",
    "PretrainingOptions",
    "TwoViewTransform",
    "build_mask_generator",
    "build_pretraining_config",
    "fit_kmeans_tokenizer",
    "load_digits_images",
    "pretraining_arguments",
    "run_pretraining",
    "save_pretrained_mim",
]
