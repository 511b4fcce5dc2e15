"""How every ``hf-beit`` command ends on a user mistake: one message on stderr and exit code 2, never a traceback.

User mistakes are ``OSError`` (missing files, permissions, an output that exists or is being written, a full disk),
``ValueError`` (bad arguments or data: ``DataError``, ``InvalidImageError``, ``ConversionError``, ...) and
``ModuleNotFoundError`` (an optional extra that is not installed). ``KeyboardInterrupt`` ends with exit code 130;
outputs are atomic, so nothing half-written is left. ``HF_BEIT_TRACEBACK=1`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
from collections.abc import Callable

USER_ERRORS: tuple[type[BaseException], ...] = (OSError, ValueError, ModuleNotFoundError)
EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130

Command = Callable[[argparse.Namespace], "int | None"]


def run_command(name: str, func: Command, args: argparse.Namespace,
                interrupted: str = "no partial output was written.") -> int:
    """Run one command, turning user errors and Ctrl-C into a message and an exit code."""
    try:
        return int(func(args) or 0)
    except USER_ERRORS as error:
        if os.environ.get("HF_BEIT_TRACEBACK"):
            raise
        print(f"hf-beit {name}: error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print(f"hf-beit {name}: interrupted; {interrupted}", file=sys.stderr)
        return EXIT_INTERRUPTED


def guarded(func: Command, name: str | None = None,
            interrupted: str = "no partial output was written.") -> Callable[[argparse.Namespace], int]:
    """``func`` wrapped by :func:`run_command` (for ``parser.set_defaults(func=...)``); ``name`` defaults to the
    sub-command's name."""

    @functools.wraps(func)
    def command(args: argparse.Namespace) -> int:
        return run_command(name or args.command, func, args, interrupted)

    return command
