"""How every ``hf-beit`` sub-command reports a user's mistake: one line on stderr and exit code 2, no traceback."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

#: Errors that mean "the input or the options are wrong" (bad paths, existing outputs, invalid values, a missing
#: optional package); anything else is a bug and keeps its traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (
    FileNotFoundError,
    FileExistsError,
    IsADirectoryError,
    NotADirectoryError,
    PermissionError,
    ValueError,
    ModuleNotFoundError,
)


def guarded(
    run: Callable[[argparse.Namespace], int], interrupted: str = "no partial output was written."
) -> Callable[[argparse.Namespace], int]:
    """Wrap a sub-command: user errors print ``hf-beit <command>: error: ...`` and return 2, Ctrl-C returns 130."""

    def command(args: argparse.Namespace) -> int:
        try:
            return run(args)
        except USER_ERRORS as error:
            print(f"hf-beit {args.command}: error: {error}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print(f"hf-beit {args.command}: interrupted; {interrupted}", file=sys.stderr)
            return 130

    return command
