"""Command line of the converter (``python conversion/convert_unilm_to_hf.py`` / ``hf-beit convert``)."""

from __future__ import annotations

import argparse

from ..cli_types import positive_int
from ..command_errors import guarded


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--checkpoint", required=True,
        help="original .pth/.pt file (unilm, DeepSpeed or mmseg), or a transformers repo folder (data2vec-vision)",
    )
    parser.add_argument("--output", required=True, help="directory to write (created atomically)")
    parser.add_argument("--model-name", help="registry entry, e.g. beit_base_patch16_224_pt22k_ft22kto1k")
    parser.add_argument(
        "--task", choices=("mim", "classification", "segmentation"), help="target task (default: the checkpoint's own)"
    )
    parser.add_argument("--image-size", type=positive_int, help="target resolution; position tables are resized")
    parser.add_argument("--num-labels", type=positive_int, help="size of a new classification/segmentation head")
    parser.add_argument("--num-heads", type=positive_int,
                        help="attention heads (only for checkpoints without relative bias)")
    parser.add_argument(
        "--cls-pretraining-head", choices=("keep", "drop"), default="keep",
        help="BEiT v2 pre-training checkpoints: write the CLS-pretraining head to cls_pretraining_head.safetensors "
        "(keep, default) or leave it out (drop)",
    )
    parser.add_argument(
        "--cls-head-early-layers", type=int, metavar="N",
        help="block feeding the CLS-pretraining head (BEiT v2: 9 base, 21 large; the registry entry gives it)",
    )
    parser.add_argument("--use-ema", action="store_true", help="take the 'model_ema' weights")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty output directory")
    parser.add_argument("--no-verify", dest="verify", action="store_false", help="skip loading the written repo")
    parser.add_argument("--push-to-hub", metavar="REPO_ID", help="create REPO_ID and upload the folder")
    parser.add_argument("--hub-endpoint", help="Hub endpoint (default $HF_ENDPOINT or huggingface.co)")


# convert_checkpoint keyword -> command-line option (argparse attribute)
_OPTIONS = {
    "model_name": "model_name",
    "task": "task",
    "image_size": "image_size",
    "num_labels": "num_labels",
    "num_attention_heads": "num_heads",
    "cls_pretraining_head": "cls_pretraining_head",
    "cls_head_early_layers": "cls_head_early_layers",
    "use_ema": "use_ema",
    "overwrite": "overwrite",
    "verify": "verify",
    "push_to_hub": "push_to_hub",
    "hub_endpoint": "hub_endpoint",
}


def _run(args: argparse.Namespace) -> int:
    from .convert import convert_checkpoint

    options = {keyword: getattr(args, attribute) for keyword, attribute in _OPTIONS.items()}
    result = convert_checkpoint(args.checkpoint, args.output, **options)
    print(f"Wrote {result.output} ({result.task}, image size {result.config.image_size}).")
    return 0


run = guarded(_run, interrupted="nothing was written.")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Convert an original BEiT checkpoint into a Hugging Face repo.")
    _add_arguments(parser)
    return parser


def add_parser(subparsers) -> None:
    """Register ``hf-beit convert``."""
    parser = subparsers.add_parser("convert", help="convert an original unilm/mmseg BEiT checkpoint")
    _add_arguments(parser)
    parser.set_defaults(func=run)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.command = "convert"
    return run(args)
