"""Command line of the converter (``python conversion/convert_unilm_to_hf.py`` / ``hf-beit convert``)."""

from __future__ import annotations

import argparse
import sys

from .errors import ConversionError


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="original .pth/.pt file (unilm, DeepSpeed or mmseg)")
    parser.add_argument("--output", required=True, help="directory to write (created atomically)")
    parser.add_argument("--model-name", help="registry entry, e.g. beit_base_patch16_224_pt22k_ft22kto1k")
    parser.add_argument(
        "--task", choices=("mim", "classification", "segmentation"), help="target task (default: the checkpoint's own)"
    )
    parser.add_argument("--image-size", type=int, help="target resolution; position tables are resized")
    parser.add_argument("--num-labels", type=int, help="size of a new classification/segmentation head")
    parser.add_argument("--num-heads", type=int, help="attention heads (only for checkpoints without relative bias)")
    parser.add_argument("--use-ema", action="store_true", help="take the 'model_ema' weights")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty output directory")
    parser.add_argument("--no-verify", dest="verify", action="store_false", help="skip loading the written repo")
    parser.add_argument("--push-to-hub", metavar="REPO_ID", help="create REPO_ID and upload the folder")
    parser.add_argument("--hub-endpoint", help="Hub endpoint (default $HF_ENDPOINT or huggingface.co)")


def run(args: argparse.Namespace) -> int:
    from .convert import convert_checkpoint

    try:
        result = convert_checkpoint(
            args.checkpoint,
            args.output,
            model_name=args.model_name,
            task=args.task,
            image_size=args.image_size,
            num_labels=args.num_labels,
            num_attention_heads=args.num_heads,
            use_ema=args.use_ema,
            overwrite=args.overwrite,
            verify=args.verify,
            push_to_hub=args.push_to_hub,
            hub_endpoint=args.hub_endpoint,
        )
    except (ConversionError, OSError) as error:  # OSError: OutputExistsError, permissions, a full disk ...
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; nothing was written", file=sys.stderr)
        return 130
    print(f"Wrote {result.output} ({result.task}, image size {result.config.image_size}).")
    return 0


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
    return run(build_parser().parse_args(argv))
