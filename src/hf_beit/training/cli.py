"""``hf-beit train classification|segmentation``: command-line front end of :mod:`hf_beit.training.recipes`.

Runs unchanged under ``torchrun --nproc_per_node N -m hf_beit.cli train ...`` (DDP, gloo on CPU). Bad data, bad
arguments and missing files end with one message and exit code 2 (:mod:`hf_beit.command_errors`).
"""

from __future__ import annotations

import argparse
import logging
import os

from ..cli_types import below_one, non_negative_float, non_negative_int, positive_float, positive_int
from ..command_errors import guarded
from .augment_settings import AugmentConfig

INTERRUPTED = ("the final model was not written; the checkpoints saved so far stay in --output-dir "
               "(--resume continues from the latest).")


def _add_data_arguments(parser: argparse.ArgumentParser, task: str) -> None:
    group = parser.add_argument_group("data")
    if task == "classification":
        source_help = (
            "'digits' (scikit-learn handwritten digits, offline), an image folder (class sub-folders, or images "
            "with metadata.jsonl for multi-label), or a datasets.save_to_disk directory"
        )
    else:
        source_help = "a folder with images/ and masks/ (or train/ and validation/ holding them), or a saved dataset"
    group.add_argument("--dataset", "--data-dir", dest="dataset", required=True, help=source_help)
    group.add_argument("--image-column", default="image")
    group.add_argument("--label-column", default=None, help="default: label/labels (annotation for segmentation)")
    group.add_argument("--validation-fraction", type=float, default=0.1, help="held out when there is no val split")
    group.add_argument("--max-train-samples", type=int, default=None)
    group.add_argument("--max-eval-samples", type=int, default=None)
    if task == "segmentation":
        group.add_argument("--num-labels", type=int, default=None, help="default: id2label.json or the masks")
        group.add_argument("--reduce-labels", action="store_true", help="mask 0 -> ignore, k -> k-1 (ADE20k)")
        group.add_argument("--ignore-index", type=int, default=255)


def _add_model_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument("--init-from", default=None, help="saved BEiT model dir (MIM, classification, segmentation)")
    group.add_argument("--config", default="tiny", help="from scratch: 'tiny', a preset name or a config.json")
    group.add_argument("--image-size", type=int, default=None, help="default: the config's image_size")
    group.add_argument("--drop-path", type=below_one, default=0.1)
    group.add_argument("--head-init-scale", type=float, default=0.001, help="unilm init_scale of a new head")


def _add_optimisation_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("optimisation (unilm defaults)")
    group.add_argument("--epochs", type=positive_float, default=30.0)
    group.add_argument("--max-steps", type=int, default=-1, help="overrides --epochs when > 0")
    group.add_argument("--batch-size", type=positive_int, default=64, help="per process")
    group.add_argument("--eval-batch-size", type=positive_int, default=None)
    group.add_argument("--gradient-accumulation-steps", type=positive_int, default=1)
    group.add_argument("--lr", type=positive_float, default=5e-4, dest="learning_rate")
    group.add_argument("--min-lr", type=non_negative_float, default=1e-6, dest="min_learning_rate")
    group.add_argument("--weight-decay", type=float, default=0.05)
    group.add_argument("--layer-decay", type=float, default=0.9)
    group.add_argument(
        "--no-weight-decay-on-relative-tables",
        dest="decay_relative_position_tables",
        action="store_false",
        help="unilm --disable_weight_decay_on_rel_pos_bias",
    )
    group.add_argument("--warmup", type=non_negative_float, default=0.1,
                       help="steps (>= 1) or fraction of training (< 1)")
    group.add_argument("--clip-grad", type=float, default=None)
    group.add_argument("--label-smoothing", type=below_one, default=0.1)
    group.add_argument("--mixup", type=non_negative_float, default=0.0, help="mixup alpha (0 = off)")
    group.add_argument("--cutmix", type=non_negative_float, default=0.0, help="cutmix alpha (0 = off)")
    group.add_argument("--bf16", action="store_true", help="bf16 autocast (also on CPU)")


