"""Giving freed request memory back to the operating system (glibc), so bursts do not ratchet the server's RSS up.

The admission budget bounds the request data *alive* at once, but glibc keeps what was freed: in per-thread arenas
(memory freed in one cannot serve another) and below the top of each heap. Measured with
``benchmarks/bench_server_load.py`` (no pending limit, 768 MiB budget): the resting RSS after bursts rose from 0.9 to
1.9 GiB and the peak reached 2.05 GiB; with at most 2 arenas and ``malloc_trim(0)`` once a second after releases the
resting RSS went back to ~1.0 GiB and peaks stayed near 1.6 GiB. Elsewhere than glibc both are no-ops.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import threading
from collections.abc import Callable
from typing import Any

_M_ARENA_MAX = -8


@functools.cache
def _libc() -> Any:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt") else None


def limit_arenas(arenas: int = 2) -> bool:
    """Cap glibc's malloc arenas (default 8 per core); ``False`` where that is not glibc."""
    libc = _libc()
    return bool(libc and libc.mallopt(_M_ARENA_MAX, arenas))


def trim() -> bool:
    """Return free heap memory of every arena to the system (``malloc_trim(0)``); ``False`` if nothing was."""
    libc = _libc()
    return bool(libc and libc.malloc_trim(0))


class Trimmer:
    """A daemon thread that calls :func:`trim` at most every ``interval`` seconds once ``threshold`` bytes more were
    released (``released()`` is a running total, e.g. the admission's)."""

    def __init__(self, released: Callable[[], int], interval: float = 1.0, threshold: int = 32 * 1024 * 1024):
        self._released, self._interval, self._threshold = released, interval, threshold
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.trims = 0

    def start(self) -> None:
        if _libc() is None:
            return
        limit_arenas()
        self._thread = threading.Thread(target=self._run, name="hf-beit-malloc-trim", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        trimmed_at = self._released()
        while not self._stop.wait(self._interval):
            released = self._released()
            if released - trimmed_at >= self._threshold:
                trim()
                self.trims += 1
                trimmed_at = released
