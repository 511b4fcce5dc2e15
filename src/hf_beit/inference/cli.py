"""``hf-beit predict``, ``hf-beit segment`` and ``hf-beit serve``."""

from __future__ import annotations

import argparse
import sys

from ..cli_types import positive_int
from ..command_errors import guarded
from ..export.engine_names import ENGINE_PRECISIONS, ENGINES
from ..progress import quiet_command


def _size(values: list[int] | None) -> tuple[int, int] | None:
    if values is None:
        return None
    if len(values) not in (1, 2):
        raise ValueError(f"Expected HEIGHT [WIDTH]; got {len(values)} numbers.")
    return (values[0], values[-1])


def _run_predict(args: argparse.Namespace) -> int:
    from ..atomic_io import check_output_folder
    from ._images import expand_image_paths
    from ._loading import load_image_processor, load_model
    from .predict import check_report_target, failures, format_predictions, predict_images, write_report

    paths = expand_image_paths(args.images, recursive=args.recursive)
    to_file = args.output not in (None, "-")
    if to_file:
        check_report_target(args.output, paths)
    if args.figures is not None:
        check_output_folder(args.figures, overwrite=args.overwrite)
    model = load_model(args.model, "image-classification", device=args.device)
    processor = load_image_processor(args.model)
    if args.engine != "pytorch":
        model = _engine_model(model, processor, paths, args)
    elif args.precision != "fp32":
        from ..acceleration import optimize_for_inference

        optimize_for_inference(model, args.precision)
    results = predict_images(model, processor, paths, batch_size=args.batch_size, top_k=args.top_k,
                             threshold=args.threshold, progress=not args.quiet, figures=args.figures,
                             overwrite=args.overwrite)
    failed = [(r["image"], r["error"]) for r in failures(results)]
    if args.skip_errors:
        if len(failed) == len(results):
            raise ValueError(f"None of the {len(results)} images could be read; no report was written. First: "
                             f"{failed[0][1]}")
        results = [r for r in results if "error" not in r]
    text = format_predictions(results, args.format)
    if to_file:
        write_report(text, args.output, paths)
    else:
        sys.stdout.write(text)
    if args.skip_errors:
        _report_failures(args.command, failed, len(paths), "they were left out of the results (--skip-errors)")
        return 0
    return _report_failures(args.command, failed, len(paths), "each has an error entry, the others were classified")


def _report_failures(command: str, failed: list[tuple[str, str]], total: int,
                     outcome: str = "the others were written") -> int:
    """Name every image that could not be processed (stderr); exit code 1 if there is one, else 0."""
    for _, message in failed:
        print(f"hf-beit {command}: {message}", file=sys.stderr)
    if failed and len(failed) == total:
        print(f"hf-beit {command}: none of the {total} images could be processed (listed above).", file=sys.stderr)
    elif failed:
        print(f"hf-beit {command}: {len(failed)} of {total} images failed (listed above); {outcome}.", file=sys.stderr)
    return 1 if failed else 0


CALIBRATION_IMAGES = 32


def _engine_model(model, processor, paths, args: argparse.Namespace):
    """``--engine``: the model compiled by OpenVINO / ONNX Runtime / inductor (OpenVINO int8 calibrated on the first
    ``CALIBRATION_IMAGES`` readable images; the unreadable ones get their error entries when classified). With no
    readable image there is nothing to calibrate or classify: the model is left as it is and every image gets its
    error entry, as with the other engines."""
    from ..export import compile_for_engine

    calibration = None
    if args.precision == "int8" and args.engine == "openvino":
        images = _readable_images(paths, CALIBRATION_IMAGES)
        if not images:
            return model
        calibration = processor(images=images, return_tensors="pt")["pixel_values"]
    return compile_for_engine(model, args.engine, args.precision, calibration=calibration, progress=not args.quiet)


def _readable_images(paths, count: int) -> list:
    """The first ``count`` of ``paths`` that open as images (the others are skipped here)."""
    from ..image_errors import InvalidImageError
    from ._images import open_rgb

    images = []
    for path in paths:
        if len(images) == count:
            break
        try:
            images.append(open_rgb(path))
        except InvalidImageError:
            continue
    return images


def _run_segment(args: argparse.Namespace) -> int:
    from ._images import expand_image_paths
    from ._loading import load_image_processor, load_model
    from .segment import segment_files

    paths = expand_image_paths(args.images, recursive=args.recursive)
    model = load_model(args.model, "image-segmentation", device=args.device)
    processor = load_image_processor(args.model)
    resize_scale = None if args.no_resize else (tuple(args.resize_scale) if args.resize_scale else "auto")
    report = segment_files(model, processor, paths, args.output, overwrite=args.overwrite, progress=not args.quiet,
                           crop_size=_size(args.crop), stride=_size(args.stride), resize_scale=resize_scale,
                           window_batch_size=args.batch_size, tta_scales=args.tta, legend=not args.no_legend,
                           palette_mask=args.palette_mask)
    print(f"Wrote {len(report.written)} masks and overlays to {args.output}", file=sys.stderr)
    return _report_failures(args.command, report.failed, len(paths))


