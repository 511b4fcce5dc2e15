"""`hf-beit` command line: one sub-command family per module, each exposing ``add_parser(subparsers)``."""

from __future__ import annotations

import argparse
import importlib
import sys

from .cli_errors import run_command

# Each module defines `add_parser(subparsers)` which registers its sub-commands and sets `func` on them.
_COMMAND_MODULES = (
    "hf_beit.demo",
    "hf_beit.training.cli",
    "hf_beit.pretraining.cli",
    "hf_beit.inference.cli",
    "hf_beit.conversion.cli",
    "hf_beit.export.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hf-beit", description="BEiT for Hugging Face Transformers.")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module_name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name != module_name:
                raise
            continue  # sub-command family not installed in this build
        module.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(args.command, args.func, args)  # user errors: a message and exit code 2, no traceback


if __name__ == "__main__":
    sys.exit(main())