def _add_augment_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = AugmentConfig()
    group = parser.add_argument_group("augmentation")
    group.add_argument("--crop-scale", type=float, nargs=2, default=defaults.crop_scale, metavar=("MIN", "MAX"))
    group.add_argument("--hflip", type=float, default=defaults.hflip, help="probability")
    group.add_argument(
        "--rand-augment", type=int, nargs=2, default=defaults.rand_augment, metavar=("NUM_OPS", "MAGNITUDE")
    )
    group.add_argument("--no-rand-augment", dest="rand_augment", action="store_const", const=None)
    group.add_argument("--color-jitter", type=float, default=defaults.color_jitter)
    group.add_argument("--random-erasing", type=float, default=defaults.random_erasing, help="probability")


def _add_run_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("run")
    group.add_argument("--output-dir", required=True)
    group.add_argument("--eval-steps", type=positive_int, default=None,
                       help="evaluate/save every N steps (default: epochs)")
    group.add_argument("--logging-steps", type=positive_int, default=10)
    group.add_argument("--save-total-limit", type=int, default=2, help="the best checkpoint is always kept")
    group.add_argument("--seed", type=int, default=42)
    group.add_argument("--num-workers", type=non_negative_int, default=0)
    group.add_argument("--num-threads", type=positive_int, default=None, help="torch intra-op threads per process")
    group.add_argument(
        "--resume", nargs="?", const="latest", default=None, help="resume from a checkpoint dir (default: latest)"
    )
    group.add_argument("--overwrite", action="store_true",
                       help="start a new run in a non-empty --output-dir (removes the previous run's outputs)")
    group.add_argument("--no-progress", dest="disable_tqdm", action="store_true")
    group.add_argument("--report-to", nargs="+", default=["none"], metavar="INTEGRATION",
                       help="transformers' logging integrations: tensorboard, wandb, mlflow, ... ('all', 'none')")
    group.add_argument("--push-to-hub", default=None, metavar="REPO_ID",
                       help="after training, upload <output-dir>/model (with its model card) to this Hub repo")
    group.add_argument("--hub-endpoint", default=None, help="Hub endpoint (default $HF_ENDPOINT or huggingface.co)")


def _run(args: argparse.Namespace) -> int:
    import torch

    from .recipes import FinetuneArguments, run_finetuning

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    augment = AugmentConfig(
        crop_scale=tuple(args.crop_scale),
        hflip=args.hflip,
        rand_augment=tuple(args.rand_augment) if args.rand_augment else None,
        color_jitter=args.color_jitter,
        random_erasing=args.random_erasing,
    )
    skip = {"command", "train_command", "func", "num_threads", "crop_scale", "hflip", "rand_augment"}
    skip |= {"color_jitter", "random_erasing"}
    values = {k: v for k, v in vars(args).items() if k not in skip}
    metrics = run_finetuning(FinetuneArguments(augment=augment, **values))
    summary = ", ".join(f"{k}={v:.4f}" for k, v in metrics.items() if isinstance(v, float) and k.startswith("eval_"))
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"Best model saved to {args.output_dir}/model ({summary})")
        if args.push_to_hub:
            print(f"Pushed to {args.push_to_hub}")
    return 0


def add_parser(subparsers) -> None:
    """Register ``train classification`` and ``train segmentation``."""
    train = subparsers.add_parser("train", help="fine-tune or train BEiT with transformers.Trainer")
    tasks = train.add_subparsers(dest="train_command", required=True)
    for task, help_text in (
        ("classification", "image classification (single- or multi-label)"),
        ("segmentation", "semantic segmentation (UPerNet head)"),
    ):
        parser = tasks.add_parser(task, help=help_text, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        _add_data_arguments(parser, task)
        _add_model_arguments(parser)
        _add_optimisation_arguments(parser)
        _add_augment_arguments(parser)
        _add_run_arguments(parser)
        parser.set_defaults(func=guarded(_run, name=f"train {task}", interrupted=INTERRUPTED), task=task)
