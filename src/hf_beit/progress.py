"""``--quiet`` for the output that is not hf_beit's own: transformers' weight loading and saving bars and its
loading reports.

hf_beit's bars are tqdm with a ``progress=`` flag; transformers draws its own while a model is loaded or saved, and
logs a "LOAD REPORT" warning table when a checkpoint's keys and the model's differ (e.g. a pre-trained encoder
loaded under a new head). hf_beit checks the keys that matter itself (a missing head is an error), so a quiet
command shows neither.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def transformers_quiet(quiet: bool = True) -> Iterator[None]:
    """With ``quiet``, hide transformers' progress bars and its warnings (errors still show) inside the block, and
    restore both settings after it."""
    if not quiet:
        yield
        return
    from transformers.utils import logging

    enabled, verbosity = logging.is_progress_bar_enabled(), logging.get_verbosity()
    logging.disable_progress_bar()
    logging.set_verbosity_error()
    try:
        yield
    finally:
        logging.set_verbosity(verbosity)
        if enabled:
            logging.enable_progress_bar()


def quiet_command(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """The sub-command ``run`` with :func:`transformers_quiet` applied under its ``--quiet`` flag."""

    def command(args: argparse.Namespace) -> int:
        with transformers_quiet(args.quiet):
            return run(args)

    return command