def _run_serve(args: argparse.Namespace) -> int:
    from ._loading import load_image_processor, load_model
    from .server import create_app
    from .server.options import limits_from_args, serve, url_policy_from_args

    limits = limits_from_args(args)
    policy = url_policy_from_args(args)
    model = load_model(args.model, "image-classification", device=args.device)
    app = create_app(model, load_image_processor(args.model), limits=limits, url_policy=policy, top_k=args.top_k,
                     max_batch_size=args.max_batch_size, max_wait_ms=args.max_wait_ms)
    serve(app, limits, host=args.host, port=args.port, log_level=args.log_level)
    return 0


def _add_common(parser: argparse.ArgumentParser, with_images: bool = True) -> None:
    parser.add_argument("model", help="local model repository (folder written by save_pretrained)")
    if with_images:
        parser.add_argument("images", nargs="+", help="image files, folders and glob patterns (quote globs)")
        parser.add_argument("--recursive", action="store_true", help="also take images from sub-folders")
        parser.add_argument("--quiet", action="store_true", help="no progress bars, no transformers warnings")
    parser.add_argument("--device", default="cpu", help="torch device")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``predict``, ``segment`` and ``serve`` sub-commands."""
    from .server.options import add_limit_arguments

    predict = subparsers.add_parser("predict", help="classify images (top-k labels; JSON or CSV)")
    _add_common(predict)
    predict.add_argument("--batch-size", type=positive_int, default=8)
    predict.add_argument("--top-k", type=int, default=None,
                         help="labels per image (default 5; multi-label models: all above --threshold)")
    predict.add_argument("--threshold", type=float, default=0.5, help="multi-label models: minimum sigmoid score")
    predict.add_argument("--format", choices=("json", "csv"), default="json")
    predict.add_argument("--output", default=None, help="output file (default: stdout)")
    predict.add_argument("--figures", default=None, metavar="DIR",
                         help="also write one PNG per image into this folder (atomically): the image as the model saw "
                              "it beside a bar chart of its predicted classes (default: none)")
    predict.add_argument("--overwrite", action="store_true", help="replace a non-empty --figures folder")
    predict.add_argument("--skip-errors", action="store_true",
                         help="leave unreadable images out of the results and exit 0 (they are still named on stderr; "
                              "default: each gets an error entry and the exit code is 1)")
    predict.add_argument("--engine", choices=("pytorch", *ENGINES), default="pytorch",
                         help="run the model in PyTorch (hf_beit's kernels) or compiled by an inference engine "
                              "(openvino: fp32/bf16/int8, extra openvino; onnxruntime: fp32/int8, extra export; "
                              "inductor: torch.compile, fp32/bf16, compiled once per batch size)")
    predict.add_argument("--precision", choices=ENGINE_PRECISIONS, default="fp32",
                         help="inference precision (PyTorch: optimize_for_inference; engines: compile_for_engine; "
                              f"int8 on OpenVINO is calibrated on the first {CALIBRATION_IMAGES} readable images)")
    predict.set_defaults(func=guarded(quiet_command(_run_predict)))

    segment = subparsers.add_parser("segment", help="semantic segmentation: class-id mask + overlay PNG per image")
    _add_common(segment)
    segment.add_argument("--output", required=True, help="output folder (written atomically)")
    segment.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder")
    segment.add_argument("--crop", type=int, nargs="+", metavar="SIZE",
                         help="window HEIGHT [WIDTH] (default: the model's image_size, e.g. 640)")
    segment.add_argument("--stride", type=int, nargs="+", metavar="SIZE",
                         help="window step HEIGHT [WIDTH] (default: 2/3 of the crop, e.g. 426)")
    segment.add_argument("--resize-scale", type=int, nargs=2, metavar=("LONG", "SHORT"),
                         help="keep-ratio resize to fit LONG x SHORT first (default: 4*crop x crop, e.g. 2560 640)")
    segment.add_argument("--no-resize", action="store_true", help="slide over the image at its own size")
    segment.add_argument("--batch-size", type=positive_int, default=4, help="windows per forward pass")
    segment.add_argument("--no-legend", action="store_true",
                         help="overlays without the legend panel (the classes present, in their colours): the blend "
                              "alone, at the image's size")
    segment.add_argument("--palette-mask", action="store_true",
                         help="write masks as palette PNGs: the same class ids as pixel values, shown in the overlay "
                              "colours (at most 256 classes; default: greyscale class ids)")
    segment.add_argument("--tta", type=float, nargs="*", metavar="RATIO",
                         help="multi-scale + flip test-time augmentation as mmseg's aug_test, over these ratios of the "
                              "resize scale (no value: 0.5 0.75 1.0 1.25 1.5 1.75); averages softmax probabilities")
    segment.set_defaults(func=guarded(quiet_command(_run_segment)))

    serve = subparsers.add_parser("serve", help="HTTP scoring endpoint (Azure ML online-endpoint format)")
    _add_common(serve, with_images=False)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--allow-url-host", action="append", default=[], metavar="HOST",
                       help="allow fetching image URLs from HOST (repeatable; default: URLs refused)")
    add_limit_arguments(serve)
    serve.add_argument("--max-batch-size", type=int, default=16, help="images per forward pass")
    serve.add_argument("--max-wait-ms", type=float, default=5.0, help="time to gather concurrent requests")
    serve.add_argument("--top-k", type=int, default=None, help="return only the K best labels (default: all)")
    serve.add_argument("--log-level", default="info")
    serve.set_defaults(func=guarded(_run_serve))
