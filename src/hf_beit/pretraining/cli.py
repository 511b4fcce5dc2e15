"""``hf-beit pretrain``: BEiT masked image modeling on an image folder or scikit-learn's digits.

Example (no downloads needed)::

    hf-beit pretrain --dataset digits --output-dir mim-digits --image-size 32 --patch-size 4 \\
        --hidden-size 64 --num-hidden-layers 4 --num-attention-heads 4 --intermediate-size 128 --epochs 20

The final model, its visual tokenizer and the run settings are written atomically to ``--output-dir``;
Trainer checkpoints go to ``--checkpoint-dir`` (default ``<output-dir>.checkpoints``).
"""

from __future__ import annotations

import argparse
from dataclasses import fields
from typing import TYPE_CHECKING

from hf_beit.cli_types import non_negative_float, non_negative_int, positive_float, positive_int
from hf_beit.command_errors import guarded
from hf_beit.pretraining.defaults import DEFAULT_PRESET, PRETRAINING_DEFAULTS

if TYPE_CHECKING:  # the heavy modules are imported when the command runs, not when the parser is built
    from hf_beit.pretraining.recipe import PretrainingOptions
    from hf_beit.tokenizers import VisualTokenizer

_MODEL_OVERRIDES = ("image_size", "patch_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                    "intermediate_size", "drop_path_rate", "layer_scale_init_value")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "pretrain",
        help="BEiT masked-image-modeling pre-training (block masking + visual tokens) on transformers.Trainer.",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    data = parser.add_argument_group("data")
    data.add_argument("--dataset", choices=("imagefolder", "digits"), default="imagefolder")
    data.add_argument("--data-dir", help="Folder of images (searched recursively) for --dataset imagefolder.")
    data.add_argument("--output-dir", required=True, help="Where the pre-trained model is written (atomically).")
    data.add_argument("--checkpoint-dir", help="Trainer checkpoints (default: <output-dir>.checkpoints).")
    data.add_argument("--overwrite", action="store_true", help="Replace a non-empty --output-dir.")
    data.add_argument("--resume", action="store_true", help="Resume from the last checkpoint in --checkpoint-dir.")

    tok = parser.add_argument_group("visual tokenizer")
    tok.add_argument("--tokenizer", choices=("kmeans", "dalle", "vqkd", "saved"), default="kmeans",
                     help="kmeans: fit a patch codebook on the data (no download); dalle: OpenAI's dVAE encoder from "
                          "--tokenizer-path; vqkd: BEiT v2's VQ-KD tokenizer (the released .pth or a saved folder) "
                          "from --tokenizer-path; saved: a folder written by VisualTokenizer.save_pretrained.")
    tok.add_argument("--tokenizer-path", help="DALL-E encoder weights (encoder.pkl, state dict, .safetensors) or a "
                                              "saved tokenizer folder.")
    tok.add_argument("--trust-pickle", action="store_true",
                     help="Allow unpickling OpenAI's encoder.pkl (runs code from the file: trusted files only).")
    tok.add_argument("--kmeans-vocab-size", type=int, default=1024)
    tok.add_argument("--kmeans-fit-images", type=int, default=2000, help="Random crops used to fit the codebook.")
    tok.add_argument("--kmeans-steps", type=int, default=300)
    tok.add_argument("--kmeans-patch-size", type=int,
                     help="Pixels per token cell of the k-means view (default: half the model patch, like DALL-E's "
                          "8 px cells on the 112 view of a 224/16 model).")
    tok.add_argument("--tokenizer-image-size", type=int,
                     help="Side of the tokenizer view (default: model grid x tokenizer downsampling; 112 at 224).")

    model = parser.add_argument_group("model")
    model.add_argument("--preset", default=DEFAULT_PRESET, help="hf_beit.BeitConfig preset to start from.")
    for name in _MODEL_OVERRIDES:
        kind = float if name in ("drop_path_rate", "layer_scale_init_value") else int
        model.add_argument(f"--{name.replace('_', '-')}", type=kind, help="Override the preset's value.")

    mim = parser.add_argument_group("masking and augmentation")
    mim.add_argument("--num-masking-patches", type=int, help="Default: 75/196 of the patch grid (75 at 224/16).")
    mim.add_argument("--min-mask-patches-per-block", type=int, help="Default: 16/196 of the grid (16 at 224/16).")
    mim.add_argument("--crop-min-scale", type=float, default=0.08)
    mim.add_argument("--color-jitter", type=float, default=0.4)
    mim.add_argument("--no-flip", action="store_true", help="Disable the horizontal flip.")
    mim.add_argument("--imagenet-default-mean-and-std", action="store_true",
                     help="Normalise with ImageNet mean/std instead of 0.5/0.5 (unilm's IN-1k runs).")

    opt = parser.add_argument_group("optimisation (unilm defaults)")
    opt.add_argument("--epochs", type=positive_float, default=800)
    opt.add_argument("--max-steps", type=int, default=-1)
    opt.add_argument("--batch-size", type=positive_int, default=64, help="Per-device batch size.")
    opt.add_argument("--learning-rate", type=positive_float, default=PRETRAINING_DEFAULTS["learning_rate"])
    opt.add_argument("--min-lr", type=non_negative_float, default=PRETRAINING_DEFAULTS["lr_scheduler_kwargs"]["min_lr"])
    opt.add_argument("--weight-decay", type=float, default=PRETRAINING_DEFAULTS["weight_decay"])
    opt.add_argument("--clip-grad", type=float, default=PRETRAINING_DEFAULTS["max_grad_norm"])
    opt.add_argument("--warmup-epochs", type=non_negative_float, default=10)
    opt.add_argument("--warmup-steps", type=non_negative_int, help="Overrides --warmup-epochs.")
    opt.add_argument("--seed", type=int, default=0)
    opt.add_argument("--num-workers", type=non_negative_int, default=0)
    opt.add_argument("--logging-steps", type=positive_int, default=50)
    opt.add_argument("--save-steps", type=positive_int, default=1000)
    parser.set_defaults(func=guarded(run_pretrain, interrupted=(
        "the model was not written; the checkpoints saved so far stay in --checkpoint-dir (--resume continues)."
    )))


def _load_dataset(args: argparse.Namespace, image_size: int):
    from hf_beit.pretraining.data import ImageFolderDataset, load_digits_images

    if args.dataset == "digits":
        images, _ = load_digits_images(image_size)
        return images
    if not args.data_dir:
        raise ValueError("--data-dir is required with --dataset imagefolder (or use --dataset digits).")
    dataset = ImageFolderDataset(args.data_dir)
    dataset.check_readable()
    return dataset


def _load_tokenizer(args: argparse.Namespace) -> VisualTokenizer | None:
    from hf_beit.tokenizers import load_dalle_encoder, load_visual_tokenizer, load_vqkd_tokenizer

    if args.tokenizer == "kmeans":
        return None  # fitted on the data by run_pretraining
    if not args.tokenizer_path:
        raise ValueError(f"--tokenizer {args.tokenizer} needs --tokenizer-path.")
    if args.tokenizer == "dalle":
        return load_dalle_encoder(args.tokenizer_path, trust_pickle=args.trust_pickle)
    if args.tokenizer == "vqkd":
        return load_vqkd_tokenizer(args.tokenizer_path)
    return load_visual_tokenizer(args.tokenizer_path)


def options_from_args(args: argparse.Namespace) -> PretrainingOptions:
    """Map parsed ``hf-beit pretrain`` arguments to :class:`PretrainingOptions`."""
    from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

    from hf_beit.pretraining.collator import INCEPTION_MEAN, INCEPTION_STD
    from hf_beit.pretraining.recipe import PretrainingOptions

    overrides = {name: getattr(args, name) for name in _MODEL_OVERRIDES if getattr(args, name) is not None}
    mean, std = (
        (tuple(IMAGENET_DEFAULT_MEAN), tuple(IMAGENET_DEFAULT_STD))
        if args.imagenet_default_mean_and_std
        else (INCEPTION_MEAN, INCEPTION_STD)
    )
    shared = {f.name for f in fields(PretrainingOptions)} & set(vars(args))
    return PretrainingOptions(
        **{name: getattr(args, name) for name in shared},
        model_overrides=overrides, hflip=not args.no_flip, image_mean=mean, image_std=std,
    )


def run_pretrain(args: argparse.Namespace) -> int:
    from hf_beit import BeitConfig
    from hf_beit.atomic_io import check_output_folder
    from hf_beit.pretraining.recipe import run_pretraining

    check_output_folder(args.output_dir, overwrite=args.overwrite or args.resume)  # before any slow work
    options = options_from_args(args)
    image_size = options.model_overrides.get("image_size") or BeitConfig.from_preset(options.preset).image_size_2d[0]
    dataset = _load_dataset(args, image_size)
    tokenizer = _load_tokenizer(args)
    summary = run_pretraining(dataset, options, tokenizer=tokenizer)
    logged = f"last logged loss {summary['losses'][-1]:.4f}" if summary["losses"] else "no loss logged yet"
    print(f"Pre-trained {summary['global_step']} steps ({logged}); model written to {args.output_dir}")
    return 0
