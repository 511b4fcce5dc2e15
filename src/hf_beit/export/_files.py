"""Exported files appear complete or not at all, with the usual permissions of a new file."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from ..atomic_io import atomic_file


@contextlib.contextmanager
def exported_file(path: str | os.PathLike) -> Iterator[Path]:
    """``atomic_file`` whose result is readable like any new file (``0o666 & ~umask``, not mkstemp's 0600)."""
    with atomic_file(path) as tmp:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
