"""``hf-beit evaluate MODEL DATA``: metrics as JSON (stdout and ``--output``) and pictures."""

from __future__ import annotations

import argparse
import json

from ..cli_types import positive_int
from ..command_errors import guarded


def add_parser(subparsers) -> None:
    """Register ``hf-beit evaluate``."""
    parser = subparsers.add_parser(
        "evaluate", help="measure a classification or segmentation model on a labelled dataset (JSON + pictures)"
    )
    parser.add_argument("model", metavar="MODEL", help="model folder or Hub id")
    parser.add_argument("data", metavar="DATA",
                        help="'digits', an image folder, a mask folder, a saved dataset or a Hub dataset id")
    parser.add_argument("--split", default=None, help="split to score (default: test, else validation, else train)")
    parser.add_argument("--output", default=None, help="folder for metrics.json and the pictures (written atomically)")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty --output folder")
    parser.add_argument("--batch-size", type=positive_int, default=16)
    parser.add_argument("--label-column", default=None, help="default: label/labels (annotation for segmentation)")
    parser.add_argument("--threshold", type=float, default=0.5, help="multi-label: probability that predicts a class")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    parser.set_defaults(func=guarded(_run, interrupted="nothing was written."))


def _run(args: argparse.Namespace) -> int:
    from .run import evaluate_model

    result = evaluate_model(
        args.model, args.data, output_dir=args.output, split=args.split, batch_size=args.batch_size,
        label_column=args.label_column, threshold=args.threshold, overwrite=args.overwrite, progress=args.progress,
    )  # fmt: skip
    summary = {key: value for key, value in result.metrics.items() if not isinstance(value, (list, dict))}
    print(json.dumps(summary, indent=2))
    for picture in result.pictures:
        print(f"wrote {picture}")
    return 0
