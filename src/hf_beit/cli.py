"""`hf-beit` command line: one sub-command family per module, each exposing ``add_parser(subparsers)``."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from .command_errors import run_command

# Each module defines `add_parser(subparsers)` which registers its sub-commands and sets `func` on them.
_COMMAND_MODULES = (
    "hf_beit.demo",
    "hf_beit.training.cli",
    "hf_beit.pretraining.cli",
    "hf_beit.inference.cli",
    "hf_beit.conversion.cli",
    "hf_beit.probing.cli",
    "hf_beit.export.cli",
    "hf_beit.evaluation.cli",
)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Every option's default in ``--help`` (options without help text too); descriptions keep their line breaks."""

    def _format_action(self, action: argparse.Action) -> str:
        if not action.help and self._has_default(action):
            action.help = "(default: %(default)s)"
        return super()._format_action(action)

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "%(default)" in text or not self._has_default(action):
            return text  # no "(default: None)" / "(default: False)" noise
        return f"{text} (default: %(default)s)"

    @staticmethod
    def _has_default(action: argparse.Action) -> bool:
        flag = action.nargs == 0  # store_true/false/const: "(default: True)" on --no-progress would mislead
        return bool(action.option_strings) and not flag and action.default not in (None, False, argparse.SUPPRESS)


class _SubParsers(argparse._SubParsersAction):
    """Sub-commands get :class:`HelpFormatter` unless they choose another."""

    def add_parser(self, name, **kwargs):
        if kwargs.get("formatter_class") in (
            None,
            argparse.RawDescriptionHelpFormatter,
            argparse.ArgumentDefaultsHelpFormatter,
        ):
            kwargs["formatter_class"] = HelpFormatter
        parser = super().add_parser(name, **kwargs)
        parser.register("action", "parsers", _SubParsers)  # nested sub-commands (train classification) too
        return parser


def build_parser() -> argparse.ArgumentParser:
    """The ``hf-beit`` parser; building it imports no torch or transformers (``hf-beit --help`` stays fast)."""
    from . import __version__

    parser = argparse.ArgumentParser(prog="hf-beit", description="BEiT for Hugging Face Transformers.")
    parser.add_argument("--version", action="version", version=f"hf-beit {__version__}")
    parser.register("action", "parsers", _SubParsers)
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


def _hide_dependency_notices() -> None:
    """torchao 0.18 (installed with the test extra) registers two Enums with torch's pytree on import, and torch 2.14
    logs a deprecation warning for each: nothing a user of the command can act on."""
    logging.getLogger("torch.utils._pytree").addFilter(_not_an_enum_notice)  # the same filter is added only once


def _not_an_enum_notice(record: logging.LogRecord) -> bool:
    return "is an Enum subclass" not in record.getMessage()


def main(argv: list[str] | None = None) -> int:
    _hide_dependency_notices()
    args = build_parser().parse_args(argv)
    return run_command(args.command, args.func, args)  # user errors: a message and exit code 2, no traceback


if __name__ == "__main__":
    sys.exit(main())
