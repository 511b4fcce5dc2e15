"""``--quiet`` for the progress bars that are not hf_beit's own: transformers' weight loading and saving bars.

hf_beit's bars are tqdm with a ``progress=`` flag; transformers draws its own while a model is loaded or saved.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def transformers_bars_off(quiet: bool = True) -> Iterator[None]:
    """With ``quiet``, hide transformers' progress bars inside the block and restore their setting after it."""
    if not quiet:
        yield
        return
    from transformers.utils import logging

    enabled = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            logging.enable_progress_bar()
