"""How ``hf-beit`` commands end on a user mistake: a message on stderr and exit code 2, never a traceback.

User mistakes are ``OSError`` (missing files, permissions, an output that exists, a full disk) and ``ValueError``
(bad arguments, bad data: ``DataError``, ``InvalidImageError``, ``ConversionError``, ``WrongTaskError`` ...).
``KeyboardInterrupt`` ends with exit code 130; outputs are atomic, so nothing half-written is left. Set
``HF_BEIT_TRACEBACK=1`` to see the traceback instead.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
from collections.abc import Callable

USER_ERRORS: tuple[type[BaseException], ...] = (OSError, ValueError)
EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130

Command = Callable[[argparse.Namespace], int | None]


def run_command(name: str, func: Command, args: argparse.Namespace) -> int:
    """Run one command, turning user errors and interrupts into a message and an exit code."""
    try:
        return int(func(args) or 0)
    except USER_ERRORS as error:
        if os.environ.get("HF_BEIT_TRACEBACK"):
            raise
        print(f"hf-beit {name}: error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print(f"hf-beit {name}: interrupted; no partial output was written.", file=sys.stderr)
        return EXIT_INTERRUPTED


def guarded(name: str, func: Command) -> Callable[[argparse.Namespace], int]:
    """``func`` wrapped by :func:`run_command` (for ``parser.set_defaults(func=...)``)."""
    return functools.wraps(func)(lambda args: run_command(name, func, args))
