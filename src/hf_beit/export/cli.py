"""``hf-beit export MODEL_DIR OUTPUT``: an ONNX file or a ``torch.export`` program (.pt2), checked against PyTorch."""

from __future__ import annotations

import argparse

from ..command_errors import guarded

FORMATS = ("onnx", "torch-export")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``export`` sub-command."""
    parser = subparsers.add_parser(
        "export", help="export a model to ONNX or torch.export (classification, embeddings, segmentation)"
    )
    parser.add_argument("model", metavar="MODEL_DIR", help="local model repository (folder written by save_pretrained)")
    parser.add_argument("output", metavar="OUTPUT", help="file to write (.onnx, or .pt2 for torch-export)")
    parser.add_argument("--format", choices=FORMATS, default="onnx")
    parser.add_argument("--task", default=None,
                        help="image-classification, image-segmentation or image-feature-extraction "
                             "(default: from the repository's config.json architectures)")
    parser.add_argument("--batch", default="dynamic", type=_batch, help="'dynamic' (default) or a fixed batch size")
    parser.add_argument("--image-size", nargs="+", default=None, metavar="SIZE",
                        help="fixed HEIGHT [WIDTH] (default: the config's image_size), or 'dynamic' "
                             "(models without relative-position tables)")
    parser.add_argument("--outputs", nargs="+", default=None, metavar="NAME",
                        help="image-feature-extraction: last_hidden_state and/or pooler_output (default: both)")
    parser.add_argument("--opset", type=int, default=None, help="ONNX opset (default: the exporter's, 20)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing OUTPUT")
    parser.add_argument("--no-verify", action="store_true",
                        help="skip running the exported model against PyTorch on random inputs")
    parser.set_defaults(func=guarded(_run, interrupted="nothing was written."))


def _run(args: argparse.Namespace) -> int:
    from pathlib import Path

    output = Path(args.output)
    if output.exists() and not args.overwrite:
        raise FileExistsError(f"{str(output)!r} exists; pass --overwrite to replace it.")
    from ..inference._loading import load_model
    from .program import trace_for_export
    from .tasks import check_task

    repo_task = _task_from_repo(args.model)
    task = check_task(args.task) if args.task else repo_task
    if task is None:
        raise ValueError(f"Cannot tell the task from {args.model}/config.json (architectures); pass --task "
                         "image-classification, image-segmentation or image-feature-extraction.")
    model = load_model(args.model, repo_task or task)  # feature extraction exports the encoder of any task model
    traced = trace_for_export(model, task, batch=args.batch, image_size=_image_size(args.image_size),
                              outputs=args.outputs)
    run_exported = _write(traced, output, args)
    shapes = traced.input_spec.describe()
    print(f"Wrote {output} ({args.format}): {task}, pixel_values {shapes} -> {', '.join(traced.output_names)}")
    if not args.no_verify:
        from .tasks import TaskOutputs, task_module
        from .verify import check_inputs, max_differences

        eager = TaskOutputs(task_module(model, task), traced.output_names).eval()
        worst = max_differences(eager, run_exported, check_inputs(traced.input_spec))
        report = ", ".join(f"{name} {value:.1e}" for name, value in worst.items())
        print(f"max |{args.format} - PyTorch| on random inputs: {report}")
    return 0


def _write(traced, output, args: argparse.Namespace):
    """Save in the chosen format; returns a callable running the saved model (for verification)."""
    if args.format == "onnx":
        from .onnx_export import write_onnx
        from .runner import OnnxRunner

        write_onnx(traced, output, opset=args.opset)
        return OnnxRunner(output) if not args.no_verify else None
    import torch

    from ..atomic_io import atomic_file

    with atomic_file(output) as tmp:
        torch.export.save(traced.program, tmp)
    module = torch.export.load(output).module() if not args.no_verify else None
    return (lambda pixel_values: module(pixel_values=pixel_values)) if module is not None else None


def _task_from_repo(path: str) -> str | None:
    """The task of the class named in the repository's ``config.json`` ``architectures`` (None if not one)."""
    from ..configuration_beit import BeitConfig
    from ..inference._loading import TASKS, check_local_repo, model_class_for_task

    architectures = BeitConfig.from_pretrained(str(check_local_repo(path))).architectures or []
    return next((task for task in TASKS if model_class_for_task(task).__name__ in architectures), None)


def _batch(value: str) -> int | str:
    if value == "dynamic":
        return value
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'dynamic' or an integer, got {value!r}") from None


def _image_size(values: list[str] | None) -> tuple[int, int] | str | None:
    if values is None:
        return None
    if values == ["dynamic"]:
        return "dynamic"
    if len(values) not in (1, 2) or not all(v.isdigit() for v in values):
        raise ValueError(f"--image-size takes HEIGHT [WIDTH] or 'dynamic'; got {' '.join(values)}.")
    return int(values[0]), int(values[-1])
